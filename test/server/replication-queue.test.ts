/**
 * The replication queue in the metadata store (real SQLite): written with the object row,
 * superseded by newer writes, dropped by deletes, finished only for the write it is about,
 * and a data dir from before replication (schema 1) upgraded in place.
 */
import Database from 'better-sqlite3'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { replicationTarget } from '../../src/server/commit.js'
import type { CommitOptions, ObjectRow } from '../../src/server/meta/index.js'
import { DB_FILE, SCHEMA_VERSION, SqliteMetaStore } from '../../src/server/meta/sqlite/index.js'
import type { ReplicationConfiguration } from '../../src/s3/replication.js'
import { removeDir, tempDir } from './helpers.js'

const REPLICATE_LOGS: ReplicationConfiguration = {
  rules: [{ id: 'logs', priority: 1, status: 'Enabled', prefix: 'logs/', form: 'filter', destination: { bucket: 'dst', owner: 'root' } }],
}

function row(key: string, over: Partial<ObjectRow> = {}): ObjectRow {
  return {
    bucket: 'src', key, size: 1, etag: 'e', lastModified: 1, headers: {}, meta: {}, partsCount: 1,
    manifest: new Uint8Array([1, 2, 3]), blobs: [`file-${key}-${Math.random()}`], ...over,
  }
}

let dir: string
let meta: SqliteMetaStore

/** A write as the write path commits it: its replication decided from the bucket's rules in the transaction. */
async function put(m: SqliteMetaStore, o: ObjectRow, opts: CommitOptions = { replicate: (b) => replicationTarget(b, o) }) {
  const result = await m.commitObject(o, opts)
  return result.status === 'committed' && result.queued
}

beforeEach(() => {
  dir = tempDir('s3sse-queue-')
})

afterEach(async () => {
  await meta?.close()
  removeDir(dir)
})

function open(): SqliteMetaStore {
  meta = new SqliteMetaStore(dir)
  return meta
}

