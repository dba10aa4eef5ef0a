/**
 * What the jobs need of a MetaStore, written once for every store: the embedded one (SQLite in
 * a temp data dir) and the fleet's (PostgreSQL, a fresh database of the test server). Jobs are claimed one
 * worker at a time under a lease; updates are read-modify-write with their findings in one
 * transaction; a restart gives claims back; object statistics and key usage are aggregates; a
 * commit that keeps the blobs of the row it replaces does not give them up; and a data dir of
 * schema 2 gets its objects' key versions from their manifests.
 */
import Database from 'better-sqlite3'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { openEmbeddedKms } from '../../src/keys/index.js'
import { encodeManifest, sealObject } from '../../src/object/index.js'
import { objectRow } from '../../src/server/commit.js'
import { claim, newJob, release, requestAction } from '../../src/server/jobs/model.js'
import type { JobRow, MetaStore, ObjectRow } from '../../src/server/meta/index.js'
import { PostgresMetaStore } from '../../src/server/meta/postgres/index.js'
import { DB_FILE, SCHEMA_VERSION, SqliteMetaStore } from '../../src/server/meta/sqlite/index.js'
import { freshDatabase, missingServices } from '../helpers/services.js'
import { removeDir, tempDir } from './helpers.js'

interface StoreKind {
  name: string
  /** A fleet store: at start it gives back only claims whose lease ran out (other gateways' are live). */
  fleet: boolean
  skip?: string
  open(dir: string): Promise<MetaStore>
}

const dirs: string[] = []
const opened: MetaStore[] = []
const databases: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const m of opened.splice(0)) await m.close()
  for (const d of dirs.splice(0)) removeDir(d)
  for (const drop of databases.splice(0)) await drop()
})

const STORES: StoreKind[] = [
  { name: 'sqlite', fleet: false, open: async (dir) => new SqliteMetaStore(dir) },
  {
    name: 'postgres',
    fleet: true,
    skip: missingServices('MetaStore jobs on PostgreSQL', ['postgres']),
    async open() {
      const db = await freshDatabase('jobs')
      databases.push(db.drop)
      return PostgresMetaStore.open(db.url)
    },
  },
]

function row(bucket: string, key: string, over: Partial<ObjectRow> = {}): ObjectRow {
  return { bucket, key, size: 10, etag: 'e', lastModified: 1, headers: {}, meta: {}, partsCount: 1, manifest: new Uint8Array([1]), blobs: [`blob-${key}`], ...over }
}

const job = (id: string, now: number, over: Partial<JobRow> = {}): JobRow => ({ ...newJob({ kind: 'scrub', bucket: 'b' }, { id, createdBy: 'root', now }), ...over })

