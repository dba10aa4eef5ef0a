/**
 * The embedded default MetaStore: SQLite in the data dir (better-sqlite3, synchronous under
 * the async interface; each method that writes several rows is one SQLite transaction).
 * Users come from the users file beside it (src/server/credentials.ts), which `s3-sse user`
 * edits while the server runs.
 *
 * Schema and migrations: ./schema.ts. Row shapes: ./rows.ts. The replication queue: ./queue.ts.
 */
import Database from 'better-sqlite3'
import { S3sseError } from '../../../errors.js'
import { UserStore, type User } from '../../credentials.js'
import type { BlobId } from '../../store/blob.js'
import type {
  BucketRow,
  ClaimOptions,
  CommitOptions,
  CommitResult,
  JobFinding,
  JobRow,
  KeyUsage,
  MetaStore,
  ObjectDetails,
  ObjectReplication,
  ObjectRow,
  ObjectStats,
  ObjectSummary,
  PartRow,
  ReplicationItem,
  UploadRow,
} from '../index.js'
import type { StoredEncryption } from '../../../s3/sse.js'
import type { TagSet } from '../../../s3/tagging.js'
import { SqliteQueue } from './queue.js'
import {
  bucketFromRaw,
  findingFromRaw,
  jobFromRaw,
  jobParams,
  objectFromRaw,
  objectParams,
  partFromRaw,
  partParams,
  prefixUpperBound,
  uploadFromRaw,
  uploadParams,
  type RawBucket,
  type RawFinding,
  type RawJob,
  type RawObject,
  type RawPart,
  type RawUpload,
} from './rows.js'
import { openDatabase } from './schema.js'

export { DB_FILE, SCHEMA_VERSION } from './schema.js'
export { prefixUpperBound } from './rows.js'

/**
 * SQLite's own failures as the store's typed errors; anything else (a precondition's S3
 * error, a bug) passes through.
 */
function mapSqlite(err: unknown): unknown {
  if (!(err instanceof Database.SqliteError)) return err
  const code = err.code
  if (code === 'SQLITE_FULL') return new S3sseError('S3SSE_STORAGE_FULL', 'the metadata database has no space left', { cause: err })
  if (code.startsWith('SQLITE_IOERR')) return new S3sseError('S3SSE_STORAGE_IO', 'the metadata database failed to read or write', { cause: err })
  return new S3sseError('S3SSE_META_UNAVAILABLE', `the metadata database failed (${code})`, { cause: err })
}

export class SqliteMetaStore implements MetaStore {
  /** The database handle (tests and migrations look at it). */
  readonly db: Database.Database
  private readonly stmts
  private readonly queue: SqliteQueue
  private readonly users: UserStore

