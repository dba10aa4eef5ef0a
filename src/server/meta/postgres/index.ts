/**
 * The fleet MetaStore: PostgreSQL (node-postgres), shared by every gateway of a fleet.
 *
 * Each method that SQLite runs in one transaction runs in one PostgreSQL transaction here
 * (READ COMMITTED), with the rows it decides on locked first, in one order everywhere —
 * bucket (FOR SHARE by writers of its objects, FOR UPDATE by settings changes and deletes),
 * then upload, then object — so that:
 *
 * - two gateways committing one key serialise on its row: the later commit sees the earlier
 *   one's row and names its blobs as replaced (last committed wins, nothing leaks);
 * - `replicate` and `precondition` see the bucket settings and the object exactly as they are
 *   when the transaction commits;
 * - a part committed while its upload completes either makes it into the upload or is refused.
 *
 * A transaction that meets a deadlock or a serialisation failure is run again from the start
 * (its callbacks are pure functions of what it reads). The replication queue is claimed with
 * `FOR UPDATE SKIP LOCKED` under a random claim token, so gateways never take one item twice,
 * and a claim whose lease ran out is taken over. Jobs are claimed the same way, one job per
 * claim; a job's row is read FOR UPDATE by every change to it (a checkpoint, a pause from another
 * gateway), and its findings are appended in that transaction. Users and console sessions are
 * tables here too.
 *
 * Failures of the database are S3SSE_META_UNAVAILABLE (S3SSE_STORAGE_FULL when it is out of
 * disk); errors thrown by a caller's callback pass through unchanged.
 */
import { createHash, randomBytes } from 'node:crypto'
import pg from 'pg'
import { S3sseError, isS3sseError } from '../../../errors.js'
import type { TagSet } from '../../../s3/tagging.js'
import { newAccessKey, newSecretKey, newUserId, type User } from '../../credentials.js'
import type { BlobId } from '../../store/blob.js'
import type {
  BucketRow,
  ClaimOptions,
  CommitOptions,
  CommitResult,
  JobFinding,
  JobRow,
  KeyUsage,
  KmsKeyVersion,
  MetaStore,
  ObjectDetails,
  ObjectReplication,
  ObjectRow,
  ObjectStats,
  ObjectSummary,
  PartRow,
  ReplicationItem,
  ReplicationTarget,
  SessionRow,
  SessionTable,
  UploadRow,
} from '../index.js'
import { prefixUpperBound } from '../sqlite/rows.js'
import { migrate } from './schema.js'

export { PG_SCHEMA_VERSION } from './schema.js'

type Client = pg.PoolClient
type Row = Record<string, unknown>

/** SQLSTATEs after which the whole transaction is simply run again. */
const RETRY_STATES = new Set(['40001', '40P01'])
const TX_ATTEMPTS = 8

/** An error a caller's callback threw: it leaves the transaction unchanged. */
class Passthrough {
  constructor(readonly error: unknown) {}
}

/** Rolls back a transaction whose commit was refused, carrying the refusal out. */
class Refused {
  constructor(readonly result: CommitResult) {}
}

function mapPg(err: unknown): unknown {
  if (isS3sseError(err)) return err
  const code = (err as { code?: unknown } | null)?.code
  if (code === '53100') return new S3sseError('S3SSE_STORAGE_FULL', 'the metadata database has no space left', { cause: err })
  const what = typeof code === 'string' ? ` (${code})` : ''
  return new S3sseError('S3SSE_META_UNAVAILABLE', `the metadata database failed${what}`, { cause: err })
}

const key = (k: string): Buffer => Buffer.from(k, 'utf8')
const str = (b: unknown): string => (b as Buffer).toString('utf8')
const json = (v: unknown): string | null => (v === undefined ? null : JSON.stringify(v))
const num = (v: unknown): number => Number(v)

/** Byte strings compare as S3 orders keys; the bound of a prefix as bytes (null: none). */
function upperBound(prefix: string): Buffer | null {
  const u = prefixUpperBound(prefix)
  return u === null ? null : key(u)
}

function bucketFrom(r: Row): BucketRow {
  return { name: r.name as string, owner: r.owner as string, region: r.region as string, createdAt: num(r.created_at), settings: JSON.parse(r.settings as string) }
}

function tagsFrom(r: Row): { tags?: TagSet } {
  return r.tags ? { tags: JSON.parse(r.tags as string) as TagSet } : {}
}

/** An empty tag set is stored as no tags, as SQLite does. */
const tagsParam = (tags: TagSet | undefined): string | null => (tags && tags.length > 0 ? JSON.stringify(tags) : null)

function kmsKeyFrom(r: Row): { kmsKey?: KmsKeyVersion } {
  return r.key_id != null && r.key_version != null ? { kmsKey: { keyId: r.key_id as string, version: num(r.key_version) } } : {}
}

function replicationFrom(r: Row): ObjectReplication | undefined {
  if (r.repl_status == null) return undefined
  return r.repl_id == null ? { status: r.repl_status as ObjectReplication['status'] } : { status: r.repl_status as ObjectReplication['status'], id: r.repl_id as string }
}

