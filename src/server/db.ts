/**
 * Metadata in SQLite (better-sqlite3, WAL): buckets, objects, multipart uploads and parts,
 * and the replication queue. A row is written only after the object's data is durable on
 * disk, so a crash never exposes a partial object; a write that is to be replicated queues
 * its replication in the same transaction as its row, so a crash never loses one. Keys compare in UTF-8 byte order (SQLite's BINARY collation),
 * which is S3's listing order.
 */
import Database from 'better-sqlite3'
import { randomBytes } from 'node:crypto'
import { closeSync, openSync } from 'node:fs'
import { join } from 'node:path'
import type { ChecksumAlgorithm, ChecksumType } from '../s3/checksums.js'
import { replicationRuleFor, type ReplicationConfiguration, type ReplicationStatus } from '../s3/replication.js'
import type { StoredEncryption } from '../s3/sse.js'

export const DB_FILE = 'meta.sqlite'
/** 2: objects.replication and the replication queue. */
const SCHEMA_VERSION = 2

const SCHEMA = `
CREATE TABLE IF NOT EXISTS buckets (
  name        TEXT PRIMARY KEY,
  owner       TEXT NOT NULL,
  region      TEXT NOT NULL,
  created_at  INTEGER NOT NULL,
  settings    TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS objects (
  bucket        TEXT NOT NULL,
  key           TEXT NOT NULL,
  size          INTEGER NOT NULL,
  etag          TEXT NOT NULL,
  last_modified INTEGER NOT NULL,
  headers       TEXT NOT NULL,
  meta          TEXT NOT NULL,
  checksum      TEXT,
  parts_count   INTEGER NOT NULL,
  manifest      BLOB NOT NULL,
  files         TEXT NOT NULL,
  encryption    TEXT,
  replication   TEXT,
  PRIMARY KEY (bucket, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS uploads (
  upload_id  TEXT PRIMARY KEY,
  bucket     TEXT NOT NULL,
  key        TEXT NOT NULL,
  initiated  INTEGER NOT NULL,
  owner      TEXT NOT NULL,
  state      TEXT NOT NULL,
  headers    TEXT NOT NULL,
  meta       TEXT NOT NULL,
  checksum_algorithm TEXT,
  checksum_type      TEXT,
  encryption TEXT
);
CREATE INDEX IF NOT EXISTS uploads_by_key ON uploads (bucket, key, upload_id);
CREATE TABLE IF NOT EXISTS parts (
  upload_id     TEXT NOT NULL,
  part_number   INTEGER NOT NULL,
  size          INTEGER NOT NULL,
  etag          TEXT NOT NULL,
  last_modified INTEGER NOT NULL,
  checksum      TEXT,
  record        TEXT NOT NULL,
  file          TEXT NOT NULL,
  PRIMARY KEY (upload_id, part_number)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS replication_queue (
  bucket       TEXT NOT NULL,
  key          TEXT NOT NULL,
  id           TEXT NOT NULL,
  destination  TEXT NOT NULL,
  destination_owner TEXT,
  rule_id      TEXT NOT NULL,
  enqueued_at  INTEGER NOT NULL,
  attempts     INTEGER NOT NULL DEFAULT 0,
  next_attempt INTEGER NOT NULL,
  last_error   TEXT,
  PRIMARY KEY (bucket, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS replication_due ON replication_queue (next_attempt);
`

export interface BucketRow {
  name: string
  owner: string
  region: string
  createdAt: number
  settings: Record<string, unknown>
}

export interface StoredChecksum {
  algorithm: ChecksumAlgorithm
  type: ChecksumType
  value: string
}