  constructor(readonly dataDir: string) {
    try {
      this.db = openDatabase(dataDir)
    } catch (err) {
      throw mapSqlite(err)
    }
    const db = this.db
    this.queue = new SqliteQueue(db)
    this.users = new UserStore(dataDir)
    this.stmts = {
      getBucket: db.prepare('SELECT name, owner, region, created_at AS createdAt, settings FROM buckets WHERE name = ?'),
      listBuckets: db.prepare('SELECT name, owner, region, created_at AS createdAt, settings FROM buckets ORDER BY name'),
      insertBucket: db.prepare('INSERT INTO buckets (name, owner, region, created_at, settings) VALUES (?, ?, ?, ?, ?)'),
      deleteBucket: db.prepare('DELETE FROM buckets WHERE name = ?'),
      setBucketSettings: db.prepare('UPDATE buckets SET settings = ? WHERE name = ?'),
      anyObject: db.prepare('SELECT 1 FROM objects WHERE bucket = ? LIMIT 1'),
      uploadIdsOf: db.prepare('SELECT upload_id FROM uploads WHERE bucket = ?'),
      getObject: db.prepare('SELECT * FROM objects WHERE bucket = ? AND key = ?'),
      putObject: db.prepare(
        `INSERT OR REPLACE INTO objects (bucket, key, size, etag, last_modified, headers, meta, checksum, parts_count, manifest, files, encryption, replication, key_id, key_version, tags)
         VALUES (@bucket, @key, @size, @etag, @lastModified, @headers, @meta, @checksum, @partsCount, @manifest, @files, @encryption, @replication, @keyId, @keyVersion, @tags)`,
      ),
      deleteObject: db.prepare('DELETE FROM objects WHERE bucket = ? AND key = ?'),
      setTags: db.prepare('UPDATE objects SET tags = ? WHERE bucket = ? AND key = ? AND (? IS NULL OR etag = ?)'),
      sourceWrite: db.prepare(`SELECT 1 FROM objects WHERE bucket = ? AND key = ? AND json_extract(replication, '$.status') = 'PENDING' AND json_extract(replication, '$.id') = ?`),
      listObjects: db.prepare(
        `SELECT key, size, etag, last_modified AS lastModified FROM objects
         WHERE bucket = @bucket AND key > @after AND key >= @prefix AND (@upper IS NULL OR key < @upper)
         ORDER BY key LIMIT @limit`,
      ),
      listObjectDetails: db.prepare(
        `SELECT key, size, etag, last_modified AS lastModified, encryption, key_id, key_version, tags FROM objects
         WHERE bucket = @bucket AND key > @after AND key >= @prefix AND (@upper IS NULL OR key < @upper)
         ORDER BY key LIMIT @limit`,
      ),
      objectStats: db.prepare(
        `SELECT COUNT(*) AS objects, COALESCE(SUM(size), 0) AS bytes,
                COALESCE(SUM(encryption IS NULL), 0) AS plaintextObjects, COALESCE(SUM(CASE WHEN encryption IS NULL THEN size ELSE 0 END), 0) AS plaintextBytes
         FROM objects WHERE bucket = @bucket AND key >= @prefix AND (@upper IS NULL OR key < @upper)`,
      ),
      objectKeyUsage: db.prepare(
        `SELECT key_id AS keyId, key_version AS version, COUNT(*) AS objects, SUM(size) AS bytes FROM objects
         WHERE key_id IS NOT NULL GROUP BY key_id, key_version`,
      ),
      uploadKeyUsage: db.prepare('SELECT key_id AS keyId, key_version AS version, COUNT(*) AS uploads FROM uploads WHERE key_id IS NOT NULL GROUP BY key_id, key_version'),
      insertJob: db.prepare('INSERT INTO jobs (id, bucket, state, created_at, claim_until, body) VALUES (@id, @bucket, @state, @createdAt, @claimUntil, @body)'),
      updateJob: db.prepare('UPDATE jobs SET state = @state, claim_until = @claimUntil, body = @body WHERE id = @id'),
      getJob: db.prepare('SELECT id, body FROM jobs WHERE id = ?'),
      listJobs: db.prepare('SELECT id, body FROM jobs WHERE (@bucket IS NULL OR bucket = @bucket) ORDER BY created_at DESC, id DESC LIMIT @limit'),
      claimableJob: db.prepare(
        `SELECT id, body FROM jobs WHERE state IN ('queued', 'running') AND (claim_until IS NULL OR claim_until <= ?)
         ORDER BY created_at, id LIMIT 1`,
      ),
      claimedJobs: db.prepare('SELECT id, body FROM jobs WHERE claim_until IS NOT NULL'),
      insertFinding: db.prepare(
        'INSERT INTO job_findings (job_id, key, kind, part, package, code, message, at) VALUES (@jobId, @key, @kind, @part, @package, @code, @message, @at)',
      ),
      jobFindings: db.prepare('SELECT seq, key, kind, part, package, code, message, at FROM job_findings WHERE job_id = ? AND seq > ? ORDER BY seq LIMIT ?'),
      insertUpload: db.prepare(
        `INSERT INTO uploads (upload_id, bucket, key, initiated, owner, state, headers, meta, checksum_algorithm, checksum_type, encryption, key_id, key_version, tags)
         VALUES (@uploadId, @bucket, @key, @initiated, @owner, @state, @headers, @meta, @checksumAlgorithm, @checksumType, @encryption, @keyId, @keyVersion, @tags)`,
      ),
      getUpload: db.prepare('SELECT * FROM uploads WHERE upload_id = ?'),
      deleteUpload: db.prepare('DELETE FROM uploads WHERE upload_id = ?'),
      listUploads: db.prepare(
        `SELECT * FROM uploads
         WHERE bucket = @bucket AND (key > @after OR (key = @after AND upload_id > @afterId))
           AND key >= @prefix AND (@upper IS NULL OR key < @upper)
         ORDER BY key, upload_id LIMIT @limit`,
      ),
      getPart: db.prepare('SELECT * FROM parts WHERE upload_id = ? AND part_number = ?'),
      putPart: db.prepare(
        `INSERT OR REPLACE INTO parts (upload_id, part_number, size, etag, last_modified, checksum, record, file)
         VALUES (@uploadId, @partNumber, @size, @etag, @lastModified, @checksum, @record, @file)`,
      ),
      listParts: db.prepare('SELECT * FROM parts WHERE upload_id = ? AND part_number > ? ORDER BY part_number LIMIT ?'),
      allParts: db.prepare('SELECT * FROM parts WHERE upload_id = ? ORDER BY part_number'),
      deleteParts: db.prepare('DELETE FROM parts WHERE upload_id = ?'),
      allBlobs: db.prepare(`SELECT files AS f FROM objects UNION ALL SELECT json_array(file) AS f FROM parts`),
    }
  }

