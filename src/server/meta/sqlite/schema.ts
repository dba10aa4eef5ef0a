/**
 * The SQLite schema of the embedded MetaStore and its migrations (docs/FORMAT.md, "Where the
 * embedded default keeps things", lists every column). better-sqlite3, WAL, synchronous=FULL:
 * blobs are published (fsynced) before their row is written, and FULL makes the commit
 * itself durable.
 */
import Database from 'better-sqlite3'
import { closeSync, openSync } from 'node:fs'
import { join } from 'node:path'
import { S3sseError } from '../../../errors.js'
import { decodeManifest } from '../../../object/index.js'

export const DB_FILE = 'meta.sqlite'
/**
 * 1: buckets, objects, uploads, parts. 2: objects.replication and the replication queue.
 * 3: owners are stable user ids, not names (buckets.owner, uploads.owner,
 *    replication_queue.destination_owner and the destination owner in replication rules).
 * 4: the KMS key version of objects and uploads (key_id, key_version), jobs and their findings.
 * 5: objects.tags, uploads.tags (object tagging).
 */
export const SCHEMA_VERSION = 5

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
  key_id        TEXT,
  key_version   INTEGER,
  tags          TEXT,
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
  encryption TEXT,
  key_id     TEXT,
  key_version INTEGER,
  tags       TEXT
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
CREATE TABLE IF NOT EXISTS jobs (
  id          TEXT PRIMARY KEY,
  bucket      TEXT NOT NULL,
  state       TEXT NOT NULL,
  created_at  INTEGER NOT NULL,
  claim_until INTEGER,
  body        TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS jobs_claimable ON jobs (state, created_at);
CREATE TABLE IF NOT EXISTS job_findings (
  seq     INTEGER PRIMARY KEY AUTOINCREMENT,
  job_id  TEXT NOT NULL,
  key     TEXT NOT NULL,
  kind    TEXT NOT NULL,
  part    INTEGER,
  package INTEGER,
  code    TEXT NOT NULL,
  message TEXT NOT NULL,
  at      INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS job_findings_by_job ON job_findings (job_id, seq);
`

/** Opens (creating or upgrading in place) the metadata database of a data dir. */
export function openDatabase(dataDir: string): Database.Database {
  // Created 0600 before SQLite opens it: SQLite gives its -wal and -shm files the database
  // file's mode, and would create the database itself 0644.
  const file = join(dataDir, DB_FILE)
  closeSync(openSync(file, 'a', 0o600))
  const db = new Database(file)
  try {
    db.pragma('journal_mode = WAL')
    db.pragma('synchronous = FULL')
    db.pragma('busy_timeout = 5000')
    const version = db.pragma('user_version', { simple: true }) as number
    if (version > SCHEMA_VERSION) {
      throw new S3sseError('S3SSE_META_UNAVAILABLE', `${DB_FILE} has schema version ${version}; this s3-sse knows up to ${SCHEMA_VERSION}`)
    }
    // Only a database older than this version is written to here: a start on a full disk
    // must not need to write before it can serve deletes.
    if (version < SCHEMA_VERSION) {
      db.transaction(() => {
        db.exec(SCHEMA)
        const columns = (table: string) => (db.prepare(`SELECT name FROM pragma_table_info('${table}')`).all() as Array<{ name: string }>).map((c) => c.name)
        // Version 1 had no replication column (its other tables are created above if missing).
        if (!columns('objects').includes('replication')) db.exec('ALTER TABLE objects ADD COLUMN replication TEXT')
        // Version 4 had no object tags.
        if (!columns('objects').includes('tags')) db.exec('ALTER TABLE objects ADD COLUMN tags TEXT')
        if (!columns('uploads').includes('tags')) db.exec('ALTER TABLE uploads ADD COLUMN tags TEXT')
        if (version < 3) ownersToIds(db)
        // Versions 1 to 3 kept the key version only inside manifests and upload states.
        if (!columns('objects').includes('key_id')) {
          db.exec('ALTER TABLE objects ADD COLUMN key_id TEXT; ALTER TABLE objects ADD COLUMN key_version INTEGER')
          fillObjectKeys(db)
        }
        if (!columns('uploads').includes('key_id')) {
          db.exec(`ALTER TABLE uploads ADD COLUMN key_id TEXT; ALTER TABLE uploads ADD COLUMN key_version INTEGER;
            UPDATE uploads SET key_id = json_extract(state, '$.encryption.keyId'), key_version = json_extract(state, '$.encryption.keyVersion')
            WHERE json_extract(state, '$.encryption') IS NOT NULL`)
        }
        db.pragma(`user_version = ${SCHEMA_VERSION}`)
      })()
    }
  } catch (err) {
    db.close()
    throw err
  }
  return db
}

/**
 * Schema 3: until version 2 an owner was a user's name, so a user created later under a
 * removed user's name owned that user's buckets. Owners become ids: `root` stays `root`;
 * every other name NAME becomes `legacy:NAME`, the id UserStore gives an entry of an older
 * users.json (which had no ids) — so the same users keep their buckets, and users added from
 * now on get fresh random ids that no old bucket carries.
 */
function ownersToIds(db: Database.Database): void {
  // Before version 3 every owner is a name (root's is 'root').
  const id = (owner: string) => (owner === 'root' ? owner : `legacy:${owner}`)
  db.function('s3sse_owner_id', (owner: unknown) => (typeof owner === 'string' ? id(owner) : owner))
  db.exec(`
    UPDATE buckets SET owner = s3sse_owner_id(owner);
    UPDATE uploads SET owner = s3sse_owner_id(owner);
    UPDATE replication_queue SET destination_owner = s3sse_owner_id(destination_owner) WHERE destination_owner IS NOT NULL;
  `)
  const rows = db.prepare('SELECT name, settings FROM buckets').all() as Array<{ name: string; settings: string }>
  const update = db.prepare('UPDATE buckets SET settings = ? WHERE name = ?')
  for (const r of rows) {
    const settings = JSON.parse(r.settings) as { replication?: { rules?: Array<{ destination?: { owner?: string } }> } }
    let changed = false
    for (const rule of settings.replication?.rules ?? []) {
      if (typeof rule.destination?.owner === 'string') {
        rule.destination.owner = id(rule.destination.owner)
        changed = true
      }
    }
    if (changed) update.run(JSON.stringify(settings), r.name)
  }
}

/** Schema 4: each encrypted object's key id and version, read from its manifest. */
function fillObjectKeys(db: Database.Database): void {
  const set = db.prepare('UPDATE objects SET key_id = ?, key_version = ? WHERE bucket = ? AND key = ?')
  const rows = db.prepare('SELECT bucket, key, manifest FROM objects WHERE encryption IS NOT NULL').all() as Array<{ bucket: string; key: string; manifest: Buffer }>
  for (const r of rows) {
    let e
    try {
      e = decodeManifest(r.manifest).encryption
    } catch {
      continue // a damaged manifest stays as it is: scrub reports it, reads fail as before
    }
    if (e) set.run(e.keyId, e.keyVersion, r.bucket, r.key)
  }
}