export interface ObjectRow {
  bucket: string
  key: string
  size: number
  etag: string
  lastModified: number
  headers: Record<string, string>
  meta: Record<string, string>
  checksum?: StoredChecksum
  partsCount: number
  manifest: Uint8Array
  /** Stored file id per manifest part, in order. */
  files: string[]
  encryption?: StoredEncryption
  /**
   * x-amz-replication-status. Set by putObject, not by the caller, except REPLICA for a
   * replica (which is never replicated again). `id` names the write a PENDING entry is for.
   */
  replication?: ObjectReplication
}

export interface ObjectReplication {
  status: ReplicationStatus
  id?: string
}

/** One write waiting to be replicated: the latest write of a source key (the primary key). */
export interface ReplicationItem {
  bucket: string
  key: string
  /** Matches objects.replication.id of the write it is for; a newer write gets a new one. */
  id: string
  destination: string
  /** Who owned the destination when the rule was stored; a replica goes only to that owner. */
  destinationOwner: string | null
  ruleId: string
  enqueuedAt: number
  attempts: number
  nextAttempt: number
  lastError: string | null
}

/** The columns a listing needs (no manifest). */
export interface ObjectSummary {
  key: string
  size: number
  etag: string
  lastModified: number
}

export interface ObjectDetails extends ObjectSummary {
  encryption?: StoredEncryption
}

export interface UploadRow {
  uploadId: string
  bucket: string
  key: string
  initiated: number
  owner: string
  /** The object layer's UploadState, JSON. */
  state: unknown
  headers: Record<string, string>
  meta: Record<string, string>
  checksumAlgorithm?: ChecksumAlgorithm
  checksumType?: ChecksumType
  encryption?: StoredEncryption
}

export interface PartRow {
  uploadId: string
  partNumber: number
  size: number
  etag: string
  lastModified: number
  checksum?: { algorithm: ChecksumAlgorithm; value: string }
  /** The object layer's PartRecord, JSON. */
  record: unknown
  file: string
}

interface RawObject {
  bucket: string
  key: string
  size: number
  etag: string
  last_modified: number
  headers: string
  meta: string
  checksum: string | null
  parts_count: number
  manifest: Buffer
  files: string
  encryption: string | null
  replication: string | null
}

interface RawUpload {
  upload_id: string
  bucket: string
  key: string
  initiated: number
  owner: string
  state: string
  headers: string
  meta: string
  checksum_algorithm: string | null
  checksum_type: string | null
  encryption: string | null
}

interface RawPart {
  upload_id: string
  part_number: number
  size: number
  etag: string
  last_modified: number
  checksum: string | null
  record: string
  file: string
}

function objectFromRaw(r: RawObject): ObjectRow {
  return {
    bucket: r.bucket,
    key: r.key,
    size: r.size,
    etag: r.etag,
    lastModified: r.last_modified,
    headers: JSON.parse(r.headers),
    meta: JSON.parse(r.meta),
    checksum: r.checksum ? JSON.parse(r.checksum) : undefined,
    partsCount: r.parts_count,
    manifest: r.manifest,
    files: JSON.parse(r.files),
    encryption: r.encryption ? JSON.parse(r.encryption) : undefined,
    replication: r.replication ? JSON.parse(r.replication) : undefined,
  }
}

interface RawReplicationItem {
  bucket: string
  key: string
  id: string
  destination: string
  destination_owner: string | null
  rule_id: string
  enqueued_at: number
  attempts: number
  next_attempt: number
  last_error: string | null
}

function itemFromRaw(r: RawReplicationItem): ReplicationItem {
  return {
    bucket: r.bucket,
    key: r.key,
    id: r.id,
    destination: r.destination,
    destinationOwner: r.destination_owner,
    ruleId: r.rule_id,
    enqueuedAt: r.enqueued_at,
    attempts: r.attempts,
    nextAttempt: r.next_attempt,
    lastError: r.last_error,
  }
}

