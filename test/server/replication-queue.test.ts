/**
 * The replication queue in the metadata store (real SQLite): written with the object row,
 * superseded by newer writes, dropped by deletes, finished only for the write it is about,
 * and a data dir from before replication (schema 1) upgraded in place.
 */
import Database from 'better-sqlite3'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { DB_FILE, MetaStore, type ObjectRow } from '../../src/server/db.js'
import type { ReplicationConfiguration } from '../../src/s3/replication.js'
import { removeDir, tempDir } from './helpers.js'

const REPLICATE_LOGS: ReplicationConfiguration = {
  rules: [{ id: 'logs', priority: 1, status: 'Enabled', prefix: 'logs/', form: 'filter', destination: { bucket: 'dst', owner: 'root' } }],
}

function row(key: string, over: Partial<ObjectRow> = {}): ObjectRow {
  return {
    bucket: 'src', key, size: 1, etag: 'e', lastModified: 1, headers: {}, meta: {}, partsCount: 1,
    manifest: new Uint8Array([1, 2, 3]), files: [`file-${key}-${Math.random()}`], ...over,
  }
}

let dir: string
let meta: MetaStore

beforeEach(() => {
  dir = tempDir('s3sse-queue-')
})

afterEach(() => {
  meta?.close()
  removeDir(dir)
})

function open(): MetaStore {
  meta = new MetaStore(dir)
  return meta
}

describe('replication queue', () => {
  it('a matching write is PENDING and queued in the same transaction; others are not', () => {
    const m = open()
    m.createBucket({ name: 'src', owner: 'root', region: 'us-east-1', createdAt: 0, settings: { replication: REPLICATE_LOGS } })
    let kicks = 0
    m.onReplicationQueued = () => kicks++
    m.putObject(row('logs/a'))
    m.putObject(row('other'))
    expect(m.getObject('src', 'logs/a')?.replication).toMatchObject({ status: 'PENDING' })
    expect(m.getObject('src', 'other')?.replication).toBeUndefined()
    expect(kicks).toBe(1)
    const [item] = m.dueReplications(Date.now(), 10)
    expect(item).toMatchObject({ bucket: 'src', key: 'logs/a', destination: 'dst', destinationOwner: 'root', ruleId: 'logs', attempts: 0 })
    expect(item.id).toBe(m.getObject('src', 'logs/a')?.replication?.id)
  })

  it('a newer write replaces the queued one; finishing the old one changes nothing', () => {
    const m = open()
    m.createBucket({ name: 'src', owner: 'root', region: 'us-east-1', createdAt: 0, settings: { replication: REPLICATE_LOGS } })
    m.putObject(row('logs/a'))
    const [old] = m.dueReplications(Date.now(), 10)
    m.putObject(row('logs/a'))
    const queued = m.dueReplications(Date.now(), 10)
    expect(queued).toHaveLength(1)
    expect(queued[0].id).not.toBe(old.id)
    expect(m.finishReplication(old, 'COMPLETED')).toBe(false)
    expect(m.getObject('src', 'logs/a')?.replication).toEqual({ status: 'PENDING', id: queued[0].id })
    expect(m.finishReplication(queued[0], 'COMPLETED')).toBe(true)
    expect(m.getObject('src', 'logs/a')?.replication).toEqual({ status: 'COMPLETED', id: queued[0].id })
    expect(m.pendingReplications()).toBe(0)
  })

  it('a delete, a write that no longer matches, and a replica write each unqueue the key', () => {
    const m = open()
    m.createBucket({ name: 'src', owner: 'root', region: 'us-east-1', createdAt: 0, settings: { replication: REPLICATE_LOGS } })
    m.putObject(row('logs/a'))
    m.deleteObject('src', 'logs/a')
    expect(m.pendingReplications()).toBe(0)
    m.putObject(row('logs/b'))
    m.updateBucketSettings('src', (s) => delete s.replication)
    m.putObject(row('logs/b'))
    expect(m.pendingReplications()).toBe(0)
    m.updateBucketSettings('src', (s) => (s.replication = REPLICATE_LOGS))
    m.putObject(row('logs/c'))
    m.putObject(row('logs/c', { replication: { status: 'REPLICA' } }))
    expect(m.pendingReplications()).toBe(0)
    expect(m.getObject('src', 'logs/c')?.replication).toEqual({ status: 'REPLICA' })
  })

  it('retries wait for their time; a restart makes everything due at once', () => {
    let m = open()
    m.createBucket({ name: 'src', owner: 'root', region: 'us-east-1', createdAt: 0, settings: { replication: REPLICATE_LOGS } })
    m.putObject(row('logs/a'))
    const [item] = m.dueReplications(Date.now(), 10)
    const later = Date.now() + 3_600_000
    m.retryReplication(item, 1, later, 'the destination bucket dst does not exist')
    expect(m.dueReplications(Date.now(), 10)).toEqual([])
    expect(m.nextReplicationAt()).toBe(later)
    m.close()
    m = open()
    expect(m.resumeReplications(Date.now())).toBe(1)
    expect(m.dueReplications(Date.now(), 10)).toMatchObject([{ key: 'logs/a', attempts: 1, lastError: 'the destination bucket dst does not exist' }])
  })

  it('a schema-1 data dir (before replication) is upgraded in place and keeps its objects', () => {
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
    expect(m.getObject('src', 'old')).toMatchObject({ key: 'old', files: ['f1'], replication: undefined })
    m.updateBucketSettings('src', (s) => (s.replication = REPLICATE_LOGS))
    m.putObject(row('logs/new'))
    expect(m.getObject('src', 'logs/new')?.replication?.status).toBe('PENDING')
    expect(m.db.pragma('user_version', { simple: true })).toBe(2)
  })
})