function objectFrom(r: Row): ObjectRow {
  const o: ObjectRow = {
    bucket: r.bucket as string,
    key: str(r.key),
    size: num(r.size),
    etag: r.etag as string,
    lastModified: num(r.last_modified),
    headers: JSON.parse(r.headers as string),
    meta: JSON.parse(r.meta as string),
    checksum: r.checksum ? JSON.parse(r.checksum as string) : undefined,
    partsCount: num(r.parts_count),
    manifest: r.manifest as Buffer,
    blobs: JSON.parse(r.blobs as string),
    encryption: r.encryption ? JSON.parse(r.encryption as string) : undefined,
    ...kmsKeyFrom(r),
    replication: replicationFrom(r),
    ...tagsFrom(r),
  }
  return o
}

function uploadFrom(r: Row): UploadRow {
  return {
    uploadId: r.upload_id as string,
    bucket: r.bucket as string,
    key: str(r.key),
    initiated: num(r.initiated),
    owner: r.owner as string,
    state: JSON.parse(r.state as string),
    headers: JSON.parse(r.headers as string),
    meta: JSON.parse(r.meta as string),
    checksumAlgorithm: (r.checksum_algorithm ?? undefined) as UploadRow['checksumAlgorithm'],
    checksumType: (r.checksum_type ?? undefined) as UploadRow['checksumType'],
    encryption: r.encryption ? JSON.parse(r.encryption as string) : undefined,
    ...kmsKeyFrom(r),
    ...tagsFrom(r),
  }
}

function partFrom(r: Row): PartRow {
  return {
    uploadId: r.upload_id as string,
    partNumber: num(r.part_number),
    size: num(r.size),
    etag: r.etag as string,
    lastModified: num(r.last_modified),
    checksum: r.checksum ? JSON.parse(r.checksum as string) : undefined,
    record: JSON.parse(r.record as string),
    blob: r.blob as string,
  }
}

function itemFrom(r: Row, claimed: boolean): ReplicationItem {
  return {
    bucket: r.bucket as string,
    key: str(r.key),
    id: r.id as string,
    destination: r.destination as string,
    destinationOwner: (r.destination_owner ?? null) as string | null,
    ruleId: r.rule_id as string,
    enqueuedAt: num(r.enqueued_at),
    attempts: num(r.attempts),
    nextAttempt: num(r.next_attempt),
    lastError: (r.last_error ?? null) as string | null,
    claim: claimed ? (r.claim as string) : null,
  }
}

function jobFrom(r: Row): JobRow {
  return JSON.parse(r.body as string) as JobRow
}

/** The jobs row of a JobRow: the row whole as JSON, and the columns the claim and listings filter on. */
function jobParams(j: JobRow): unknown[] {
  return [j.id, j.bucket, j.state, j.createdAt, j.claim?.until ?? null, JSON.stringify(j)]
}

function findingFrom(r: Row): JobFinding {
  return {
    seq: num(r.seq),
    key: str(r.key),
    kind: r.kind as JobFinding['kind'],
    part: r.part === null ? null : num(r.part),
    package: r.package === null ? null : num(r.package),
    code: r.code as string,
    message: JSON.parse(r.message as string) as string,
    at: num(r.at),
  }
}

function userFrom(r: Row): User {
  return { id: r.id as string, name: r.name as string, accessKey: r.access_key as string, secretKey: r.secret_key as string, createdAt: r.created_at as string }
}

function sessionFrom(r: Row): SessionRow {
  return {
    id: r.id as string,
    userName: r.user_name as string,
    accessKey: r.access_key as string,
    secretDigest: r.secret_digest as Buffer,
    createdAt: num(r.created_at),
    lastSeen: num(r.last_seen),
  }
}

const OBJECT_COLUMNS = 'bucket, key, size, etag, last_modified, headers, meta, checksum, parts_count, manifest, blobs, encryption, repl_status, repl_id, key_id, key_version, tags'

export interface PostgresMetaOptions {
  /** Connections in the pool (default 10). */
  poolSize?: number
  /** How long to wait for a connection before S3SSE_META_UNAVAILABLE (default 10 s). */
  connectTimeoutMs?: number
  /** How long a user lookup is served from memory (default 1 s; `s3-sse user remove` takes effect after it). */
  userCacheMs?: number
}

export class PostgresMetaStore implements MetaStore {
  readonly sessions: SessionTable
  private readonly users = new Map<string, { user: User | undefined; at: number }>()
  private readonly userCacheMs: number

  private constructor(readonly pool: pg.Pool, opts: PostgresMetaOptions) {
    this.userCacheMs = opts.userCacheMs ?? 1000
    this.sessions = new PgSessions(this)
  }

  /**
   * Connects to `url` (postgres://user:pass@host:port/db) and migrates the schema (safe when
   * several gateways start at once). S3SSE_META_UNAVAILABLE when the database cannot be reached.
   */
  static async open(url: string, opts: PostgresMetaOptions = {}): Promise<PostgresMetaStore> {
    const pool = new pg.Pool({
      connectionString: url,
      max: opts.poolSize ?? 10,
      connectionTimeoutMillis: opts.connectTimeoutMs ?? 10_000,
      idleTimeoutMillis: 30_000,
      application_name: 's3-sse',
      types: { getTypeParser: ((oid: number, format?: string) => (oid === 20 ? Number : pg.types.getTypeParser(oid, format as 'text'))) as typeof pg.types.getTypeParser },
    })
    // A pooled connection that the server drops while idle must not crash the process: the
    // next query gets a fresh one.
    pool.on('error', () => undefined)
    const store = new PostgresMetaStore(pool, opts)
    try {
      const client = await pool.connect()
      try {
        await migrate(client)
      } finally {
        client.release()
      }
    } catch (err) {
      await pool.end().catch(() => undefined)
      throw mapPg(err)
    }
    return store
  }