  /** Runs a synchronous body as the async interface promises, with SQLite's errors typed. */
  private async run<T>(body: () => T): Promise<T> {
    try {
      return body()
    } catch (err) {
      throw mapSqlite(err)
    }
  }

  async close(): Promise<void> {
    this.db.close()
  }

  // ------------------------------------------------------------------ buckets

  private bucket(name: string): BucketRow | undefined {
    const r = this.stmts.getBucket.get(name) as RawBucket | undefined
    return r ? bucketFromRaw(r) : undefined
  }

  getBucket(name: string): Promise<BucketRow | undefined> {
    return this.run(() => this.bucket(name))
  }

  listBuckets(): Promise<BucketRow[]> {
    return this.run(() => (this.stmts.listBuckets.all() as RawBucket[]).map(bucketFromRaw))
  }

  createBucket(b: BucketRow): Promise<boolean> {
    return this.run(() => {
      try {
        this.stmts.insertBucket.run(b.name, b.owner, b.region, b.createdAt, JSON.stringify(b.settings))
        return true
      } catch (err) {
        if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY') return false
        throw err
      }
    })
  }

  deleteBucketIfEmpty(name: string): Promise<{ status: 'deleted'; unused: BlobId[] } | { status: 'not-empty' } | { status: 'missing' }> {
    return this.run(() =>
      this.db.transaction(() => {
        if (!this.stmts.getBucket.get(name)) return { status: 'missing' as const }
        if (this.stmts.anyObject.get(name)) return { status: 'not-empty' as const }
        const unused: BlobId[] = []
        for (const { upload_id } of this.stmts.uploadIdsOf.all(name) as Array<{ upload_id: string }>) unused.push(...(this.removeUpload(upload_id) ?? []))
        this.stmts.deleteBucket.run(name)
        return { status: 'deleted' as const, unused }
      })(),
    )
  }

  updateBucketSettings(name: string, change: (settings: Record<string, unknown>) => void): Promise<boolean> {
    return this.run(() =>
      this.db.transaction(() => {
        const b = this.bucket(name)
        if (!b) return false
        change(b.settings)
        this.stmts.setBucketSettings.run(JSON.stringify(b.settings), name)
        return true
      })(),
    )
  }

  // ------------------------------------------------------------------ objects

  getObject(bucket: string, key: string): Promise<ObjectRow | undefined> {
    return this.run(() => {
      const r = this.stmts.getObject.get(bucket, key) as RawObject | undefined
      return r ? objectFromRaw(r) : undefined
    })
  }

