/**
 * The PostgreSQL schema of the fleet MetaStore and its migrations (docs/DEPLOY.md lists the
 * tables). Applied on start by every gateway, under a transaction-scoped advisory lock, so
 * gateways that start at once run each migration exactly once and none sees a half-made schema.
 *
 * Object keys are BYTEA (their UTF-8 bytes): PostgreSQL compares BYTEA byte by byte, which is
 * S3's listing order, and a key may hold any character, NUL included, which TEXT cannot.
 * Bucket names are checked S3 names, kept as TEXT in the "C" collation (byte order).
 * JSON documents are TEXT, stored exactly as written (JSONB would reorder their keys).
 */
import type { ClientBase } from 'pg'
import { S3sseError } from '../../../errors.js'
import { decodeManifest } from '../../../object/index.js'

/**
 * 1: buckets, objects, uploads, parts, the replication queue, users (with stable ids: bucket
 * and upload owners are ids, as in SQLite schema 3), console sessions.
 * 2: the KMS key version of objects and uploads (key_id, key_version, filled in from the
 *    manifests and upload states already stored), jobs and their findings (SQLite schema 4).
 * 3: objects.tags, uploads.tags (object tagging; SQLite schema 5).
 */
export const PG_SCHEMA_VERSION = 3

/** The advisory lock the migrations hold ('S3SE' as a number): one migrating gateway at a time. */
export const MIGRATION_LOCK = 0x53335345

/** A migration: its DDL, then (optionally) rows brought up to it, in the same transaction. */
interface Migration {
  sql: string
  fill?: (client: ClientBase) => Promise<void>
}

const MIGRATIONS: Record<number, Migration> = {
  1: {
    sql: `
CREATE TABLE buckets (
  name        TEXT COLLATE "C" PRIMARY KEY,
  owner       TEXT NOT NULL,
  region      TEXT NOT NULL,
  created_at  BIGINT NOT NULL,
  settings    TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE objects (
  bucket        TEXT COLLATE "C" NOT NULL,
  key           BYTEA NOT NULL,
  size          BIGINT NOT NULL,
  etag          TEXT NOT NULL,
  last_modified BIGINT NOT NULL,
  headers       TEXT NOT NULL,
  meta          TEXT NOT NULL,
  checksum      TEXT,
  parts_count   INTEGER NOT NULL,
  manifest      BYTEA NOT NULL,
  blobs         TEXT NOT NULL,
  encryption    TEXT,
  repl_status   TEXT,
  repl_id       TEXT,
  PRIMARY KEY (bucket, key)
);
CREATE TABLE uploads (
  upload_id  TEXT COLLATE "C" PRIMARY KEY,
  bucket     TEXT COLLATE "C" NOT NULL,
  key        BYTEA NOT NULL,
  initiated  BIGINT NOT NULL,
  owner      TEXT NOT NULL,
  state      TEXT NOT NULL,
  headers    TEXT NOT NULL,
  meta       TEXT NOT NULL,
  checksum_algorithm TEXT,
  checksum_type      TEXT,
  encryption TEXT
);
CREATE INDEX uploads_by_key ON uploads (bucket, key, upload_id);
CREATE TABLE parts (
  upload_id     TEXT COLLATE "C" NOT NULL,
  part_number   INTEGER NOT NULL,
  size          BIGINT NOT NULL,
  etag          TEXT NOT NULL,
  last_modified BIGINT NOT NULL,
  checksum      TEXT,
  record        TEXT NOT NULL,
  blob          TEXT NOT NULL,
  PRIMARY KEY (upload_id, part_number)
);
CREATE TABLE replication_queue (
  bucket       TEXT COLLATE "C" NOT NULL,
  key          BYTEA NOT NULL,
  id           TEXT NOT NULL,
  destination  TEXT NOT NULL,
  destination_owner TEXT,
  rule_id      TEXT NOT NULL,
  enqueued_at  BIGINT NOT NULL,
  attempts     INTEGER NOT NULL DEFAULT 0,
  next_attempt BIGINT NOT NULL,
  last_error   TEXT,
  claim        TEXT,
  PRIMARY KEY (bucket, key)
);
CREATE INDEX replication_due ON replication_queue (next_attempt, enqueued_at);
CREATE TABLE users (
  access_key  TEXT COLLATE "C" PRIMARY KEY,
  id          TEXT COLLATE "C" NOT NULL UNIQUE,
  name        TEXT COLLATE "C" NOT NULL UNIQUE,
  secret_key  TEXT NOT NULL,
  created_at  TEXT NOT NULL
);
CREATE TABLE console_sessions (
  id            TEXT COLLATE "C" PRIMARY KEY,
  user_name     TEXT NOT NULL,
  access_key    TEXT NOT NULL,
  secret_digest BYTEA NOT NULL,
  created_at    BIGINT NOT NULL,
  last_seen     BIGINT NOT NULL
);
CREATE INDEX console_sessions_seen ON console_sessions (last_seen);
`,
  },
  2: {
    // A job row is its JobRow as JSON (body) with the columns the claim and the listings filter
    // on beside it, as in SQLite. A finding's key is BYTEA like every object key (it may hold a
    // NUL), and its message is kept as a JSON string (TEXT cannot hold a NUL, which a message
    // quoting a key may); seq is one sequence for all jobs, handed out while the job's row is
    // locked, so one job's findings are numbered in the order they were committed.
    sql: `
ALTER TABLE objects ADD COLUMN key_id TEXT, ADD COLUMN key_version INTEGER;
ALTER TABLE uploads ADD COLUMN key_id TEXT, ADD COLUMN key_version INTEGER;
CREATE TABLE jobs (
  id          TEXT COLLATE "C" PRIMARY KEY,
  bucket      TEXT COLLATE "C" NOT NULL,
  state       TEXT NOT NULL,
  created_at  BIGINT NOT NULL,
  claim_until BIGINT,
  body        TEXT NOT NULL
);
CREATE INDEX jobs_claimable ON jobs (created_at, id) WHERE state IN ('queued', 'running');
CREATE INDEX jobs_by_bucket ON jobs (bucket, created_at);
CREATE TABLE job_findings (
  seq     BIGSERIAL PRIMARY KEY,
  job_id  TEXT COLLATE "C" NOT NULL,
  key     BYTEA NOT NULL,
  kind    TEXT NOT NULL,
  part    INTEGER,
  package INTEGER,
  code    TEXT NOT NULL,
  message TEXT NOT NULL,
  at      BIGINT NOT NULL
);
CREATE INDEX job_findings_by_job ON job_findings (job_id, seq);
`,
    fill: fillKeyVersions,
  },
  3: {
    // A tag set as JSON text, in the order it was given; NULL: no tags.
    sql: `
ALTER TABLE objects ADD COLUMN tags TEXT;
ALTER TABLE uploads ADD COLUMN tags TEXT;
`,
  },
}