function uploadFromRaw(r: RawUpload): UploadRow {
  return {
    uploadId: r.upload_id,
    bucket: r.bucket,
    key: r.key,
    initiated: r.initiated,
    owner: r.owner,
    state: JSON.parse(r.state),
    headers: JSON.parse(r.headers),
    meta: JSON.parse(r.meta),
    checksumAlgorithm: (r.checksum_algorithm ?? undefined) as ChecksumAlgorithm | undefined,
    checksumType: (r.checksum_type ?? undefined) as ChecksumType | undefined,
    encryption: r.encryption ? JSON.parse(r.encryption) : undefined,
  }
}

function partFromRaw(r: RawPart): PartRow {
  return {
    uploadId: r.upload_id,
    partNumber: r.part_number,
    size: r.size,
    etag: r.etag,
    lastModified: r.last_modified,
    checksum: r.checksum ? JSON.parse(r.checksum) : undefined,
    record: JSON.parse(r.record),
    file: r.file,
  }
}

/**
 * The smallest string greater than every string that starts with `prefix`, in UTF-8 byte
 * order (UTF-8 keeps code point order): the last code point plus one. Null: no bound.
 */
export function prefixUpperBound(prefix: string): string | null {
  const cps = Array.from(prefix)
  while (cps.length > 0) {
    const last = cps.pop()!.codePointAt(0)!
    if (last < 0x10ffff) {
      const next = last === 0xd7ff ? 0xe000 : last + 1
      return cps.join('') + String.fromCodePoint(next)
    }
  }
  return null
}

export class MetaStore {
  readonly db: Database.Database
  private readonly stmts
  /** Called after a write queued a replication (the replication worker wakes up). */
  onReplicationQueued?: () => void