describe.each(STORES)('MetaStore jobs and aggregates ($name)', (kind) => {
  if (kind.skip) {
    it.skip(`skipped: ${kind.skip}`, () => undefined)
    return
  }

  async function store(): Promise<MetaStore> {
    const dir = tempDir('s3sse-meta-jobs-')
    dirs.push(dir)
    const m = await kind.open(dir)
    opened.push(m)
    await m.createBucket({ name: 'b', owner: 'root', region: 'us-east-1', createdAt: 0, settings: {} })
    return m
  }

  it('stores, reads and lists jobs, newest first, by bucket', async () => {
    const m = await store()
    await m.createJob(job('a1', 1000))
    await m.createJob(job('a2', 2000, { bucket: 'other' }))
    await m.createJob(job('a3', 3000))
    expect((await m.getJob('a2'))?.bucket).toBe('other')
    expect(await m.getJob('nope')).toBeUndefined()
    expect((await m.listJobs()).map((j) => j.id)).toEqual(['a3', 'a2', 'a1'])
    expect((await m.listJobs({ bucket: 'b' })).map((j) => j.id)).toEqual(['a3', 'a1'])
    expect((await m.listJobs({ limit: 1 })).map((j) => j.id)).toEqual(['a3'])
  })

  it('claims one job at a time, oldest first; a held lease keeps others off until it runs out', async () => {
    const m = await store()
    const t = 10_000
    await m.createJob(job('old', 1))
    await m.createJob(job('new', 2))
    await m.createJob(job('paused', 0, { state: 'paused' }))
    const take = (now: number, token: string) => m.claimJob(now, (j) => claim(j, { token, worker: token, now, leaseMs: 1000 }))
    const first = await take(t, 'w1')
    expect(first).toMatchObject({ id: 'old', state: 'running', claim: { token: 'w1', until: t + 1000 } })
    expect((await m.getJob('old'))?.claim?.token).toBe('w1')
    expect((await take(t + 1, 'w2'))?.id).toBe('new')
    expect(await take(t + 2, 'w3')).toBeUndefined()
    // w1's lease runs out: the job is claimable again and goes to w3.
    expect(await take(t + 1000, 'w3')).toMatchObject({ id: 'old', claim: { token: 'w3' } })
    // Paused, completed and cancelled jobs are never claimed.
    await m.updateJob('new', (j) => ({ ...j, state: 'completed', claim: null }))
    expect(await take(t + 5000, 'w4')).toMatchObject({ id: 'old' })
    expect(await take(t + 5000, 'w5')).toBeUndefined()
  })

  it('updates a job and appends its findings in one step; a refused change writes nothing', async () => {
    const m = await store()
    await m.createJob(job('j', 1))
    const finding = { key: 'k', kind: 'damaged' as const, part: 2, package: 7, code: 'S3SSE_AUTH_FAILED', message: 'package 7 failed', at: 5 }
    const after = await m.updateJob('j', (j) => ({ ...j, cursor: 'k' }), [finding, { ...finding, key: 'l', part: null, package: null }])
    expect(after?.cursor).toBe('k')
    const unchanged = await m.updateJob('j', () => null, [{ ...finding, key: 'never' }])
    expect(unchanged?.cursor).toBe('k')
    const found = await m.jobFindings('j', 0, 10)
    expect(found.map((f) => [f.key, f.part, f.package])).toEqual([['k', 2, 7], ['l', null, null]])
    expect(found[1].seq).toBeGreaterThan(found[0].seq)
    expect(await m.jobFindings('j', found[0].seq, 10)).toMatchObject([{ key: 'l' }])
    expect(await m.jobFindings('j', 0, 1)).toHaveLength(1)
    expect(await m.updateJob('missing', (j) => j)).toBeUndefined()
    // A change that throws (a request the state refuses) leaves the job and its findings alone.
    await m.updateJob('j', (j) => ({ ...j, state: 'completed' }))
    await expect(m.updateJob('j', (j) => requestAction(j, 'pause', 9), [finding])).rejects.toMatchObject({ code: 'S3SSE_JOB_STATE' })
    expect(await m.jobFindings('j', 0, 10)).toHaveLength(2)
  })

  it(kind.fleet ? 'at start, only claims whose lease ran out are given back (other gateways keep theirs)' : 'at start, claims the last run held are given back', async () => {
    const m = await store()
    await m.createJob(job('a', 1))
    await m.createJob(job('b', 2))
    await m.createJob(job('c', 3))
    const now = Date.now()
    await m.claimJob(now, (j) => claim(j, { token: 'live', worker: 'w1', now, leaseMs: 3_600_000 }))
    await m.claimJob(now, (j) => claim(j, { token: 'gone', worker: 'w2', now, leaseMs: 100 }))
    const later = now + 200
    if (kind.fleet) {
      expect(await m.resumeJobs(later, (j) => release(j, later))).toBe(1)
      expect(await m.getJob('a')).toMatchObject({ state: 'running', claim: { token: 'live' } })
    } else {
      expect(await m.resumeJobs(later, (j) => release(j, later))).toBe(2)
      expect(await m.getJob('a')).toMatchObject({ state: 'queued', claim: null })
    }
    expect(await m.getJob('b')).toMatchObject({ state: 'queued', claim: null, updatedAt: later })
    expect(await m.getJob('c')).toMatchObject({ state: 'queued', claim: null, updatedAt: 3 })
    expect(await m.resumeJobs(later, (j) => release(j, later))).toBe(0)
  })

  it('counts objects under a prefix and how many are plaintext', async () => {
    const m = await store()
    const enc = { encryption: { algorithm: 'aws:kms' as const, keyId: 'k' }, kmsKey: { keyId: 'k', version: 1 } }
    await m.commitObject(row('b', 'a/1', { size: 5 }))
    await m.commitObject(row('b', 'a/2', { size: 7, ...enc }))
    await m.commitObject(row('b', 'b/1', { size: 100 }))
    expect(await m.objectStats('b', 'a/')).toEqual({ objects: 2, bytes: 12, plaintextObjects: 1, plaintextBytes: 5 })
    expect(await m.objectStats('b', '')).toEqual({ objects: 3, bytes: 112, plaintextObjects: 2, plaintextBytes: 105 })
    expect(await m.objectStats('b', 'zzz')).toEqual({ objects: 0, bytes: 0, plaintextObjects: 0, plaintextBytes: 0 })
    expect(await m.listObjectDetails('b', '', 'a/', 10)).toMatchObject([{ key: 'a/1' }, { key: 'a/2', kmsKey: { keyId: 'k', version: 1 } }])
  })

  it('counts objects and open uploads per key version', async () => {
    const m = await store()
    const under = (keyId: string, version: number) => ({ encryption: { algorithm: 'aws:kms' as const, keyId }, kmsKey: { keyId, version } })
    await m.commitObject(row('b', 'x', { size: 1, ...under('k1', 1) }))
    await m.commitObject(row('b', 'y', { size: 2, ...under('k1', 1) }))
    await m.commitObject(row('b', 'z', { size: 4, ...under('k1', 2) }))
    await m.commitObject(row('b', 'p', { size: 8 }))
    await m.createUpload({ uploadId: 'u1', bucket: 'b', key: 'big', initiated: 0, owner: 'root', state: {}, headers: {}, meta: {}, ...under('k2', 3) })
    expect(await m.keyUsage()).toEqual([
      { keyId: 'k1', version: 1, objects: 2, bytes: 3, uploads: 0 },
      { keyId: 'k1', version: 2, objects: 1, bytes: 4, uploads: 0 },
      { keyId: 'k2', version: 3, objects: 0, bytes: 0, uploads: 1 },
    ])
    expect((await m.getUpload('u1'))?.kmsKey).toEqual({ keyId: 'k2', version: 3 })
  })

  it('a commit that keeps the blobs of the row it replaces does not give them up', async () => {
    const m = await store()
    await m.commitObject(row('b', 'k', { blobs: ['one', 'two'] }))
    const same = await m.commitObject(row('b', 'k', { blobs: ['one', 'two'], etag: 'rewrapped' }))
    expect(same).toMatchObject({ status: 'committed', unused: [] })
    const other = await m.commitObject(row('b', 'k', { blobs: ['two', 'three'] }))
    expect(other).toMatchObject({ status: 'committed', unused: ['one'] })
  })
})

