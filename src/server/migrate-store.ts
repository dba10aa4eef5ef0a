/**
 * `s3-sse migrate-store`: copies an embedded-default data dir (files + SQLite) into a fleet's
 * stores (a backend bucket and PostgreSQL), as docs/DEPLOY.md describes. The sealed bytes are
 * copied as they are (nothing is decrypted: the manifests, wrapped keys and blobs stay valid),
 * so the fleet reads every object with the KMS that wrote it — the data dir's keyring served by
 * `s3-sse kms serve`, or the KMS `s3-sse kms migrate` moved the keys to.
 *
 * Per object, the write path's order: blobs staged and published, then the row committed. Run
 * it with the embedded server stopped. Multipart uploads in progress and replication still
 * queued must end first (complete or abort them; let the queue drain), and so must jobs (let
 * them complete or cancel them: a job's cursor is about this store's rows). Buckets and objects
 * already in the target are left alone, so a run that stopped half-way can be run again.
 * Users of the data dir's users file go into the target's users table when it has one.
 */
import { S3sseError } from '../errors.js'
import { decodeManifest } from '../object/index.js'
import { UserStore } from './credentials.js'
import type { MetaStore } from './meta/index.js'
import { SqliteMetaStore } from './meta/sqlite/index.js'
import type { BlobStore } from './store/blob.js'
import { FileBlobStore } from './store/files.js'

export interface MigrateStoreReport {
  buckets: number
  objects: number
  /** Objects already in the target (an earlier run). */
  skipped: number
  bytes: number
  users: number
}

const PAGE = 1000

/** A target store that can take users (the PostgreSQL store). */
interface UserTable {
  addUser(name: string, keys: { accessKey: string; secretKey: string; id: string; createdAt: string }): Promise<unknown>
  lookupUser(accessKey: string): Promise<unknown>
}

function hasUsers(meta: MetaStore): meta is MetaStore & UserTable {
  return typeof (meta as Partial<UserTable>).addUser === 'function'
}

export async function migrateStore(dataDir: string, target: { blobs: BlobStore; meta: MetaStore }, log: (line: string) => void = () => {}): Promise<MigrateStoreReport> {
  const files = await FileBlobStore.open(dataDir)
  const sqlite = new SqliteMetaStore(dataDir)
  const report: MigrateStoreReport = { buckets: 0, objects: 0, skipped: 0, bytes: 0, users: 0 }
  try {
    const buckets = await sqlite.listBuckets()
    for (const b of buckets) {
      const open = await sqlite.listUploads(b.name, '', '', '', 1)
      if (open.length > 0) throw new S3sseError('S3SSE_BAD_ARGUMENT', `bucket ${b.name} has multipart uploads in progress (${open[0].key}): complete or abort them, then migrate`)
    }
    const queued = await sqlite.pendingReplications()
    if (queued > 0) throw new S3sseError('S3SSE_BAD_ARGUMENT', `${queued} writes are still queued for replication: let the server replicate them, then migrate`)
    const unfinished = (await sqlite.listJobs()).find((j) => j.state !== 'completed' && j.state !== 'cancelled')
    if (unfinished) {
      throw new S3sseError('S3SSE_BAD_ARGUMENT', `job ${unfinished.id} (${unfinished.kind} of ${unfinished.bucket}) is ${unfinished.state}: let it complete or cancel it (s3-sse job cancel ${unfinished.id}), then migrate; start it again on the fleet`)
    }

    for (const b of buckets) {
      if (await target.meta.createBucket(b)) log(`bucket ${b.name}`)
      report.buckets++
      let after = ''
      for (;;) {
        const page = await sqlite.listObjects(b.name, after, '', PAGE)
        for (const summary of page) {
          const row = await sqlite.getObject(b.name, summary.key)
          if (!row) continue
          if (await target.meta.getObject(row.bucket, row.key)) {
            report.skipped++
            continue
          }
          const m = decodeManifest(row.manifest)
          const reader = await files.open(row.blobs)
          const staged = []
          try {
            for (const [i, part] of m.parts.entries()) {
              staged.push(await target.blobs.stage(reader.read(i, 0, part.storedSize)))
              report.bytes += part.storedSize
            }
          } catch (err) {
            await target.blobs.discard(staged)
            throw err
          } finally {
            await reader.close()
          }
          await target.blobs.publish(staged)
          // Replication statuses are not carried over: the queue is empty, and the target
          // decides nothing about replicas it did not write.
          const result = await target.meta.commitObject({ ...row, blobs: staged.map((s) => s.id), replication: undefined }, { replicate: () => null })
          if (result.status !== 'committed') {
            await target.blobs.remove(staged.map((s) => s.id))
            throw new S3sseError('S3SSE_META_UNAVAILABLE', `could not commit ${row.bucket}/${row.key} in the target (${result.status})`)
          }
          report.objects++
        }
        if (page.length < PAGE) break
        after = page[page.length - 1].key
      }
    }
    if (hasUsers(target.meta)) {
      for (const u of new UserStore(dataDir).list()) {
        if (await target.meta.lookupUser(u.accessKey)) continue
        // The same id: the buckets copied above are owned by it.
        await target.meta.addUser(u.name, { accessKey: u.accessKey, secretKey: u.secretKey, id: u.id, createdAt: u.createdAt })
        report.users++
      }
    }
    return report
  } finally {
    await sqlite.close()
    await files.close()
  }
}