describe('replication queue', () => {
  it('a matching write is PENDING and queued in the same transaction; others are not', async () => {
    const m = open()
    await m.createBucket({ name: 'src', owner: 'root', region: 'us-east-1', createdAt: 0, settings: { replication: REPLICATE_LOGS } })
    let kicks = 0
    if (await put(m, row('logs/a'))) kicks++
    if (await put(m, row('other'))) kicks++
    expect((await m.getObject('src', 'logs/a'))?.replication).toMatchObject({ status: 'PENDING' })
    expect((await m.getObject('src', 'other'))?.replication).toBeUndefined()
    expect(kicks).toBe(1)
    const [item] = await m.dueReplications(Date.now(), 10)
    expect(item).toMatchObject({ bucket: 'src', key: 'logs/a', destination: 'dst', destinationOwner: 'root', ruleId: 'logs', attempts: 0 })
    expect(item.id).toBe((await m.getObject('src', 'logs/a'))?.replication?.id)
  })

  it('a newer write replaces the queued one; finishing the old one changes nothing', async () => {
    const m = open()
    await m.createBucket({ name: 'src', owner: 'root', region: 'us-east-1', createdAt: 0, settings: { replication: REPLICATE_LOGS } })
    await put(m, row('logs/a'))
    const [old] = await m.dueReplications(Date.now(), 10)
    await put(m, row('logs/a'))
    const queued = await m.dueReplications(Date.now(), 10)
    expect(queued).toHaveLength(1)
    expect(queued[0].id).not.toBe(old.id)
    expect(await m.finishReplication(old, 'COMPLETED')).toBe(false)
    expect((await m.getObject('src', 'logs/a'))?.replication).toEqual({ status: 'PENDING', id: queued[0].id })
    expect(await m.finishReplication(queued[0], 'COMPLETED')).toBe(true)
    expect((await m.getObject('src', 'logs/a'))?.replication).toEqual({ status: 'COMPLETED', id: queued[0].id })
    expect(await m.pendingReplications()).toBe(0)
  })

  it('a delete, a write that no longer matches, and a replica write each unqueue the key', async () => {
    const m = open()
    await m.createBucket({ name: 'src', owner: 'root', region: 'us-east-1', createdAt: 0, settings: { replication: REPLICATE_LOGS } })
    await put(m, row('logs/a'))
    await m.deleteObject('src', 'logs/a')
    expect(await m.pendingReplications()).toBe(0)
    await put(m, row('logs/b'))
    await m.updateBucketSettings('src', (s) => delete s.replication)
    await put(m, row('logs/b'))
    expect(await m.pendingReplications()).toBe(0)
    await m.updateBucketSettings('src', (s) => (s.replication = REPLICATE_LOGS))
    await put(m, row('logs/c'))
    const [pending] = await m.dueReplications(Date.now(), 10)
    await put(m, row('logs/c'), { replicaOf: pending })
    expect(await m.pendingReplications()).toBe(0)
    expect((await m.getObject('src', 'logs/c'))?.replication).toEqual({ status: 'REPLICA' })
  })

  it('retries wait for their time; a restart makes everything due at once', async () => {
    let m = open()
    await m.createBucket({ name: 'src', owner: 'root', region: 'us-east-1', createdAt: 0, settings: { replication: REPLICATE_LOGS } })
    await put(m, row('logs/a'))
    const [item] = await m.dueReplications(Date.now(), 10)
    const later = Date.now() + 3_600_000
    await m.retryReplication(item, 1, later, 'the destination bucket dst does not exist')
    expect(await m.dueReplications(Date.now(), 10)).toEqual([])
    expect(await m.nextReplicationAt()).toBe(later)
    await m.close()
    m = open()
    expect(await m.resumeReplications(Date.now())).toBe(1)
    expect(await m.dueReplications(Date.now(), 10)).toMatchObject([{ key: 'logs/a', attempts: 1, lastError: 'the destination bucket dst does not exist' }])
  })

  it('a claim holds an item for its lease; an expired claim is void once another worker takes the item over', async () => {
    const m = open()
    await m.createBucket({ name: 'src', owner: 'root', region: 'us-east-1', createdAt: 0, settings: { replication: REPLICATE_LOGS } })
    await put(m, row('logs/a'))
    const t0 = Date.now()
    const [first] = await m.claimReplications({ now: t0, limit: 10, leaseMs: 60_000 })
    expect(first).toMatchObject({ key: 'logs/a' })
    expect(first.claim).not.toBeNull()
    // A second worker finds nothing to take while the lease holds...
    expect(await m.claimReplications({ now: t0 + 1000, limit: 10, leaseMs: 60_000 })).toEqual([])
    // ...and takes the item over once it has run out; the first worker's claim is then void.
    const [second] = await m.claimReplications({ now: t0 + 61_000, limit: 10, leaseMs: 60_000 })
    expect(second).toMatchObject({ key: 'logs/a', id: first.id })
    expect(second.claim).not.toBe(first.claim)
    expect(await m.finishReplication(first, 'COMPLETED')).toBe(false)
    expect((await m.getObject('src', 'logs/a'))?.replication?.status).toBe('PENDING')
    expect(await m.finishReplication(second, 'COMPLETED')).toBe(true)
    expect((await m.getObject('src', 'logs/a'))?.replication?.status).toBe('COMPLETED')
    expect(await m.pendingReplications()).toBe(0)
  })

  it('a schema-1 data dir (before replication) is upgraded in place and keeps its objects', async () => {
    const db = new Database(join(dir, DB_FILE))
    db.exec(`
      CREATE TABLE buckets (name TEXT PRIMARY KEY, owner TEXT NOT NULL, region TEXT NOT NULL, created_at INTEGER NOT NULL, settings TEXT NOT NULL DEFAULT '{}');
      CREATE TABLE objects (bucket TEXT NOT NULL, key TEXT NOT NULL, size INTEGER NOT NULL, etag TEXT NOT NULL, last_modified INTEGER NOT NULL,
        headers TEXT NOT NULL, meta TEXT NOT NULL, checksum TEXT, parts_count INTEGER NOT NULL, manifest BLOB NOT NULL, files TEXT NOT NULL,
        encryption TEXT, PRIMARY KEY (bucket, key)) WITHOUT ROWID;
      INSERT INTO buckets VALUES ('src', 'root', 'us-east-1', 0, '{}');
      INSERT INTO objects VALUES ('src', 'old', 1, 'e', 1, '{}', '{}', NULL, 1, x'010203', '["f1"]', NULL);
      PRAGMA user_version = 1;
    `)
    db.close()
    const m = open()
    expect(await m.getObject('src', 'old')).toMatchObject({ key: 'old', blobs: ['f1'], replication: undefined })
    await m.updateBucketSettings('src', (s) => (s.replication = REPLICATE_LOGS))
    await put(m, row('logs/new'))
    expect((await m.getObject('src', 'logs/new'))?.replication?.status).toBe('PENDING')
    expect(m.db.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION)
    // Upgraded through schema 4 (object and upload tags) too.
    await m.setObjectTags('src', 'old', [{ key: 'k', value: 'v' }])
    expect((await m.getObject('src', 'old'))?.tags).toEqual([{ key: 'k', value: 'v' }])
  })
})