  /** commitObject inside a transaction already open (completeUpload reuses it). */
  private writeObject(o: ObjectRow, opts: CommitOptions): CommitResult {
    const bucket = this.bucket(o.bucket)
    if (!bucket) return { status: 'no-bucket' }
    const raw = this.stmts.getObject.get(o.bucket, o.key) as RawObject | undefined
    const old = raw ? objectFromRaw(raw) : undefined
    opts.precondition?.(old)
    let replication: ObjectReplication | undefined
    let queued = false
    if (opts.replicaOf) {
      const src = opts.replicaOf
      // A source overwritten or deleted meanwhile is not replicated: a replica never brings
      // back data its source has lost.
      if (!this.stmts.sourceWrite.get(src.bucket, src.key, src.id)) return { status: 'superseded' }
      replication = { status: 'REPLICA' }
      this.queue.unqueueKey(o.bucket, o.key)
    } else {
      const target = opts.replicate?.(bucket) ?? null
      if (target) {
        replication = { status: 'PENDING', id: this.queue.enqueue(o.bucket, o.key, target) }
        queued = true
      } else {
        this.queue.unqueueKey(o.bucket, o.key)
      }
    }
    this.stmts.putObject.run(objectParams(o, replication))
    // A row that keeps blobs of the one it replaces (a rewrap) does not give them up.
    const kept = new Set(o.blobs)
    return { status: 'committed', unused: old ? old.blobs.filter((b) => !kept.has(b)) : [], queued }
  }

  commitObject(o: ObjectRow, opts: CommitOptions = {}): Promise<CommitResult> {
    return this.run(() => this.db.transaction(() => this.writeObject(o, opts))())
  }

  setObjectTags(bucket: string, key: string, tags: TagSet, etag?: string): Promise<boolean> {
    return this.run(() => {
      const value = tags.length > 0 ? JSON.stringify(tags) : null
      return this.stmts.setTags.run(value, bucket, key, etag ?? null, etag ?? null).changes > 0
    })
  }

  deleteObject(bucket: string, key: string): Promise<BlobId[] | null> {
    return this.run(() =>
      this.db.transaction(() => {
        const old = this.stmts.getObject.get(bucket, key) as RawObject | undefined
        if (!old) return null
        this.stmts.deleteObject.run(bucket, key)
        this.queue.unqueueKey(bucket, key)
        return objectFromRaw(old).blobs
      })(),
    )
  }

  listObjects(bucket: string, after: string, prefix: string, limit: number): Promise<ObjectSummary[]> {
    return this.run(() => this.stmts.listObjects.all({ bucket, after, prefix, upper: prefixUpperBound(prefix), limit }) as ObjectSummary[])
  }

  listObjectDetails(bucket: string, after: string, prefix: string, limit: number): Promise<ObjectDetails[]> {
    return this.run(() => {
      const rows = this.stmts.listObjectDetails.all({ bucket, after, prefix, upper: prefixUpperBound(prefix), limit }) as Array<
        ObjectSummary & { encryption: string | null; key_id: string | null; key_version: number | null; tags: string | null }
      >
      return rows.map(({ encryption, key_id, key_version, tags, ...o }) => ({
        ...o,
        ...(encryption ? { encryption: JSON.parse(encryption) as StoredEncryption } : {}),
        ...(key_id !== null && key_version !== null ? { kmsKey: { keyId: key_id, version: key_version } } : {}),
        ...(tags ? { tags: JSON.parse(tags) as TagSet } : {}),
      }))
    })
  }

  objectStats(bucket: string, prefix: string): Promise<ObjectStats> {
    return this.run(() => this.stmts.objectStats.get({ bucket, prefix, upper: prefixUpperBound(prefix) }) as ObjectStats)
  }

  keyUsage(): Promise<KeyUsage[]> {
    return this.run(() => {
      const out = new Map<string, KeyUsage>()
      const entry = (keyId: string, version: number) => {
        const k = `${keyId}\u0000${version}`
        let e = out.get(k)
        if (!e) out.set(k, (e = { keyId, version, objects: 0, bytes: 0, uploads: 0 }))
        return e
      }
      for (const r of this.stmts.objectKeyUsage.all() as Array<{ keyId: string; version: number; objects: number; bytes: number }>) {
        Object.assign(entry(r.keyId, r.version), { objects: r.objects, bytes: r.bytes })
      }
      for (const r of this.stmts.uploadKeyUsage.all() as Array<{ keyId: string; version: number; uploads: number }>) entry(r.keyId, r.version).uploads = r.uploads
      return [...out.values()].sort((a, b) => (a.keyId < b.keyId ? -1 : a.keyId > b.keyId ? 1 : a.version - b.version))
    })
  }