  async close(): Promise<void> {
    await this.pool.end()
  }

  /** One statement outside a transaction. */
  async query(sql: string, params: unknown[] = []): Promise<Row[]> {
    try {
      return (await this.pool.query(sql, params)).rows
    } catch (err) {
      throw mapPg(err)
    }
  }

  /**
   * Runs `body` in one transaction, again from the start after a deadlock or serialisation
   * failure. What the body's callbacks throw (wrapped by `call`) passes through unchanged.
   */
  async tx<T>(body: (c: Client) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      let client: Client
      try {
        client = await this.pool.connect()
      } catch (err) {
        throw mapPg(err)
      }
      let broken = false
      try {
        await client.query('BEGIN')
        const out = await body(client)
        await client.query('COMMIT')
        return out
      } catch (err) {
        await client.query('ROLLBACK').catch(() => {
          broken = true
        })
        if (err instanceof Passthrough) throw err.error
        if (err instanceof Refused) return err.result as T
        const code = (err as { code?: unknown }).code
        if (typeof code === 'string' && RETRY_STATES.has(code) && attempt < TX_ATTEMPTS) {
          await new Promise((r) => setTimeout(r, Math.random() * 10 * attempt))
          continue
        }
        throw mapPg(err)
      } finally {
        client.release(broken)
      }
    }
  }

  // ------------------------------------------------------------------ buckets

  async getBucket(name: string): Promise<BucketRow | undefined> {
    const [r] = await this.query('SELECT * FROM buckets WHERE name = $1', [name])
    return r ? bucketFrom(r) : undefined
  }

  async listBuckets(): Promise<BucketRow[]> {
    return (await this.query('SELECT * FROM buckets ORDER BY name')).map(bucketFrom)
  }

  async createBucket(b: BucketRow): Promise<boolean> {
    const rows = await this.query(
      'INSERT INTO buckets (name, owner, region, created_at, settings) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING RETURNING name',
      [b.name, b.owner, b.region, b.createdAt, JSON.stringify(b.settings)],
    )
    return rows.length === 1
  }

  /**
   * The bucket row FOR UPDATE first: object writers and completions hold it FOR SHARE, so none
   * commits into the bucket while it goes. Its uploads go with it (a part being committed holds
   * its upload FOR SHARE: the delete waits for it and names its blob; a later one finds no upload).
   */
  deleteBucketIfEmpty(name: string): Promise<{ status: 'deleted'; unused: BlobId[] } | { status: 'not-empty' } | { status: 'missing' }> {
    return this.tx(async (c) => {
      const b = await c.query('SELECT 1 FROM buckets WHERE name = $1 FOR UPDATE', [name])
      if (b.rowCount === 0) return { status: 'missing' as const }
      const o = await c.query('SELECT 1 FROM objects WHERE bucket = $1 LIMIT 1', [name])
      if (o.rowCount! > 0) return { status: 'not-empty' as const }
      const uploads = (await c.query('DELETE FROM uploads WHERE bucket = $1 RETURNING upload_id', [name])).rows.map((r) => r.upload_id as string)
      const parts = uploads.length === 0 ? [] : (await c.query('DELETE FROM parts WHERE upload_id = ANY($1::text[]) RETURNING blob', [uploads])).rows
      await c.query('DELETE FROM buckets WHERE name = $1', [name])
      return { status: 'deleted' as const, unused: parts.map((r) => r.blob as string) }
    })
  }

  updateBucketSettings(name: string, change: (settings: Record<string, unknown>) => void): Promise<boolean> {
    return this.tx(async (c) => {
      const [r] = (await c.query('SELECT * FROM buckets WHERE name = $1 FOR UPDATE', [name])).rows
      if (!r) return false
      const b = bucketFrom(r)
      call(() => change(b.settings))
      await c.query('UPDATE buckets SET settings = $1 WHERE name = $2', [JSON.stringify(b.settings), name])
      return true
    })
  }

  // ------------------------------------------------------------------ objects

  async getObject(bucket: string, k: string): Promise<ObjectRow | undefined> {
    const [r] = await this.query('SELECT * FROM objects WHERE bucket = $1 AND key = $2', [bucket, key(k)])
    return r ? objectFrom(r) : undefined
  }

  /**
   * The object's row, locked (FOR UPDATE), or, when there is none, a claim on its key: the
   * write then inserts it, and a concurrent first write of the same key makes the insert
   * conflict, after which the row it committed is read and locked instead.
   */
  private async lockObject(c: Client, bucket: string, k: string): Promise<ObjectRow | undefined> {
    const [r] = (await c.query('SELECT * FROM objects WHERE bucket = $1 AND key = $2 FOR UPDATE', [bucket, key(k)])).rows
    return r ? objectFrom(r) : undefined
  }

  /** commitObject inside a transaction already open (completeUpload reuses it). */
  private async writeObject(c: Client, o: ObjectRow, opts: CommitOptions): Promise<CommitResult> {
    const [b] = (await c.query('SELECT * FROM buckets WHERE name = $1 FOR SHARE', [o.bucket])).rows
    if (!b) return { status: 'no-bucket' }
    const bucket = bucketFrom(b)
    for (;;) {
      const old = await this.lockObject(c, o.bucket, o.key)
      call(() => opts.precondition?.(old))
      let replication: ObjectReplication | undefined
      let queued = false
      if (opts.replicaOf) {
        const src = opts.replicaOf
        // A source overwritten or deleted meanwhile is not replicated: a replica never brings
        // back data its source has lost.
        const live = await c.query(`SELECT 1 FROM objects WHERE bucket = $1 AND key = $2 AND repl_status = 'PENDING' AND repl_id = $3`, [src.bucket, key(src.key), src.id])
        if (live.rowCount === 0) return { status: 'superseded' }
        replication = { status: 'REPLICA' }
        await this.unqueueKey(c, o.bucket, o.key)
      } else {
        const target = call(() => opts.replicate?.(bucket) ?? null)
        if (target) {
          replication = { status: 'PENDING', id: await this.enqueue(c, o.bucket, o.key, target) }
          queued = true
        } else {
          await this.unqueueKey(c, o.bucket, o.key)
        }
      }
      const params = [
        o.bucket, key(o.key), o.size, o.etag, o.lastModified, JSON.stringify(o.headers), JSON.stringify(o.meta), json(o.checksum), o.partsCount,
        Buffer.from(o.manifest.buffer, o.manifest.byteOffset, o.manifest.byteLength), JSON.stringify(o.blobs), json(o.encryption),
        replication?.status ?? null, replication?.id ?? null, o.kmsKey?.keyId ?? null, o.kmsKey?.version ?? null, tagsParam(o.tags),
      ]
      if (old) {
        await c.query(
          `UPDATE objects SET size = $3, etag = $4, last_modified = $5, headers = $6, meta = $7, checksum = $8, parts_count = $9, manifest = $10,
             blobs = $11, encryption = $12, repl_status = $13, repl_id = $14, key_id = $15, key_version = $16, tags = $17
           WHERE bucket = $1 AND key = $2`,
          params,
        )
        // A row that keeps blobs of the one it replaces (a rewrap) does not give them up.
        const kept = new Set(o.blobs)
        return { status: 'committed', unused: old.blobs.filter((b) => !kept.has(b)), queued }
      }
      const ins = await c.query(
        `INSERT INTO objects (${OBJECT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) ON CONFLICT (bucket, key) DO NOTHING`,
        params,
      )
      if (ins.rowCount === 1) return { status: 'committed', unused: [], queued }
      // Another gateway created the key since we looked: read its row (now committed) and decide again.
    }
  }

  commitObject(o: ObjectRow, opts: CommitOptions = {}): Promise<CommitResult> {
    return this.tx((c) => this.writeObject(c, o, opts))
  }

  async setObjectTags(bucket: string, k: string, tags: TagSet, etag?: string): Promise<boolean> {
    const rows = await this.query('UPDATE objects SET tags = $1 WHERE bucket = $2 AND key = $3 AND ($4::text IS NULL OR etag = $4) RETURNING 1', [tagsParam(tags), bucket, key(k), etag ?? null])
    return rows.length === 1
  }

  deleteObject(bucket: string, k: string): Promise<BlobId[] | null> {
    return this.tx(async (c) => {
      const [r] = (await c.query('DELETE FROM objects WHERE bucket = $1 AND key = $2 RETURNING blobs', [bucket, key(k)])).rows
      if (!r) return null
      await this.unqueueKey(c, bucket, k)
      return JSON.parse(r.blobs as string) as BlobId[]
    })
  }

  async listObjects(bucket: string, after: string, prefix: string, limit: number): Promise<ObjectSummary[]> {
    const rows = await this.query(
      `SELECT key, size, etag, last_modified FROM objects
       WHERE bucket = $1 AND key > $2 AND key >= $3 AND ($4::bytea IS NULL OR key < $4) ORDER BY key LIMIT $5`,
      [bucket, key(after), key(prefix), upperBound(prefix), limit],
    )
    return rows.map((r) => ({ key: str(r.key), size: num(r.size), etag: r.etag as string, lastModified: num(r.last_modified) }))
  }

  async listObjectDetails(bucket: string, after: string, prefix: string, limit: number): Promise<ObjectDetails[]> {
    const rows = await this.query(
      `SELECT key, size, etag, last_modified, encryption, key_id, key_version, tags FROM objects
       WHERE bucket = $1 AND key > $2 AND key >= $3 AND ($4::bytea IS NULL OR key < $4) ORDER BY key LIMIT $5`,
      [bucket, key(after), key(prefix), upperBound(prefix), limit],
    )
    return rows.map((r) => {
      const o: ObjectDetails = { key: str(r.key), size: num(r.size), etag: r.etag as string, lastModified: num(r.last_modified) }
      if (r.encryption) o.encryption = JSON.parse(r.encryption as string)
      return { ...o, ...kmsKeyFrom(r), ...tagsFrom(r) }
    })
  }

  async objectStats(bucket: string, prefix: string): Promise<ObjectStats> {
    const [r] = await this.query(
      `SELECT COUNT(*) AS objects, COALESCE(SUM(size), 0)::bigint AS bytes,
              COUNT(*) FILTER (WHERE encryption IS NULL) AS plaintext_objects, COALESCE(SUM(size) FILTER (WHERE encryption IS NULL), 0)::bigint AS plaintext_bytes
       FROM objects WHERE bucket = $1 AND key >= $2 AND ($3::bytea IS NULL OR key < $3)`,
      [bucket, key(prefix), upperBound(prefix)],
    )
    return { objects: num(r.objects), bytes: num(r.bytes), plaintextObjects: num(r.plaintext_objects), plaintextBytes: num(r.plaintext_bytes) }
  }

  async keyUsage(): Promise<KeyUsage[]> {
    // One statement: both counts from one snapshot.
    const rows = await this.query(
      `SELECT key_id, key_version, SUM(objects)::bigint AS objects, SUM(bytes)::bigint AS bytes, SUM(uploads)::bigint AS uploads FROM (
         SELECT key_id, key_version, COUNT(*) AS objects, SUM(size) AS bytes, 0 AS uploads FROM objects WHERE key_id IS NOT NULL GROUP BY key_id, key_version
         UNION ALL
         SELECT key_id, key_version, 0, 0, COUNT(*) FROM uploads WHERE key_id IS NOT NULL GROUP BY key_id, key_version
       ) u GROUP BY key_id, key_version ORDER BY key_id COLLATE "C", key_version`,
    )
    return rows.map((r) => ({ keyId: r.key_id as string, version: num(r.key_version), objects: num(r.objects), bytes: num(r.bytes), uploads: num(r.uploads) }))
  }

  // ------------------------------------------------------------------ multipart

  async createUpload(u: UploadRow): Promise<void> {
    await this.query(
      `INSERT INTO uploads (upload_id, bucket, key, initiated, owner, state, headers, meta, checksum_algorithm, checksum_type, encryption, key_id, key_version, tags)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
      [
        u.uploadId, u.bucket, key(u.key), u.initiated, u.owner, JSON.stringify(u.state), JSON.stringify(u.headers), JSON.stringify(u.meta),
        u.checksumAlgorithm ?? null, u.checksumType ?? null, json(u.encryption), u.kmsKey?.keyId ?? null, u.kmsKey?.version ?? null, tagsParam(u.tags),
      ],
    )
  }

  async getUpload(uploadId: string): Promise<UploadRow | undefined> {
    const [r] = await this.query('SELECT * FROM uploads WHERE upload_id = $1', [uploadId])
    return r ? uploadFrom(r) : undefined
  }

  async listUploads(bucket: string, after: string, afterId: string, prefix: string, limit: number): Promise<UploadRow[]> {
    const sql = `SELECT * FROM uploads
       WHERE bucket = $1 AND (key > $2 OR (key = $2 AND upload_id > $3)) AND key >= $4 AND ($5::bytea IS NULL OR key < $5)
       ORDER BY key, upload_id LIMIT $6`
    const upper = upperBound(prefix)
    const rows = (await this.query(sql, [bucket, key(after), afterId, key(prefix), upper, limit])).map(uploadFrom)
    if (rows.length === limit && limit > 0) {
      // A page never splits one key's uploads.
      const last = rows[rows.length - 1]
      const rest = await this.query(`SELECT * FROM uploads WHERE bucket = $1 AND key = $2 AND upload_id > $3 ORDER BY upload_id`, [bucket, key(last.key), last.uploadId])
      rows.push(...rest.map(uploadFrom))
    }
    return rows
  }

  commitPart(p: PartRow): Promise<CommitResult> {
    return this.tx(async (c): Promise<CommitResult> => {
      // FOR SHARE: parts of one upload commit side by side; completing or aborting it waits for them.
      const u = await c.query('SELECT 1 FROM uploads WHERE upload_id = $1 FOR SHARE', [p.uploadId])
      if (u.rowCount === 0) return { status: 'no-upload' }
      const params = [p.uploadId, p.partNumber, p.size, p.etag, p.lastModified, json(p.checksum), JSON.stringify(p.record), p.blob]
      for (;;) {
        const [old] = (await c.query('SELECT blob FROM parts WHERE upload_id = $1 AND part_number = $2 FOR UPDATE', [p.uploadId, p.partNumber])).rows
        if (old) {
          await c.query('UPDATE parts SET size = $3, etag = $4, last_modified = $5, checksum = $6, record = $7, blob = $8 WHERE upload_id = $1 AND part_number = $2', params)
          return { status: 'committed', unused: old.blob !== p.blob ? [old.blob as string] : [], queued: false }
        }
        const ins = await c.query(
          'INSERT INTO parts (upload_id, part_number, size, etag, last_modified, checksum, record, blob) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING',
          params,
        )
        if (ins.rowCount === 1) return { status: 'committed', unused: [], queued: false }
      }
    })
  }

  async listParts(uploadId: string, after: number, limit: number): Promise<PartRow[]> {
    return (await this.query('SELECT * FROM parts WHERE upload_id = $1 AND part_number > $2 ORDER BY part_number LIMIT $3', [uploadId, after, limit])).map(partFrom)
  }

  async allParts(uploadId: string): Promise<PartRow[]> {
    return (await this.query('SELECT * FROM parts WHERE upload_id = $1 ORDER BY part_number', [uploadId])).map(partFrom)
  }

  private async removeUpload(c: Client, uploadId: string): Promise<BlobId[] | null> {
    const u = await c.query('DELETE FROM uploads WHERE upload_id = $1 RETURNING upload_id', [uploadId])
    if (u.rowCount === 0) return null
    const parts = await c.query('DELETE FROM parts WHERE upload_id = $1 RETURNING blob, part_number', [uploadId])
    return parts.rows.sort((a, b) => num(a.part_number) - num(b.part_number)).map((r) => r.blob as string)
  }

  deleteUpload(uploadId: string): Promise<BlobId[] | null> {
    return this.tx((c) => this.removeUpload(c, uploadId))
  }

  completeUpload(uploadId: string, o: ObjectRow, opts: CommitOptions = {}): Promise<CommitResult> {
    return this.tx(async (c): Promise<CommitResult> => {
      // The bucket first (the lock order of every writer), then the upload.
      const [b] = (await c.query('SELECT 1 FROM buckets WHERE name = $1 FOR SHARE', [o.bucket])).rows
      const partBlobs = await this.removeUpload(c, uploadId)
      if (partBlobs === null) return { status: 'no-upload' }
      if (!b) throw new Refused({ status: 'no-bucket' })
      const put = await this.writeObject(c, o, opts)
      // Nothing of a refused commit may stay: the transaction rolls back, the upload stays.
      if (put.status !== 'committed') throw new Refused(put)
      const used = new Set(o.blobs)
      return { ...put, unused: [...partBlobs.filter((x) => !used.has(x)), ...put.unused] }
    })
  }

  // ------------------------------------------------------------------ replication queue

  private async enqueue(c: Client, bucket: string, k: string, target: ReplicationTarget): Promise<string> {
    const id = randomBytes(12).toString('base64url')
    const now = Date.now()
    await c.query(
      `INSERT INTO replication_queue (bucket, key, id, destination, destination_owner, rule_id, enqueued_at, attempts, next_attempt, last_error, claim)
       VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $7, NULL, NULL)
       ON CONFLICT (bucket, key) DO UPDATE SET id = EXCLUDED.id, destination = EXCLUDED.destination, destination_owner = EXCLUDED.destination_owner,
         rule_id = EXCLUDED.rule_id, enqueued_at = EXCLUDED.enqueued_at, attempts = 0, next_attempt = EXCLUDED.next_attempt, last_error = NULL, claim = NULL`,
      [bucket, key(k), id, target.destination, target.destinationOwner, target.ruleId, now],
    )
    return id
  }

  private async unqueueKey(c: Client, bucket: string, k: string): Promise<void> {
    await c.query('DELETE FROM replication_queue WHERE bucket = $1 AND key = $2', [bucket, key(k)])
  }

  async claimReplications(opts: ClaimOptions): Promise<ReplicationItem[]> {
    const until = opts.now + Math.max(1, opts.leaseMs)
    const token = randomBytes(12).toString('base64url')
    const rows = await this.query(
      `UPDATE replication_queue q SET next_attempt = $1, claim = $2
       FROM (SELECT bucket, key FROM replication_queue WHERE next_attempt <= $3 ORDER BY next_attempt, enqueued_at LIMIT $4 FOR UPDATE SKIP LOCKED) due
       WHERE q.bucket = due.bucket AND q.key = due.key
       RETURNING q.*, q.enqueued_at AS order_enqueued`,
      [until, token, opts.now, opts.limit],
    )
    return rows.map((r) => itemFrom(r, true)).sort((a, b) => a.enqueuedAt - b.enqueuedAt)
  }

  async dueReplications(now: number, limit: number): Promise<ReplicationItem[]> {
    const rows = await this.query('SELECT * FROM replication_queue WHERE next_attempt <= $1 ORDER BY next_attempt, enqueued_at LIMIT $2', [now, limit])
    return rows.map((r) => itemFrom(r, false))
  }

  async nextReplicationAt(): Promise<number | null> {
    const [r] = await this.query('SELECT MIN(next_attempt) AS at FROM replication_queue')
    return r.at === null ? null : num(r.at)
  }

  async pendingReplications(): Promise<number> {
    const [r] = await this.query('SELECT COUNT(*) AS n FROM replication_queue')
    return num(r.n)
  }

  /** The queue row of an item while it is about the same write and (if claimed) under the same claim. */
  private static itemMatch = 'bucket = $1 AND key = $2 AND id = $3 AND ($4::text IS NULL OR claim = $4)'

  finishReplication(item: ReplicationItem, status: 'COMPLETED' | 'FAILED'): Promise<boolean> {
    return this.tx(async (c) => {
      const del = await c.query(`DELETE FROM replication_queue WHERE ${PostgresMetaStore.itemMatch}`, [item.bucket, key(item.key), item.id, item.claim])
      const unqueued = del.rowCount! > 0
      if (unqueued || item.claim === null) {
        await c.query('UPDATE objects SET repl_status = $1 WHERE bucket = $2 AND key = $3 AND repl_id = $4', [status, item.bucket, key(item.key), item.id])
      }
      return unqueued
    })
  }

  async retryReplication(item: ReplicationItem, attempts: number, nextAttempt: number, error: string): Promise<void> {
    await this.query(`UPDATE replication_queue SET attempts = $5, next_attempt = $6, last_error = $7, claim = NULL WHERE ${PostgresMetaStore.itemMatch}`, [
      item.bucket, key(item.key), item.id, item.claim, attempts, nextAttempt, error,
    ])
  }

  async dropReplication(item: ReplicationItem): Promise<void> {
    await this.query(`DELETE FROM replication_queue WHERE ${PostgresMetaStore.itemMatch}`, [item.bucket, key(item.key), item.id, item.claim])
  }

  /**
   * At a gateway's start: claims whose lease ran out are released (their items are due, attempt
   * counts kept). Live claims of other gateways, and retries scheduled for later, stay as they are.
   */
  async resumeReplications(now: number): Promise<number> {
    const rows = await this.query('UPDATE replication_queue SET claim = NULL WHERE claim IS NOT NULL AND next_attempt <= $1 RETURNING 1', [now])
    return rows.length
  }

  // ------------------------------------------------------------------ jobs

  async createJob(job: JobRow): Promise<void> {
    await this.query('INSERT INTO jobs (id, bucket, state, created_at, claim_until, body) VALUES ($1, $2, $3, $4, $5, $6)', jobParams(job))
  }

  async getJob(id: string): Promise<JobRow | undefined> {
    const [r] = await this.query('SELECT body FROM jobs WHERE id = $1', [id])
    return r ? jobFrom(r) : undefined
  }

  async listJobs(opts: { bucket?: string; limit?: number } = {}): Promise<JobRow[]> {
    const rows = await this.query('SELECT body FROM jobs WHERE ($1::text IS NULL OR bucket = $1) ORDER BY created_at DESC, id DESC LIMIT $2', [opts.bucket ?? null, opts.limit ?? 1000])
    return rows.map(jobFrom)
  }

  private async storeJob(c: Client, j: JobRow): Promise<void> {
    await c.query('UPDATE jobs SET bucket = $2, state = $3, created_at = $4, claim_until = $5, body = $6 WHERE id = $1', jobParams(j))
  }

  /**
   * The oldest claimable job, locked: one that another gateway's transaction holds (it is
   * claiming or checkpointing it) is skipped, so two gateways never claim one job, and neither
   * waits for the other. A claim whose lease ran out is claimable: its worker is gone or cut off.
   */
  claimJob(now: number, claim: (job: JobRow) => JobRow): Promise<JobRow | undefined> {
    return this.tx(async (c) => {
      const [r] = (
        await c.query(
          `SELECT body FROM jobs WHERE state IN ('queued', 'running') AND (claim_until IS NULL OR claim_until <= $1)
           ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED`,
          [now],
        )
      ).rows
      if (!r) return undefined
      const claimed = call(() => claim(jobFrom(r)))
      await this.storeJob(c, claimed)
      return claimed
    })
  }

  /**
   * The job's row read FOR UPDATE, so a checkpoint, a pause from another gateway and a claim
   * take turns on it; what `change` returns is stored, and the findings are appended in the
   * same transaction.
   */
  updateJob(id: string, change: (job: JobRow) => JobRow | null, findings: Array<Omit<JobFinding, 'seq'>> = []): Promise<JobRow | undefined> {
    return this.tx(async (c) => {
      const [r] = (await c.query('SELECT body FROM jobs WHERE id = $1 FOR UPDATE', [id])).rows
      if (!r) return undefined
      const job = jobFrom(r)
      const next = call(() => change(job))
      if (next === null) return job
      await this.storeJob(c, next)
      if (findings.length > 0) {
        await c.query(
          `INSERT INTO job_findings (job_id, key, kind, part, package, code, message, at)
           SELECT $1, f.key, f.kind, f.part, f.package, f.code, f.message, f.at
           FROM unnest($2::bytea[], $3::text[], $4::int[], $5::int[], $6::text[], $7::text[], $8::bigint[]) WITH ORDINALITY
             AS f(key, kind, part, package, code, message, at, n)
           ORDER BY f.n`,
          [
            id, findings.map((f) => key(f.key)), findings.map((f) => f.kind), findings.map((f) => f.part), findings.map((f) => f.package),
            findings.map((f) => f.code), findings.map((f) => JSON.stringify(f.message)), findings.map((f) => f.at),
          ],
        )
      }
      return next
    })
  }

  async jobFindings(id: string, afterSeq: number, limit: number): Promise<JobFinding[]> {
    const rows = await this.query('SELECT * FROM job_findings WHERE job_id = $1 AND seq > $2 ORDER BY seq LIMIT $3', [id, afterSeq, limit])
    return rows.map(findingFrom)
  }

  /**
   * At a gateway's start: only claims whose lease ran out are given back (their workers are
   * gone); the live claims of other gateways stay theirs.
   */
  resumeJobs(now: number, release: (job: JobRow) => JobRow): Promise<number> {
    return this.tx(async (c) => {
      const held = (await c.query('SELECT body FROM jobs WHERE claim_until IS NOT NULL AND claim_until <= $1 FOR UPDATE SKIP LOCKED', [now])).rows.map(jobFrom)
      for (const j of held) await this.storeJob(c, call(() => release(j)))
      return held.length
    })
  }

  // ------------------------------------------------------------------ users

  /** A user row, served from memory for userCacheMs (by access key or by id). */
  private async cachedUser(column: 'access_key' | 'id' | 'name', value: string): Promise<User | undefined> {
    const now = Date.now()
    const cacheKey = `${column}\0${value}`
    const hit = this.users.get(cacheKey)
    if (hit && now - hit.at < this.userCacheMs) return hit.user && { ...hit.user }
    const [r] = await this.query(`SELECT * FROM users WHERE ${column} = $1`, [value])
    const user = r ? userFrom(r) : undefined
    this.users.set(cacheKey, { user, at: now })
    while (this.users.size > 10_000) this.users.delete(this.users.keys().next().value!)
    return user && { ...user }
  }

  lookupUser(accessKey: string): Promise<User | undefined> {
    return this.cachedUser('access_key', accessKey)
  }

  lookupUserById(id: string): Promise<User | undefined> {
    return this.cachedUser('id', id)
  }

  lookupUserByName(name: string): Promise<User | undefined> {
    return this.cachedUser('name', name)
  }

  /** The user a name or access key names (S3SSE_NO_SUCH_USER if none). */
  async findUser(nameOrKey: string): Promise<User> {
    const [r] = await this.query('SELECT * FROM users WHERE name = $1 OR access_key = $1', [nameOrKey])
    if (!r) throw new S3sseError('S3SSE_NO_SUCH_USER', `No user "${nameOrKey}".`)
    return userFrom(r)
  }

  async encryptedData(): Promise<{ objects: number; uploads: number }> {
    const [r] = await this.query('SELECT (SELECT COUNT(*) FROM objects WHERE encryption IS NOT NULL) AS o, (SELECT COUNT(*) FROM uploads WHERE encryption IS NOT NULL) AS u')
    return { objects: num(r.o), uploads: num(r.u) }
  }

  /** `s3-sse user add --meta postgres://…`: a user of every gateway. */
  async addUser(name: string, keys?: { accessKey?: string; secretKey?: string; id?: string; createdAt?: string }): Promise<User> {
    if (!/^[A-Za-z0-9_.@-]{1,64}$/.test(name) || name === 'root') {
      throw new S3sseError('S3SSE_BAD_ARGUMENT', 'A user name is 1-64 letters, digits or _.@- and not "root".')
    }
    const user: User = { id: keys?.id ?? newUserId(), name, accessKey: keys?.accessKey ?? newAccessKey(), secretKey: keys?.secretKey ?? newSecretKey(), createdAt: keys?.createdAt ?? new Date().toISOString() }
    try {
      await this.pool.query('INSERT INTO users (access_key, id, name, secret_key, created_at) VALUES ($1, $2, $3, $4, $5)', [user.accessKey, user.id, user.name, user.secretKey, user.createdAt])
    } catch (err) {
      if ((err as { code?: string }).code === '23505') {
        const constraint = (err as { constraint?: string }).constraint
        throw new S3sseError('S3SSE_USER_EXISTS', constraint === 'users_name_key' ? `User "${name}" already exists.` : constraint === 'users_id_key' ? 'That user id is already in use.' : 'That access key is already in use.')
      }
      throw mapPg(err)
    }
    // A lookup that missed before the user existed is not served from memory any more.
    for (const [column, value] of [['access_key', user.accessKey], ['id', user.id], ['name', user.name]]) this.users.delete(`${column}\0${value}`)
    return user
  }

  async listUsers(): Promise<User[]> {
    const rows = await this.query('SELECT * FROM users ORDER BY created_at, name')
    return rows.map(userFrom)
  }

  /** Removes by name or access key; the user's console sessions end with it. */
  async removeUser(nameOrKey: string): Promise<User> {
    const user = await this.tx(async (c) => {
      const [r] = (await c.query('DELETE FROM users WHERE name = $1 OR access_key = $1 RETURNING *', [nameOrKey])).rows
      if (!r) return undefined
      await c.query('DELETE FROM console_sessions WHERE access_key = $1', [r.access_key])
      return userFrom(r)
    })
    if (!user) throw new S3sseError('S3SSE_NO_SUCH_USER', `No user "${nameOrKey}".`)
    this.users.delete(`access_key\0${user.accessKey}`)
    this.users.delete(`id\0${user.id}`)
    this.users.delete(`name\0${user.name}`)
    return user
  }

  // ------------------------------------------------------------------ the crash sweep

  async referencedBlobs(): Promise<Set<BlobId>> {
    const out = new Set<BlobId>()
    for (const r of await this.query('SELECT blobs FROM objects')) for (const b of JSON.parse(r.blobs as string) as string[]) out.add(b)
    for (const r of await this.query('SELECT blob FROM parts')) out.add(r.blob as string)
    return out
  }
}