/**
 * Schema 2: each encrypted object's key id and version, read from its manifest (a page at a
 * time, in key order), and each encrypted upload's from its state. A manifest that does not
 * decode is left as it is: scrub reports it, reads fail as before.
 */
async function fillKeyVersions(client: ClientBase): Promise<void> {
  const PAGE = 500
  let after: { bucket: string; key: Buffer } | null = null
  for (;;) {
    const page: Array<{ bucket: string; key: Buffer; manifest: Buffer }> = (
      await client.query(
        `SELECT bucket, key, manifest FROM objects WHERE encryption IS NOT NULL AND ($1::text IS NULL OR (bucket, key) > ($1, $2::bytea))
         ORDER BY bucket, key LIMIT $3`,
        [after?.bucket ?? null, after?.key ?? null, PAGE],
      )
    ).rows
    for (const r of page) {
      let e
      try {
        e = decodeManifest(r.manifest).encryption
      } catch {
        continue
      }
      if (e) await client.query('UPDATE objects SET key_id = $1, key_version = $2 WHERE bucket = $3 AND key = $4', [e.keyId, e.keyVersion, r.bucket, r.key])
    }
    if (page.length < PAGE) break
    after = page[page.length - 1]
  }
  const uploads: Array<{ upload_id: string; state: string }> = (await client.query('SELECT upload_id, state FROM uploads WHERE encryption IS NOT NULL')).rows
  for (const u of uploads) {
    let e: { keyId?: unknown; keyVersion?: unknown } | undefined
    try {
      e = (JSON.parse(u.state) as { encryption?: { keyId?: unknown; keyVersion?: unknown } }).encryption
    } catch {
      continue
    }
    if (e && typeof e.keyId === 'string' && Number.isSafeInteger(e.keyVersion)) {
      await client.query('UPDATE uploads SET key_id = $1, key_version = $2 WHERE upload_id = $3', [e.keyId, e.keyVersion, u.upload_id])
    }
  }
}

/**
 * Brings the database to PG_SCHEMA_VERSION in one transaction under the migration lock; a
 * database newer than this s3-sse is refused (an older gateway never writes a newer schema).
 * `target` is for tests that need a database as an older s3-sse left it.
 */
export async function migrate(client: ClientBase, target = PG_SCHEMA_VERSION): Promise<{ from: number; to: number }> {
  await client.query('BEGIN')
  try {
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK])
    await client.query('CREATE TABLE IF NOT EXISTS s3sse_schema (version INTEGER NOT NULL)')
    const r = await client.query<{ version: number }>('SELECT version FROM s3sse_schema')
    let version = r.rows[0]?.version ?? 0
    if (r.rows.length === 0) await client.query('INSERT INTO s3sse_schema (version) VALUES (0)')
    const from = version
    if (version > PG_SCHEMA_VERSION) {
      throw new S3sseError('S3SSE_META_UNAVAILABLE', `the database has s3-sse schema version ${version}; this s3-sse knows up to ${PG_SCHEMA_VERSION}`)
    }
    while (version < target) {
      version++
      await client.query(MIGRATIONS[version].sql)
      await MIGRATIONS[version].fill?.(client)
    }
    await client.query('UPDATE s3sse_schema SET version = $1', [version])
    await client.query('COMMIT')
    return { from, to: version }
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined)
    throw err
  }
}
