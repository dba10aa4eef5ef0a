/**
 * The embedded default behind each seam, for a server on one machine: blobs as files in the
 * data dir, metadata in SQLite beside them, the embedded KMS's keyring in DATA/kms/. The CLI
 * and startServer build these for whatever was not injected; nothing else names them.
 */
import { existsSync } from 'node:fs'
import { S3sseError } from '../errors.js'
import { openEmbeddedKms, type EmbeddedKms } from '../keys/embedded.js'
import { kmsPaths, ROOT_KEY_ENV } from '../keys/keyring.js'
import type { Kms } from '../keys/kms.js'
import type { MetaStore } from './meta/index.js'
import { FileSpaceReserve } from './reserve.js'
import type { Logger } from './state.js'
import { SqliteMetaStore } from './meta/sqlite/index.js'
import type { BlobStore } from './store/blob.js'
import { FileBlobStore } from './store/files.js'

export interface ServerDeps {
  kms?: Kms
  blobs?: BlobStore
  meta?: MetaStore
}

/**
 * The embedded KMS of a data dir. A new, empty keyring is made only for a data dir whose
 * metadata holds no encrypted object or upload: for one that does, a missing keyring means
 * their keys are elsewhere (a backup, another disk), and a new one would make every one of
 * them unreadable while new writes succeed under keys the old keyring does not have.
 */
async function openKeyringFor(dataDir: string, meta: MetaStore): Promise<EmbeddedKms> {
  const held = await meta.encryptedData()
  const empty = held.objects === 0 && held.uploads === 0
  const paths = kmsPaths(dataDir)
  if (!empty && !existsSync(paths.keyring)) {
    throw new S3sseError(
      'S3SSE_KMS_KEYRING_MISSING',
      `${dataDir} holds ${held.objects} encrypted object(s) and ${held.uploads} encrypted upload(s) but has no keyring: ` +
        `restore ${paths.keyring} from a backup (and ${paths.rootKey}, unless ${ROOT_KEY_ENV} is set); ` +
        'a new keyring would leave them unreadable, so none is created',
    )
  }
  return openEmbeddedKms(dataDir, { create: empty })
}

/**
 * The injected deps, with the embedded default for each one missing; `close` closes only
 * those it made. When the data dir's disk holds blobs or metadata, its space reserve
 * (reserve.ts) is released before anything is opened, so a start on a full disk has room for
 * what it writes; the server makes it again once it runs.
 */
export async function withEmbeddedDefaults(
  dataDir: string,
  given: ServerDeps & { log?: Logger },
): Promise<Required<ServerDeps> & { space?: FileSpaceReserve; close(): Promise<void> }> {
  const made: Array<{ close(): Promise<void> }> = []
  const close = async () => {
    for (const m of made.reverse()) await m.close().catch(() => undefined)
  }
  try {
    const log: Logger = given.log ?? { info: () => undefined, error: (m) => process.stderr.write(m + '\n') }
    const space = !given.blobs || !given.meta ? new FileSpaceReserve(dataDir, log) : undefined
    await space?.release(true)
    const blobs = given.blobs ?? (await FileBlobStore.open(dataDir))
    if (!given.blobs) made.push(blobs)
    const meta = given.meta ?? new SqliteMetaStore(dataDir)
    if (!given.meta) made.push(meta)
    let kms = given.kms
    if (!kms) {
      const embedded = await openKeyringFor(dataDir, meta)
      made.push(embedded)
      kms = embedded
    }
    return { blobs, meta, kms, ...(space ? { space } : {}), close }
  } catch (err) {
    await close()
    throw err
  }
}