  constructor(dataDir: string) {
    // Created 0600 before SQLite opens it: SQLite gives its -wal and -shm files the database
    // file's mode, and would create the database itself 0644.
    const file = join(dataDir, DB_FILE)
    closeSync(openSync(file, 'a', 0o600))
    this.db = new Database(file)
    this.db.pragma('journal_mode = WAL')
    // Data files are fsynced before their row is written; FULL makes the commit itself durable.
    this.db.pragma('synchronous = FULL')
    this.db.pragma('busy_timeout = 5000')
    const version = this.db.pragma('user_version', { simple: true }) as number
    if (version > SCHEMA_VERSION) {
      throw new Error(`${DB_FILE} has schema version ${version}; this s3-sse knows up to ${SCHEMA_VERSION}`)
    }
    this.db.transaction(() => {
      this.db.exec(SCHEMA)
      // Version 1 had no replication column (its other tables are created above if missing).
      const columns = this.db.prepare("SELECT name FROM pragma_table_info('objects')").all() as Array<{ name: string }>
      if (!columns.some((c) => c.name === 'replication')) this.db.exec('ALTER TABLE objects ADD COLUMN replication TEXT')
      this.db.pragma(`user_version = ${SCHEMA_VERSION}`)
    })()
    const db = this.db
    this.stmts = {
      getBucket: db.prepare('SELECT name, owner, region, created_at AS createdAt, settings FROM buckets WHERE name = ?'),
      listBuckets: db.prepare('SELECT name, owner, region, created_at AS createdAt, settings FROM buckets ORDER BY name'),
      insertBucket: db.prepare('INSERT INTO buckets (name, owner, region, created_at, settings) VALUES (?, ?, ?, ?, ?)'),
      deleteBucket: db.prepare('DELETE FROM buckets WHERE name = ?'),
      setBucketSettings: db.prepare('UPDATE buckets SET settings = ? WHERE name = ?'),
      anyObject: db.prepare('SELECT 1 FROM objects WHERE bucket = ? LIMIT 1'),
      anyUpload: db.prepare('SELECT 1 FROM uploads WHERE bucket = ? LIMIT 1'),
      getObject: db.prepare('SELECT * FROM objects WHERE bucket = ? AND key = ?'),
      putObject: db.prepare(
        `INSERT OR REPLACE INTO objects (bucket, key, size, etag, last_modified, headers, meta, checksum, parts_count, manifest, files, encryption, replication)
         VALUES (@bucket, @key, @size, @etag, @lastModified, @headers, @meta, @checksum, @partsCount, @manifest, @files, @encryption, @replication)`,
      ),
      deleteObject: db.prepare('DELETE FROM objects WHERE bucket = ? AND key = ?'),
      queueReplication: db.prepare(
        `INSERT OR REPLACE INTO replication_queue (bucket, key, id, destination, destination_owner, rule_id, enqueued_at, attempts, next_attempt, last_error)
         VALUES (@bucket, @key, @id, @destination, @destinationOwner, @ruleId, @enqueuedAt, 0, @enqueuedAt, NULL)`,
      ),
      unqueueKey: db.prepare('DELETE FROM replication_queue WHERE bucket = ? AND key = ?'),
      unqueueItem: db.prepare('DELETE FROM replication_queue WHERE bucket = ? AND key = ? AND id = ?'),
      setReplicationStatus: db.prepare(
        `UPDATE objects SET replication = ? WHERE bucket = ? AND key = ? AND json_extract(replication, '$.id') = ?`,
      ),
      dueReplications: db.prepare('SELECT * FROM replication_queue WHERE next_attempt <= ? ORDER BY next_attempt, enqueued_at LIMIT ?'),
      nextReplication: db.prepare('SELECT MIN(next_attempt) AS at FROM replication_queue'),
      countReplications: db.prepare('SELECT COUNT(*) AS n FROM replication_queue'),
      retryReplication: db.prepare(
        'UPDATE replication_queue SET attempts = ?, next_attempt = ?, last_error = ? WHERE bucket = ? AND key = ? AND id = ?',
      ),
      resumeReplications: db.prepare('UPDATE replication_queue SET next_attempt = ? WHERE next_attempt > ?'),
      listObjects: db.prepare(
        `SELECT key, size, etag, last_modified AS lastModified FROM objects
         WHERE bucket = @bucket AND key > @after AND key >= @prefix AND (@upper IS NULL OR key < @upper)
         ORDER BY key LIMIT @limit`,
      ),
      listObjectDetails: db.prepare(
        `SELECT key, size, etag, last_modified AS lastModified, encryption FROM objects
         WHERE bucket = @bucket AND key > @after AND key >= @prefix AND (@upper IS NULL OR key < @upper)
         ORDER BY key LIMIT @limit`,
      ),
      insertUpload: db.prepare(
        `INSERT INTO uploads (upload_id, bucket, key, initiated, owner, state, headers, meta, checksum_algorithm, checksum_type, encryption)
         VALUES (@uploadId, @bucket, @key, @initiated, @owner, @state, @headers, @meta, @checksumAlgorithm, @checksumType, @encryption)`,
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
      allFiles: db.prepare(`SELECT files AS f FROM objects UNION ALL SELECT json_array(file) AS f FROM parts`),
    }
  }

  close(): void {
    this.db.close()
  }

  /** How many objects and multipart uploads are stored encrypted (they need the keyring that wrapped their keys). */
  encryptedDataCount(): { objects: number; uploads: number } {
    const n = (sql: string) => (this.db.prepare(sql).get() as { n: number }).n
    return {
      objects: n('SELECT COUNT(*) AS n FROM objects WHERE encryption IS NOT NULL'),
      uploads: n('SELECT COUNT(*) AS n FROM uploads WHERE encryption IS NOT NULL'),
    }
  }

  // ------------------------------------------------------------------ buckets

  getBucket(name: string): BucketRow | undefined {
    const r = this.stmts.getBucket.get(name) as (Omit<BucketRow, 'settings'> & { settings: string }) | undefined
    return r ? { ...r, settings: JSON.parse(r.settings) } : undefined
  }

  listBuckets(): BucketRow[] {
    return (this.stmts.listBuckets.all() as Array<Omit<BucketRow, 'settings'> & { settings: string }>).map((r) => ({
      ...r,
      settings: JSON.parse(r.settings),
    }))
  }

  /** False when the bucket already exists. */
  createBucket(b: BucketRow): boolean {
    try {
      this.stmts.insertBucket.run(b.name, b.owner, b.region, b.createdAt, JSON.stringify(b.settings))
      return true
    } catch (err) {
      if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY') return false
      throw err
    }
  }

  /** Deletes the bucket if it holds no objects and no uploads: 'deleted' | 'not-empty' | 'missing'. */
  deleteBucketIfEmpty(name: string): 'deleted' | 'not-empty' | 'missing' {
    return this.db.transaction(() => {
      if (!this.stmts.getBucket.get(name)) return 'missing' as const
      if (this.stmts.anyObject.get(name) || this.stmts.anyUpload.get(name)) return 'not-empty' as const
      this.stmts.deleteBucket.run(name)
      return 'deleted' as const
    })()
  }

  setBucketSettings(name: string, settings: Record<string, unknown>): void {
    this.stmts.setBucketSettings.run(JSON.stringify(settings), name)
  }

  /** Changes a bucket's settings in one transaction; false when the bucket is gone. */
  updateBucketSettings(name: string, change: (settings: Record<string, unknown>) => void): boolean {
    return this.db.transaction(() => {
      const b = this.getBucket(name)
      if (!b) return false
      change(b.settings)
      this.setBucketSettings(name, b.settings)
      return true
    })()
  }

  // ------------------------------------------------------------------ objects

  getObject(bucket: string, key: string): ObjectRow | undefined {
    const r = this.stmts.getObject.get(bucket, key) as RawObject | undefined
    return r ? objectFromRaw(r) : undefined
  }

  /**
   * Writes (or replaces) an object row if its bucket still exists; returns the files of
   * the object it replaced (to unlink after the commit), or null when the bucket is gone.
   *
   * Every write path (PutObject, CopyObject, PostObject, CompleteMultipartUpload, replicas)
   * comes through here, so this is where a write is matched against its bucket's replication
   * rules, read in the same transaction: a match marks the row PENDING and queues it,
   * replacing whatever was queued for an older write of the key; a write that matches no
   * rule (or is a replica) unqueues the older write, whose data is gone.
   */
  putObject(o: ObjectRow): { replacedFiles: string[] } | null {
    let queued = false
    const result = this.db.transaction(() => {
      const bucket = this.stmts.getBucket.get(o.bucket) as { settings: string } | undefined
      if (!bucket) return null
      let replication: ObjectReplication | undefined
      if (o.replication?.status === 'REPLICA') {
        replication = { status: 'REPLICA' }
        this.stmts.unqueueKey.run(o.bucket, o.key)
      } else {
        const config = (JSON.parse(bucket.settings) as { replication?: ReplicationConfiguration }).replication
        const rule = replicationRuleFor(config, o.key)
        if (rule) {
          replication = { status: 'PENDING', id: randomBytes(12).toString('base64url') }
          this.stmts.queueReplication.run({
            bucket: o.bucket,
            key: o.key,
            id: replication.id,
            destination: rule.destination.bucket,
            destinationOwner: rule.destination.owner ?? null,
            ruleId: rule.id,
            enqueuedAt: Date.now(),
          })
          queued = true
        } else {
          this.stmts.unqueueKey.run(o.bucket, o.key)
        }
      }
      const old = this.stmts.getObject.get(o.bucket, o.key) as RawObject | undefined
      this.stmts.putObject.run({
        bucket: o.bucket,
        key: o.key,
        size: o.size,
        etag: o.etag,
        lastModified: o.lastModified,
        headers: JSON.stringify(o.headers),
        meta: JSON.stringify(o.meta),
        checksum: o.checksum ? JSON.stringify(o.checksum) : null,
        partsCount: o.partsCount,
        manifest: Buffer.from(o.manifest.buffer, o.manifest.byteOffset, o.manifest.byteLength),
        files: JSON.stringify(o.files),
        encryption: o.encryption ? JSON.stringify(o.encryption) : null,
        replication: replication ? JSON.stringify(replication) : null,
      })
      return { replacedFiles: old ? (JSON.parse(old.files) as string[]) : [] }
    })()
    if (queued) this.onReplicationQueued?.()
    return result
  }

  /**
   * Deletes an object row; returns its files (to unlink after the commit), or null if absent.
   * A replication still queued for it goes too: deletes are not replicated.
   */
  deleteObject(bucket: string, key: string): string[] | null {
    return this.db.transaction(() => {
      const old = this.stmts.getObject.get(bucket, key) as RawObject | undefined
      if (!old) return null
      this.stmts.deleteObject.run(bucket, key)
      this.stmts.unqueueKey.run(bucket, key)
      return JSON.parse(old.files) as string[]
    })()
  }

  listObjects(bucket: string, after: string, prefix: string, limit: number): ObjectSummary[] {
    return this.stmts.listObjects.all({ bucket, after, prefix, upper: prefixUpperBound(prefix), limit }) as ObjectSummary[]
  }

  /** listObjects plus how each object is encrypted (the web console's listing). */
  listObjectDetails(bucket: string, after: string, prefix: string, limit: number): ObjectDetails[] {
    const rows = this.stmts.listObjectDetails.all({ bucket, after, prefix, upper: prefixUpperBound(prefix), limit }) as Array<ObjectSummary & { encryption: string | null }>
    return rows.map(({ encryption, ...o }) => (encryption ? { ...o, encryption: JSON.parse(encryption) as StoredEncryption } : o))
  }

  // ------------------------------------------------------------------ multipart

  createUpload(u: UploadRow): void {
    this.stmts.insertUpload.run({
      uploadId: u.uploadId,
      bucket: u.bucket,
      key: u.key,
      initiated: u.initiated,
      owner: u.owner,
      state: JSON.stringify(u.state),
      headers: JSON.stringify(u.headers),
      meta: JSON.stringify(u.meta),
      checksumAlgorithm: u.checksumAlgorithm ?? null,
      checksumType: u.checksumType ?? null,
      encryption: u.encryption ? JSON.stringify(u.encryption) : null,
    })
  }

  getUpload(uploadId: string): UploadRow | undefined {
    const r = this.stmts.getUpload.get(uploadId) as RawUpload | undefined
    return r ? uploadFromRaw(r) : undefined
  }

  /** Uploads after (key, uploadId), whole keys at a time so a page never splits one key's uploads. */
  listUploads(bucket: string, after: string, afterId: string, prefix: string, limit: number): UploadRow[] {
    const upper = prefixUpperBound(prefix)
    const rows = (this.stmts.listUploads.all({ bucket, after, afterId, prefix, upper, limit }) as RawUpload[]).map(uploadFromRaw)
    if (rows.length === limit) {
      const last = rows[rows.length - 1]
      const rest = this.stmts.listUploads.all({ bucket, after: last.key, afterId: last.uploadId, prefix, upper, limit: 1_000_000 }) as RawUpload[]
      for (const r of rest) if (r.key === last.key) rows.push(uploadFromRaw(r))
    }
    return rows
  }

  /** Records a part if its upload still exists; returns the file of the part it replaced, or null when the upload is gone. */
  putPart(p: PartRow): { replacedFile?: string } | null {
    return this.db.transaction(() => {
      if (!this.stmts.getUpload.get(p.uploadId)) return null
      const old = this.stmts.getPart.get(p.uploadId, p.partNumber) as RawPart | undefined
      this.stmts.putPart.run({
        uploadId: p.uploadId,
        partNumber: p.partNumber,
        size: p.size,
        etag: p.etag,
        lastModified: p.lastModified,
        checksum: p.checksum ? JSON.stringify(p.checksum) : null,
        record: JSON.stringify(p.record),
        file: p.file,
      })
      return { replacedFile: old?.file }
    })()
  }

  listParts(uploadId: string, after: number, limit: number): PartRow[] {
    return (this.stmts.listParts.all(uploadId, after, limit) as RawPart[]).map(partFromRaw)
  }

  allParts(uploadId: string): PartRow[] {
    return (this.stmts.allParts.all(uploadId) as RawPart[]).map(partFromRaw)
  }

  /** Removes an upload and its parts; returns the part files (to unlink), or null if absent. */
  deleteUpload(uploadId: string): string[] | null {
    return this.db.transaction(() => {
      if (!this.stmts.getUpload.get(uploadId)) return null
      const files = (this.stmts.allParts.all(uploadId) as RawPart[]).map((p) => p.file)
      this.stmts.deleteParts.run(uploadId)
      this.stmts.deleteUpload.run(uploadId)
      return files
    })()
  }

  /**
   * Completes an upload atomically: the object row replaces any previous one, the upload
   * and its parts go. Returns files no longer referenced, or null if the upload is gone.
   */
  completeUpload(uploadId: string, o: ObjectRow): { unusedFiles: string[] } | null {
    return this.db.transaction(() => {
      const partFiles = this.deleteUpload(uploadId)
      if (partFiles === null) return null
      const put = this.putObject(o)
      if (put === null) throw new Error('bucket vanished during CompleteMultipartUpload')
      const used = new Set(o.files)
      return { unusedFiles: [...partFiles.filter((f) => !used.has(f)), ...put.replacedFiles] }
    })()
  }

  // ------------------------------------------------------------------ replication queue

  /** Queued replications due at `now`, oldest due first. */
  dueReplications(now: number, limit: number): ReplicationItem[] {
    return (this.stmts.dueReplications.all(now, limit) as RawReplicationItem[]).map(itemFromRaw)
  }

  /** When the next queued replication is due (ms since the epoch), or null when none is queued. */
  nextReplicationAt(): number | null {
    return (this.stmts.nextReplication.get() as { at: number | null }).at
  }

  pendingReplications(): number {
    return (this.stmts.countReplications.get() as { n: number }).n
  }

  /**
   * Ends a replication: unqueues the item and sets its source object's status, both only if
   * they are still about the same write. False when a newer write superseded it.
   */
  finishReplication(item: ReplicationItem, status: 'COMPLETED' | 'FAILED'): boolean {
    return this.db.transaction(() => {
      const unqueued = this.stmts.unqueueItem.run(item.bucket, item.key, item.id).changes > 0
      this.stmts.setReplicationStatus.run(JSON.stringify({ status, id: item.id }), item.bucket, item.key, item.id)
      return unqueued
    })()
  }

  /** Drops an item whose write no longer exists (deleted or overwritten). */
  dropReplication(item: ReplicationItem): void {
    this.stmts.unqueueItem.run(item.bucket, item.key, item.id)
  }

  /** Records a failed attempt and when to try again (if the item is still the current one). */
  retryReplication(item: ReplicationItem, attempts: number, nextAttempt: number, error: string): void {
    this.stmts.retryReplication.run(attempts, nextAttempt, error, item.bucket, item.key, item.id)
  }

  /** At start: everything queued is due now (attempt counts are kept). */
  resumeReplications(now: number): number {
    return this.stmts.resumeReplications.run(now, now).changes
  }

  /** Every file id referenced by an object or a part (for the startup sweep of orphans). */
  referencedFiles(): Set<string> {
    const out = new Set<string>()
    for (const row of this.stmts.allFiles.iterate() as Iterable<{ f: string }>) {
      for (const f of JSON.parse(row.f) as string[]) out.add(f)
    }
    return out
  }
}