  // ------------------------------------------------------------------ multipart

  createUpload(u: UploadRow): Promise<void> {
    return this.run(() => {
      this.stmts.insertUpload.run(uploadParams(u))
    })
  }

  getUpload(uploadId: string): Promise<UploadRow | undefined> {
    return this.run(() => {
      const r = this.stmts.getUpload.get(uploadId) as RawUpload | undefined
      return r ? uploadFromRaw(r) : undefined
    })
  }

  listUploads(bucket: string, after: string, afterId: string, prefix: string, limit: number): Promise<UploadRow[]> {
    return this.run(() => {
      const upper = prefixUpperBound(prefix)
      const rows = (this.stmts.listUploads.all({ bucket, after, afterId, prefix, upper, limit }) as RawUpload[]).map(uploadFromRaw)
      if (rows.length === limit) {
        const last = rows[rows.length - 1]
        const rest = this.stmts.listUploads.all({ bucket, after: last.key, afterId: last.uploadId, prefix, upper, limit: 1_000_000 }) as RawUpload[]
        for (const r of rest) if (r.key === last.key) rows.push(uploadFromRaw(r))
      }
      return rows
    })
  }

  commitPart(p: PartRow): Promise<CommitResult> {
    return this.run(() =>
      this.db.transaction((): CommitResult => {
        if (!this.stmts.getUpload.get(p.uploadId)) return { status: 'no-upload' }
        const old = this.stmts.getPart.get(p.uploadId, p.partNumber) as RawPart | undefined
        this.stmts.putPart.run(partParams(p))
        return { status: 'committed', unused: old && old.file !== p.blob ? [old.file] : [], queued: false }
      })(),
    )
  }

  listParts(uploadId: string, after: number, limit: number): Promise<PartRow[]> {
    return this.run(() => (this.stmts.listParts.all(uploadId, after, limit) as RawPart[]).map(partFromRaw))
  }

  allParts(uploadId: string): Promise<PartRow[]> {
    return this.run(() => (this.stmts.allParts.all(uploadId) as RawPart[]).map(partFromRaw))
  }

  private removeUpload(uploadId: string): BlobId[] | null {
    if (!this.stmts.getUpload.get(uploadId)) return null
    const blobs = (this.stmts.allParts.all(uploadId) as RawPart[]).map((p) => p.file)
    this.stmts.deleteParts.run(uploadId)
    this.stmts.deleteUpload.run(uploadId)
    return blobs
  }

  deleteUpload(uploadId: string): Promise<BlobId[] | null> {
    return this.run(() => this.db.transaction(() => this.removeUpload(uploadId))())
  }

  completeUpload(uploadId: string, o: ObjectRow, opts: CommitOptions = {}): Promise<CommitResult> {
    return this.run(() =>
      this.db.transaction((): CommitResult => {
        const partBlobs = this.removeUpload(uploadId)
        if (partBlobs === null) return { status: 'no-upload' }
        const put = this.writeObject(o, opts)
        // Nothing of a refused commit may stay: the transaction rolls back, the upload stays.
        if (put.status !== 'committed') throw new CommitRefused(put)
        const used = new Set(o.blobs)
        return { ...put, unused: [...partBlobs.filter((b) => !used.has(b)), ...put.unused] }
      })(),
    ).catch((err) => {
      if (err instanceof CommitRefused) return err.result
      throw err
    })
  }

  // ------------------------------------------------------------------ replication queue

  claimReplications(opts: ClaimOptions): Promise<ReplicationItem[]> {
    return this.run(() => this.queue.claim(opts))
  }

  dueReplications(now: number, limit: number): Promise<ReplicationItem[]> {
    return this.run(() => this.queue.due(now, limit))
  }

  nextReplicationAt(): Promise<number | null> {
    return this.run(() => this.queue.nextAt())
  }

  pendingReplications(): Promise<number> {
    return this.run(() => this.queue.count())
  }

  finishReplication(item: ReplicationItem, status: 'COMPLETED' | 'FAILED'): Promise<boolean> {
    return this.run(() => this.queue.finish(item, status))
  }