describe('SQLite schema 4 upgrade', () => {
  it('gives the objects of a schema-2 data dir (before owner ids and key versions) their key id and version from their manifests, and uploads theirs from their state', async () => {
    const dir = tempDir('s3sse-schema3-')
    dirs.push(dir)
    const kms = await openEmbeddedKms(dir, { create: true })
    const key = await kms.createKey({ alias: 'old-objects' })
    await kms.rotateKey(key.keyId)
    const sealed = await sealObject((async function* () { yield Buffer.from('hello') })(), { context: { bucket: 'b', key: 'enc' }, encryption: { algorithm: 'aws:kms', kms, keyId: key.keyId } })
    for await (const _ of sealed.stream) void _
    const manifest = sealed.result()
    const encRow = objectRow({ bucket: 'b', key: 'enc', manifest, blobs: ['f'], etag: 'e', headers: {}, meta: {} })
    await kms.close()
    // Schema 2 as an earlier release wrote it: no key columns, no job tables.
    const db = new Database(join(dir, DB_FILE))
    db.exec(`
      CREATE TABLE buckets (name TEXT PRIMARY KEY, owner TEXT NOT NULL, region TEXT NOT NULL, created_at INTEGER NOT NULL, settings TEXT NOT NULL DEFAULT '{}');
      CREATE TABLE objects (bucket TEXT NOT NULL, key TEXT NOT NULL, size INTEGER NOT NULL, etag TEXT NOT NULL, last_modified INTEGER NOT NULL,
        headers TEXT NOT NULL, meta TEXT NOT NULL, checksum TEXT, parts_count INTEGER NOT NULL, manifest BLOB NOT NULL, files TEXT NOT NULL,
        encryption TEXT, replication TEXT, PRIMARY KEY (bucket, key)) WITHOUT ROWID;
      CREATE TABLE uploads (upload_id TEXT PRIMARY KEY, bucket TEXT NOT NULL, key TEXT NOT NULL, initiated INTEGER NOT NULL, owner TEXT NOT NULL,
        state TEXT NOT NULL, headers TEXT NOT NULL, meta TEXT NOT NULL, checksum_algorithm TEXT, checksum_type TEXT, encryption TEXT);
      INSERT INTO buckets VALUES ('b', 'root', 'us-east-1', 0, '{}');
      INSERT INTO objects VALUES ('b', 'plain', 1, 'e', 1, '{}', '{}', NULL, 1, x'010203', '["f1"]', NULL, NULL);
      INSERT INTO objects VALUES ('b', 'broken', 1, 'e', 1, '{}', '{}', NULL, 1, x'010203', '["f2"]', '{"algorithm":"aws:kms","keyId":"x"}', NULL);
      INSERT INTO uploads VALUES ('u', 'b', 'big', 0, 'root', '{"version":1,"encryption":{"keyId":"k9","keyVersion":4}}', '{}', '{}', NULL, NULL, '{"algorithm":"aws:kms","keyId":"k9"}');
      PRAGMA user_version = 2;
    `)
    db.prepare(`INSERT INTO objects VALUES ('b', 'enc', 5, 'e', 1, '{}', '{}', NULL, 1, ?, '["f"]', ?, NULL)`).run(Buffer.from(encRow.manifest), JSON.stringify(encRow.encryption))
    db.close()
    const m = new SqliteMetaStore(dir)
    opened.push(m)
    expect(m.db.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION)
    expect((await m.getObject('b', 'enc'))?.kmsKey).toEqual({ keyId: key.keyId, version: 2 })
    expect((await m.getObject('b', 'plain'))?.kmsKey).toBeUndefined()
    // A manifest that does not decode is left for scrub to report; the store still opens.
    expect((await m.getObject('b', 'broken'))?.kmsKey).toBeUndefined()
    expect((await m.getUpload('u'))?.kmsKey).toEqual({ keyId: 'k9', version: 4 })
    expect(await m.listJobs()).toEqual([])
  })
})
