/**
 * The embedded default behind each seam, for a server on one machine: blobs as files in the
 * data dir, metadata in SQLite beside them, the embedded KMS's keyring in DATA/kms/. The CLI
 * and startServer build these for whatever was not injected; nothing else names them.
 */
import { openEmbeddedKms } from '../keys/embedded.js'
import type { Kms } from '../keys/kms.js'
import type { MetaStore } from './meta/index.js'
import { SqliteMetaStore } from './meta/sqlite/index.js'
import type { BlobStore } from './store/blob.js'
import { FileBlobStore } from './store/files.js'

export interface ServerDeps {
  kms?: Kms
  blobs?: BlobStore
  meta?: MetaStore
}

/** The injected deps, with the embedded default for each one missing; `close` closes only those it made. */
export async function withEmbeddedDefaults(dataDir: string, given: ServerDeps): Promise<Required<ServerDeps> & { close(): Promise<void> }> {
  const made: Array<{ close(): Promise<void> }> = []
  const close = async () => {
    for (const m of made.reverse()) await m.close().catch(() => undefined)
  }
  try {
    const blobs = given.blobs ?? (await FileBlobStore.open(dataDir))
    if (!given.blobs) made.push(blobs)
    const meta = given.meta ?? new SqliteMetaStore(dataDir)
    if (!given.meta) made.push(meta)
    let kms = given.kms
    if (!kms) {
      const embedded = await openEmbeddedKms(dataDir, { create: true })
      made.push(embedded)
      kms = embedded
    }
    return { blobs, meta, kms, close }
  } catch (err) {
    await close()
    throw err
  }
}
