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
import type { PoolClient } from 'pg'
import { S3sseError } from '../../../errors.js'

/**
 * 1: buckets, objects, uploads, parts, the replication queue, users (with stable ids: bucket
 * and upload owners are ids, as in SQLite schema 3), console sessions.
 */
export const PG_SCHEMA_VERSION = 1

/** The advisory lock the migrations hold ('S3SE' as a number): one migrating gateway at a time. */
export const MIGRATION_LOCK = 0x53335345

const MIGRATIONS: Record<number, string> = {
  1: `
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
}

/**
 * Brings the database to PG_SCHEMA_VERSION in one transaction under the migration lock; a
 * database newer than this s3-sse is refused (an older gateway never writes a newer schema).
 */
export async function migrate(client: PoolClient): Promise<{ from: number; to: number }> {
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
    while (version < PG_SCHEMA_VERSION) {
      version++
      await client.query(MIGRATIONS[version])
    }
    await client.query('UPDATE s3sse_schema SET version = $1', [version])
    await client.query('COMMIT')
    return { from, to: version }
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined)
    throw err
  }
}