/** Runs a caller's callback; what it throws leaves the transaction as it is (rolled back) and reaches the caller. */
function call<T>(fn: () => T): T {
  try {
    return fn()
  } catch (err) {
    throw new Passthrough(err)
  }
}

/** Console sessions in the database, so any gateway behind the load balancer knows them. */
class PgSessions implements SessionTable {
  constructor(private readonly store: PostgresMetaStore) {}

  async insert(s: SessionRow): Promise<void> {
    await this.store.query(
      'INSERT INTO console_sessions (id, user_name, access_key, secret_digest, created_at, last_seen) VALUES ($1, $2, $3, $4, $5, $6)',
      [s.id, s.userName, s.accessKey, s.secretDigest, s.createdAt, s.lastSeen],
    )
  }

  async get(id: string): Promise<SessionRow | undefined> {
    const [r] = await this.store.query('SELECT * FROM console_sessions WHERE id = $1', [id])
    return r ? sessionFrom(r) : undefined
  }

  async touch(id: string, lastSeen: number): Promise<void> {
    await this.store.query('UPDATE console_sessions SET last_seen = GREATEST(last_seen, $2) WHERE id = $1', [id, lastSeen])
  }

  async delete(id: string): Promise<void> {
    await this.store.query('DELETE FROM console_sessions WHERE id = $1', [id])
  }

  async deleteExpired(idleBefore: number, createdBefore: number): Promise<number> {
    return (await this.store.query('DELETE FROM console_sessions WHERE last_seen < $1 OR created_at < $2 RETURNING 1', [idleBefore, createdBefore])).length
  }
}

/** The id a session is kept under: SHA-256 of its token (the table cannot be replayed as cookies). */
export function sessionId(token: string): string {
  return createHash('sha256').update(token).digest('base64url')
}