  retryReplication(item: ReplicationItem, attempts: number, nextAttempt: number, error: string): Promise<void> {
    return this.run(() => this.queue.retry(item, attempts, nextAttempt, error))
  }

  dropReplication(item: ReplicationItem): Promise<void> {
    return this.run(() => this.queue.drop(item))
  }

  resumeReplications(now: number): Promise<number> {
    return this.run(() => this.queue.resume(now))
  }

  // ------------------------------------------------------------------ jobs

  private job(id: string): JobRow | undefined {
    const r = this.stmts.getJob.get(id) as RawJob | undefined
    return r ? jobFromRaw(r) : undefined
  }

  createJob(job: JobRow): Promise<void> {
    return this.run(() => {
      this.stmts.insertJob.run(jobParams(job))
    })
  }

  getJob(id: string): Promise<JobRow | undefined> {
    return this.run(() => this.job(id))
  }

  listJobs(opts: { bucket?: string; limit?: number } = {}): Promise<JobRow[]> {
    return this.run(() => (this.stmts.listJobs.all({ bucket: opts.bucket ?? null, limit: opts.limit ?? 1000 }) as RawJob[]).map(jobFromRaw))
  }

  claimJob(now: number, claim: (job: JobRow) => JobRow): Promise<JobRow | undefined> {
    return this.run(() =>
      this.db.transaction(() => {
        const r = this.stmts.claimableJob.get(now) as RawJob | undefined
        if (!r) return undefined
        const claimed = claim(jobFromRaw(r))
        this.stmts.updateJob.run(jobParams(claimed))
        return claimed
      })(),
    )
  }

  updateJob(id: string, change: (job: JobRow) => JobRow | null, findings: Array<Omit<JobFinding, 'seq'>> = []): Promise<JobRow | undefined> {
    return this.run(() =>
      this.db.transaction(() => {
        const job = this.job(id)
        if (!job) return undefined
        const next = change(job)
        if (next === null) return job
        this.stmts.updateJob.run(jobParams(next))
        for (const f of findings) this.stmts.insertFinding.run({ jobId: id, ...f })
        return next
      })(),
    )
  }

  jobFindings(id: string, afterSeq: number, limit: number): Promise<JobFinding[]> {
    return this.run(() => (this.stmts.jobFindings.all(id, afterSeq, limit) as RawFinding[]).map(findingFromRaw))
  }

  resumeJobs(_now: number, release: (job: JobRow) => JobRow): Promise<number> {
    // One process owns the data dir: whatever claims are stored, their holder is gone.
    return this.run(() =>
      this.db.transaction(() => {
        const held = (this.stmts.claimedJobs.all() as RawJob[]).map(jobFromRaw)
        for (const j of held) this.stmts.updateJob.run(jobParams(release(j)))
        return held.length
      })(),
    )
  }

  // ------------------------------------------------------------------ users and the sweep

  async lookupUserByName(name: string): Promise<User | undefined> {
    return this.users.list().find((u) => u.name === name)
  }

  async lookupUser(accessKey: string): Promise<User | undefined> {
    return this.users.lookup(accessKey)
  }

  async lookupUserById(id: string): Promise<User | undefined> {
    return this.users.lookupById(id)
  }

  encryptedData(): Promise<{ objects: number; uploads: number }> {
    return this.run(() => {
      const n = (sql: string) => (this.db.prepare(sql).get() as { n: number }).n
      return {
        objects: n('SELECT COUNT(*) AS n FROM objects WHERE encryption IS NOT NULL'),
        uploads: n('SELECT COUNT(*) AS n FROM uploads WHERE encryption IS NOT NULL'),
      }
    })
  }

  referencedBlobs(): Promise<Set<BlobId>> {
    return this.run(() => {
      const out = new Set<BlobId>()
      for (const row of this.stmts.allBlobs.iterate() as Iterable<{ f: string }>) {
        for (const b of JSON.parse(row.f) as string[]) out.add(b)
      }
      return out
    })
  }
}

/** Rolls back a completeUpload whose object commit was refused, carrying the refusal out. */
class CommitRefused extends Error {
  constructor(readonly result: CommitResult) {
    super(`commit refused: ${result.status}`)
  }
}
