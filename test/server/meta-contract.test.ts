/**
 * The MetaStore contract, written once from what the embedded SQLite store does and run over
 * every implementation (SQLite in a temp data dir; PostgreSQL in a fresh database of the test
 * server), so the fleet's store and the embedded default stay equal. Where a fleet store must
 * differ by design (resume releases only expired claims), the kind says so.
 *
 * "A second store" is another handle on the same database: a second process on one data dir,
 * or a second gateway of a fleet.
 */
import { randomBytes } from 'node:crypto'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { User } from '../../src/server/credentials.js'
import { UserStore } from '../../src/server/credentials.js'
import { checkpoint, claim, newJob, requestAction } from '../../src/server/jobs/model.js'
import type { BucketRow, CommitOptions, JobFinding, JobRow, MetaStore, ObjectRow, PartRow, ReplicationTarget, UploadRow } from '../../src/server/meta/index.js'
import { PostgresMetaStore } from '../../src/server/meta/postgres/index.js'
import { SqliteMetaStore } from '../../src/server/meta/sqlite/index.js'
import { freshDatabase, missingServices } from '../helpers/services.js'
import { removeDir, tempDir } from './helpers.js'

interface Opened {
  store: MetaStore
  /** Another handle on the same database (another process or gateway). */
  second(): Promise<MetaStore>
  addUser(name: string): Promise<User>
  removeUser(name: string): Promise<void>
  close(): Promise<void>
}

interface Kind {
  name: string
  /** A fleet store: resume releases only expired claims (other gateways' claims are live). */
  fleet: boolean
  skip?: string
  open(): Promise<Opened>
}

const kinds: Kind[] = [
  {
    name: 'sqlite',
    fleet: false,
    async open() {
      const dir = tempDir('s3sse-contract-')
      const store = new SqliteMetaStore(dir)
      const others: MetaStore[] = []
      const users = new UserStore(dir)
      return {
        store,
        async second() {
          const s = new SqliteMetaStore(dir)
          others.push(s)
          return s
        },
        async addUser(name) {
          return users.add(name)
        },
        async removeUser(name) {
          users.remove(name)
        },
        async close() {
          for (const s of [store, ...others]) await s.close()
          removeDir(dir)
        },
      }
    },
  },
  {
    name: 'postgres',
    fleet: true,
    skip: missingServices('MetaStore contract on PostgreSQL', ['postgres']),
    async open() {
      const db = await freshDatabase('contract')
      const store = await PostgresMetaStore.open(db.url, { userCacheMs: 0 })
      const others: MetaStore[] = []
      return {
        store,
        async second() {
          const s = await PostgresMetaStore.open(db.url, { userCacheMs: 0 })
          others.push(s)
          return s
        },
        addUser: (name) => store.addUser(name),
        async removeUser(name) {
          await store.removeUser(name)
        },
        async close() {
          for (const s of [store, ...others]) await s.close()
          await db.drop()
        },
      }
    },
  },
]

const bucket = (name: string, settings: Record<string, unknown> = {}): BucketRow => ({ name, owner: 'root', region: 'us-east-1', createdAt: 1_700_000_000_000, settings })

let blobCounter = 0
const blob = () => `blob-${++blobCounter}-${randomBytes(4).toString('hex')}`

function row(b: string, key: string, over: Partial<ObjectRow> = {}): ObjectRow {
  return {
    bucket: b, key, size: 3, etag: '"e"', lastModified: 1_700_000_000_123, headers: { 'content-type': 'text/plain' }, meta: {}, partsCount: 1,
    manifest: new Uint8Array([1, 2, 3]), blobs: [blob()], ...over,
  }
}

function upload(b: string, key: string, uploadId = randomBytes(8).toString('hex'), over: Partial<UploadRow> = {}): UploadRow {
  return { uploadId, bucket: b, key, initiated: 1_700_000_000_000, owner: 'root', state: { v: 1, salt: 'x' }, headers: {}, meta: {}, ...over }
}

function part(uploadId: string, partNumber: number, over: Partial<PartRow> = {}): PartRow {
  return { uploadId, partNumber, size: 5, etag: `"p${partNumber}"`, lastModified: 1_700_000_000_000 + partNumber, record: { n: partNumber }, blob: blob(), ...over }
}

const TARGET: ReplicationTarget = { destination: 'dst', destinationOwner: 'root', ruleId: 'all' }
const replicate: CommitOptions = { replicate: () => TARGET }

describe.each(kinds)('MetaStore contract: $name', (kind) => {
  let o: Opened
  let m: MetaStore

  if (kind.skip) {
    it.skip(`skipped: ${kind.skip}`, () => undefined)
    return
  }

  beforeEach(async () => {
    o = await kind.open()
    m = o.store
  })
  afterEach(async () => {
    await o?.close()
  })

  describe('buckets', () => {
    it('creates once, reads back, lists in name order', async () => {
      expect(await m.createBucket(bucket('bbb', { encryption: { rule: 'x' } }))).toBe(true)
      expect(await m.createBucket(bucket('aaa'))).toBe(true)
      expect(await m.createBucket(bucket('bbb'))).toBe(false)
      expect(await m.getBucket('bbb')).toEqual(bucket('bbb', { encryption: { rule: 'x' } }))
      expect(await m.getBucket('nope')).toBeUndefined()
      expect((await m.listBuckets()).map((b) => b.name)).toEqual(['aaa', 'bbb'])
    })

    it('changes settings in one read-modify-write; a throwing change leaves them as they were', async () => {
      await m.createBucket(bucket('b1', { a: 1 }))
      expect(await m.updateBucketSettings('b1', (s) => { s.b = { x: [1, 2] } })).toBe(true)
      expect((await m.getBucket('b1'))!.settings).toEqual({ a: 1, b: { x: [1, 2] } })
      await expect(m.updateBucketSettings('b1', (s) => { s.c = 3; throw new Error('refused') })).rejects.toThrow('refused')
      expect((await m.getBucket('b1'))!.settings).toEqual({ a: 1, b: { x: [1, 2] } })
      expect(await m.updateBucketSettings('missing', () => undefined)).toBe(false)
    })

    it('concurrent settings changes from two stores both land', async () => {
      await m.createBucket(bucket('b1'))
      const m2 = await o.second()
      await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? m : m2).updateBucketSettings('b1', (s) => { s[`k${i}`] = i })))
      expect(Object.keys((await m.getBucket('b1'))!.settings).sort()).toEqual(Array.from({ length: 10 }, (_, i) => `k${i}`).sort())
    })

    it('deletes only a bucket without objects, with its uploads in progress and their parts, naming the part blobs', async () => {
      expect(await m.deleteBucketIfEmpty('b1')).toEqual({ status: 'missing' })
      await m.createBucket(bucket('b1'))
      await m.commitObject(row('b1', 'k'))
      await m.createUpload(upload('b1', 'k', 'u1'))
      const parts = [part('u1', 1), part('u1', 2)]
      for (const p of parts) await m.commitPart(p)
      await m.createUpload(upload('b1', 'j', 'u2'))
      expect(await m.deleteBucketIfEmpty('b1')).toEqual({ status: 'not-empty' })
      expect(await m.getUpload('u1')).toBeDefined()
      await m.deleteObject('b1', 'k')
      const gone = await m.deleteBucketIfEmpty('b1')
      expect(gone.status).toBe('deleted')
      expect(gone.status === 'deleted' ? [...gone.unused].sort() : []).toEqual(parts.map((p) => p.blob).sort())
      expect(await m.getBucket('b1')).toBeUndefined()
      expect(await m.getUpload('u1')).toBeUndefined()
      expect(await m.getUpload('u2')).toBeUndefined()
      expect(await m.allParts('u1')).toEqual([])
      expect(await m.referencedBlobs()).toEqual(new Set())
    })

    it('a bucket deleted while a second store commits a part: the part is named by the delete or refused, never left behind', async () => {
      await m.createBucket(bucket('b1'))
      await m.createUpload(upload('b1', 'k', 'u1'))
      const m2 = await o.second()
      const parts = Array.from({ length: 10 }, (_, i) => part('u1', i + 1))
      const results = new Map<string, string>()
      const commits = parts.map(async (p, i) => results.set(p.blob, (await (i % 2 ? m : m2).commitPart(p)).status))
      await new Promise((r) => setTimeout(r, 3))
      const gone = await m.deleteBucketIfEmpty('b1')
      await Promise.all(commits)
      expect(gone.status).toBe('deleted')
      const unused = gone.status === 'deleted' ? gone.unused : []
      for (const p of parts) expect(unused.includes(p.blob) || results.get(p.blob) === 'no-upload', p.blob).toBe(true)
      expect(await m.referencedBlobs()).toEqual(new Set())
    })
  })

  describe('objects', () => {
    beforeEach(async () => {
      await m.createBucket(bucket('b1'))
    })

    it('round-trips every column of a row', async () => {
      const full = row('b1', 'dir/ключ 🗝', {
        size: 12_345_678_901,
        etag: '"abc-2"',
        headers: { 'content-type': 'application/x-ünïcode', 'cache-control': 'no-cache' },
        meta: { colour: 'blue', empty: '' },
        checksum: { algorithm: 'CRC32C', type: 'COMPOSITE', value: 'AAAAAA==' },
        partsCount: 2,
        manifest: new Uint8Array(randomBytes(300)),
        blobs: [blob(), blob()],
        encryption: { algorithm: 'aws:kms', keyId: 'k1', bucketKey: true } as unknown as ObjectRow['encryption'],
        kmsKey: { keyId: 'k1', version: 7 },
        tags: [{ key: 'b-first', value: 'ü 1' }, { key: 'a', value: '' }],
      })
      expect(await m.commitObject(full)).toEqual({ status: 'committed', unused: [], queued: false })
      const back = await m.getObject('b1', 'dir/ключ 🗝')
      expect(back).toBeDefined()
      expect(Buffer.from(back!.manifest).equals(Buffer.from(full.manifest))).toBe(true)
      expect({ ...back!, manifest: undefined, replication: back!.replication }).toEqual({ ...full, manifest: undefined, replication: undefined })
    })

    it('refuses a row for a missing bucket', async () => {
      expect(await m.commitObject(row('nope', 'k'))).toEqual({ status: 'no-bucket' })
    })

    it('an overwrite names the blobs it replaced; delete names the last ones', async () => {
      const a = row('b1', 'k', { blobs: [blob(), blob()] })
      const b = row('b1', 'k')
      await m.commitObject(a)
      expect(await m.commitObject(b)).toEqual({ status: 'committed', unused: a.blobs, queued: false })
      expect(await m.deleteObject('b1', 'k')).toEqual(b.blobs)
      expect(await m.deleteObject('b1', 'k')).toBeNull()
      expect(await m.getObject('b1', 'k')).toBeUndefined()
    })

    it('a precondition sees the current row and can refuse the write, which then changes nothing', async () => {
      const a = row('b1', 'k')
      const seen: Array<ObjectRow | undefined> = []
      await m.commitObject(a, { precondition: (cur) => void seen.push(cur) })
      expect(seen[0]).toBeUndefined()
      const refusal = Object.assign(new Error('PreconditionFailed'), { code: 'PreconditionFailed' })
      await expect(m.commitObject(row('b1', 'k'), { precondition: (cur) => { seen.push(cur); throw refusal } })).rejects.toBe(refusal)
      expect(seen[1]?.blobs).toEqual(a.blobs)
      expect((await m.getObject('b1', 'k'))!.blobs).toEqual(a.blobs)
    })

    it('lists keys in UTF-8 byte order with after, prefix and limit', async () => {
      // UTF-16 order would put the astral 🗝 (a surrogate pair) before U+FFFD; UTF-8 puts it after.
      const keys = ['a', 'a/b', 'a\u0000z', 'ab', 'b', '\uFFFD', '\u{1F5DD}', 'é', 'z']
      for (const k of keys) await m.commitObject(row('b1', k))
      const bytes = [...keys].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)))
      expect((await m.listObjects('b1', '', '', 100)).map((x) => x.key)).toEqual(bytes)
      expect((await m.listObjects('b1', 'a/b', '', 2)).map((x) => x.key)).toEqual(bytes.slice(bytes.indexOf('a/b') + 1, bytes.indexOf('a/b') + 3))
      expect((await m.listObjects('b1', '', 'a', 100)).map((x) => x.key)).toEqual(['a', 'a\u0000z', 'a/b', 'ab'])
      expect((await m.listObjects('b1', 'a', 'a', 100)).map((x) => x.key)).toEqual(['a\u0000z', 'a/b', 'ab'])
      expect((await m.listObjects('b1', '', '\u{10FFFF}', 100)).map((x) => x.key)).toEqual([])
      const [first] = await m.listObjects('b1', '', 'z', 1)
      expect(first).toEqual({ key: 'z', size: 3, etag: '"e"', lastModified: 1_700_000_000_123 })
      expect(await m.getObject('b1', 'a\u0000z')).toBeDefined()
    })

    it('replaces tags alone, in their order; [] removes them; with an ETag only while the object has it (another store\'s overwrite wins)', async () => {
      const m2 = await o.second()
      const a = row('b1', 'k', { etag: '"one"', tags: [{ key: 't', value: '1' }] })
      await m.commitObject(a)
      const tags = [{ key: 'z', value: 'last' }, { key: 'a', value: 'first' }]
      expect(await m2.setObjectTags('b1', 'k', tags)).toBe(true)
      expect(await m.getObject('b1', 'k')).toMatchObject({ etag: '"one"', blobs: a.blobs, tags })
      expect((await m.listObjectDetails('b1', '', '', 10))[0].tags).toEqual(tags)
      expect(await m.setObjectTags('b1', 'k', [])).toBe(true)
      expect((await m2.getObject('b1', 'k'))!.tags).toBeUndefined()
      expect((await m2.listObjectDetails('b1', '', '', 10))[0].tags).toBeUndefined()
      await m2.commitObject(row('b1', 'k', { etag: '"two"' }))
      expect(await m.setObjectTags('b1', 'k', tags, '"one"')).toBe(false)
      expect((await m.getObject('b1', 'k'))!.tags).toBeUndefined()
      expect(await m.setObjectTags('b1', 'k', tags, '"two"')).toBe(true)
      expect((await m.getObject('b1', 'k'))!.tags).toEqual(tags)
      expect(await m.setObjectTags('b1', 'missing', tags)).toBe(false)
      expect(await m.setObjectTags('nope', 'k', tags)).toBe(false)
    })

    it('lists object details with their encryption', async () => {
      const enc = { algorithm: 'aws:kms', keyId: 'k' } as unknown as ObjectRow['encryption']
      await m.commitObject(row('b1', 'e', { encryption: enc }))
      await m.commitObject(row('b1', 'p'))
      const got = await m.listObjectDetails('b1', '', '', 10)
      expect(got).toEqual([
        { key: 'e', size: 3, etag: '"e"', lastModified: 1_700_000_000_123, encryption: enc },
        { key: 'p', size: 3, etag: '"e"', lastModified: 1_700_000_000_123 },
      ])
    })

    it('concurrent overwrites of one key from two stores: the last committed row stays, every replaced blob is named once', async () => {
      const m2 = await o.second()
      const rows = Array.from({ length: 24 }, () => row('b1', 'hot'))
      const unused: string[] = []
      await Promise.all(rows.map(async (r, i) => {
        const res = await (i % 2 ? m : m2).commitObject(r)
        if (res.status === 'committed') unused.push(...res.unused)
      }))
      const final = await m.getObject('b1', 'hot')
      const all = rows.flatMap((r) => r.blobs)
      // Nothing leaks: every blob written is either the survivor's or was named as replaced, exactly once.
      expect([...unused, ...final!.blobs].sort()).toEqual([...all].sort())
      expect(new Set(unused).size).toBe(unused.length)
    })
  })

  describe('replication queue', () => {
    beforeEach(async () => {
      await m.createBucket(bucket('b1', { replication: 'on' }))
      await m.createBucket(bucket('dst'))
    })

    it('queues a write in its commit (deciding from the bucket row), supersedes older writes, unqueues on delete', async () => {
      const seen: BucketRow[] = []
      const first = await m.commitObject(row('b1', 'k'), { replicate: (b) => { seen.push(b); return TARGET } })
      expect(first).toMatchObject({ status: 'committed', queued: true })
      expect(seen[0]).toMatchObject({ name: 'b1', settings: { replication: 'on' } })
      const id1 = (await m.getObject('b1', 'k'))!.replication
      expect(id1).toMatchObject({ status: 'PENDING' })
      await m.commitObject(row('b1', 'k'), replicate)
      const id2 = (await m.getObject('b1', 'k'))!.replication
      expect(id2!.id).not.toBe(id1!.id)
      const due = await m.dueReplications(Date.now() + 1000, 10)
      expect(due).toHaveLength(1)
      expect(due[0]).toMatchObject({ bucket: 'b1', key: 'k', id: id2!.id, destination: 'dst', destinationOwner: 'root', ruleId: 'all', attempts: 0, lastError: null, claim: null })
      expect(await m.pendingReplications()).toBe(1)
      // A write the rules no longer match unqueues the older one.
      expect(await m.commitObject(row('b1', 'k'), { replicate: () => null })).toMatchObject({ queued: false })
      expect(await m.pendingReplications()).toBe(0)
      expect((await m.getObject('b1', 'k'))!.replication).toBeUndefined()
      await m.commitObject(row('b1', 'k2'), replicate)
      await m.deleteObject('b1', 'k2')
      expect(await m.pendingReplications()).toBe(0)
      expect(await m.nextReplicationAt()).toBeNull()
    })

    it('claims due items under a lease; the claim finishes them, a stale claim does not', async () => {
      await m.commitObject(row('b1', 'a'), replicate)
      await m.commitObject(row('b1', 'b'), replicate)
      const now = Date.now() + 10
      const claimed = await m.claimReplications({ now, limit: 1, leaseMs: 60_000 })
      expect(claimed).toHaveLength(1)
      expect(claimed[0].claim).not.toBeNull()
      expect(claimed[0].nextAttempt).toBe(now + 60_000)
      const other = await m.claimReplications({ now, limit: 10, leaseMs: 60_000 })
      expect(other.map((i) => i.key)).toEqual(claimed[0].key === 'a' ? ['b'] : ['a'])
      expect(await m.claimReplications({ now, limit: 10, leaseMs: 60_000 })).toEqual([])
      expect(await m.nextReplicationAt()).toBe(now + 60_000)
      // The lease runs out: another worker takes the item over; the first claim is void.
      const taken = await m.claimReplications({ now: now + 60_001, limit: 10, leaseMs: 60_000 })
      const again = taken.find((i) => i.key === claimed[0].key)!
      expect(again.claim).not.toBe(claimed[0].claim)
      expect(await m.finishReplication(claimed[0], 'COMPLETED')).toBe(false)
      expect((await m.getObject('b1', claimed[0].key))!.replication).toMatchObject({ status: 'PENDING' })
      expect(await m.finishReplication(again, 'COMPLETED')).toBe(true)
      expect((await m.getObject('b1', claimed[0].key))!.replication).toEqual({ status: 'COMPLETED', id: again.id })
      expect(await m.finishReplication(again, 'COMPLETED')).toBe(false)
    })

    it('retry records the attempt and releases the claim; drop removes only that write', async () => {
      await m.commitObject(row('b1', 'a'), replicate)
      const [item] = await m.claimReplications({ now: Date.now() + 10, limit: 5, leaseMs: 60_000 })
      const at = Date.now() + 5000
      await m.retryReplication(item, 3, at, 'the destination said no')
      const [due] = await m.dueReplications(at, 5)
      expect(due).toMatchObject({ key: 'a', attempts: 3, nextAttempt: at, lastError: 'the destination said no', claim: null })
      expect(await m.dueReplications(at - 1, 5)).toEqual([])
      const [reclaimed] = await m.claimReplications({ now: at, limit: 5, leaseMs: 1000 })
      expect(reclaimed.attempts).toBe(3)
      await m.dropReplication({ ...reclaimed, id: 'some-other-write' })
      expect(await m.pendingReplications()).toBe(1)
      await m.dropReplication(reclaimed)
      expect(await m.pendingReplications()).toBe(0)
    })

    it('an unclaimed item finishes on its id alone, and FAILED is recorded', async () => {
      await m.commitObject(row('b1', 'a'), replicate)
      const [item] = await m.dueReplications(Date.now() + 10, 5)
      expect(await m.finishReplication(item, 'FAILED')).toBe(true)
      expect((await m.getObject('b1', 'a'))!.replication).toEqual({ status: 'FAILED', id: item.id })
    })

    it('a replica commits only while its source is still that write, and is marked REPLICA', async () => {
      await m.commitObject(row('b1', 'a'), replicate)
      const [item] = await m.dueReplications(Date.now() + 10, 5)
      expect(await m.commitObject(row('dst', 'a'), { replicaOf: item })).toMatchObject({ status: 'committed', queued: false })
      expect((await m.getObject('dst', 'a'))!.replication).toEqual({ status: 'REPLICA' })
      await m.commitObject(row('b1', 'a'), replicate) // a newer write
      expect(await m.commitObject(row('dst', 'a'), { replicaOf: item })).toEqual({ status: 'superseded' })
    })

    it(kind.fleet ? 'resume releases only claims whose lease ran out (other gateways keep theirs)' : 'resume makes everything queued due now and releases its claims', async () => {
      await m.commitObject(row('b1', 'live'), replicate)
      await m.commitObject(row('b1', 'expired'), replicate)
      await m.commitObject(row('b1', 'later'), replicate)
      const t0 = Date.now() + 10
      const [first] = await m.claimReplications({ now: t0, limit: 1, leaseMs: 100 })
      const rest = await m.claimReplications({ now: t0, limit: 5, leaseMs: 600_000 })
      const expired = first
      const live = rest[0]
      const later = rest[1]
      await m.retryReplication(later, 1, t0 + 3_600_000, 'x')
      const now = t0 + 200
      const resumed = await m.resumeReplications(now)
      const due = await m.dueReplications(now, 10)
      if (kind.fleet) {
        expect(resumed).toBe(1)
        expect(due.map((i) => i.key)).toEqual([expired.key])
        // The live claim still holds: its worker finishes it.
        expect(await m.finishReplication(live, 'COMPLETED')).toBe(true)
      } else {
        expect(resumed).toBe(2)
        expect(due.map((i) => i.key).sort()).toEqual([expired.key, live.key, later.key].sort())
        expect(due.find((i) => i.key === later.key)!.attempts).toBe(1)
      }
    })

    it('two stores claiming at once never take one item twice', async () => {
      for (let i = 0; i < 30; i++) await m.commitObject(row('b1', `k${i}`), replicate)
      const m2 = await o.second()
      const now = Date.now() + 10
      const batches = await Promise.all(Array.from({ length: 12 }, (_, i) => (i % 2 ? m : m2).claimReplications({ now, limit: 4, leaseMs: 60_000 })))
      const keys = batches.flat().map((i) => i.key)
      expect(new Set(keys).size).toBe(keys.length)
      // Every item is claimed by someone once all batches ran (12 × 4 ≥ 30), except what a
      // store skipped while another held it; a last claim picks those up.
      const last = await m.claimReplications({ now, limit: 100, leaseMs: 60_000 })
      expect(new Set([...keys, ...last.map((i) => i.key)]).size).toBe(30)
    })
  })

  describe('multipart uploads', () => {
    beforeEach(async () => {
      await m.createBucket(bucket('b1'))
    })

    it('round-trips uploads and lists them by key then id, never splitting a key across pages', async () => {
      const u = upload('b1', 'k1', 'u-1', {
        checksumAlgorithm: 'CRC32', checksumType: 'FULL_OBJECT', headers: { 'content-type': 'x/y' }, meta: { a: 'b' },
        encryption: { algorithm: 'aws:kms', keyId: 'k9' } as unknown as UploadRow['encryption'], kmsKey: { keyId: 'k9', version: 2 },
        tags: [{ key: 'project', value: 'x' }],
      })
      await m.createUpload(u)
      expect(await m.getUpload('u-1')).toEqual(u)
      expect(await m.getUpload('nope')).toBeUndefined()
      await m.createUpload(upload('b1', 'k1', 'u-0'))
      await m.createUpload(upload('b1', 'k1', 'u-2'))
      await m.createUpload(upload('b1', 'k2', 'u-3'))
      await m.createUpload(upload('b1', 'j', 'u-4'))
      const ids = (await m.listUploads('b1', '', '', '', 100)).map((x) => x.uploadId)
      expect(ids).toEqual(['u-4', 'u-0', 'u-1', 'u-2', 'u-3'])
      expect((await m.listUploads('b1', '', '', '', 2)).map((x) => x.uploadId)).toEqual(['u-4', 'u-0', 'u-1', 'u-2'])
      expect((await m.listUploads('b1', 'k1', 'u-0', '', 100)).map((x) => x.uploadId)).toEqual(['u-1', 'u-2', 'u-3'])
      expect((await m.listUploads('b1', '', '', 'k', 100)).map((x) => x.uploadId)).toEqual(['u-0', 'u-1', 'u-2', 'u-3'])
    })

    it('records parts, names a replaced part blob, pages parts', async () => {
      await m.createUpload(upload('b1', 'k', 'u'))
      expect(await m.commitPart(part('nope', 1))).toEqual({ status: 'no-upload' })
      const p1 = part('u', 1, { checksum: { algorithm: 'CRC32', value: 'AAAA' } })
      expect(await m.commitPart(p1)).toEqual({ status: 'committed', unused: [], queued: false })
      const p1b = part('u', 1)
      expect(await m.commitPart(p1b)).toEqual({ status: 'committed', unused: [p1.blob], queued: false })
      expect(await m.commitPart(p1b)).toEqual({ status: 'committed', unused: [], queued: false })
      for (const n of [3, 2, 10]) await m.commitPart(part('u', n))
      expect((await m.allParts('u')).map((p) => p.partNumber)).toEqual([1, 2, 3, 10])
      expect((await m.listParts('u', 1, 2)).map((p) => p.partNumber)).toEqual([2, 3])
      expect((await m.allParts('u'))[0]).toEqual(p1b)
      expect(await m.referencedBlobs()).toEqual(new Set((await m.allParts('u')).map((p) => p.blob)))
    })

    it('completes into an object row, naming the parts left out and the object replaced', async () => {
      const old = row('b1', 'k')
      await m.commitObject(old)
      await m.createUpload(upload('b1', 'k', 'u'))
      const parts = [part('u', 1), part('u', 2), part('u', 3)]
      for (const p of parts) await m.commitPart(p)
      const obj = row('b1', 'k', { blobs: [parts[0].blob, parts[2].blob], partsCount: 2 })
      const res = await m.completeUpload('u', obj)
      expect(res).toEqual({ status: 'committed', unused: [parts[1].blob, ...old.blobs], queued: false })
      expect((await m.getObject('b1', 'k'))!.blobs).toEqual(obj.blobs)
      expect(await m.getUpload('u')).toBeUndefined()
      expect(await m.allParts('u')).toEqual([])
      expect(await m.completeUpload('u', obj)).toEqual({ status: 'no-upload' })
    })

    it('a refused completion changes nothing: the upload and its parts stay', async () => {
      await m.createUpload(upload('b1', 'k', 'u'))
      const p = part('u', 1)
      await m.commitPart(p)
      await m.createUpload(upload('gone', 'k', 'u2'))
      await m.commitPart(part('u2', 1))
      expect(await m.completeUpload('u2', row('gone', 'k'))).toEqual({ status: 'no-bucket' })
      expect(await m.getUpload('u2')).toBeDefined()
      const refusal = new Error('PreconditionFailed')
      await expect(m.completeUpload('u', row('b1', 'k', { blobs: [p.blob] }), { precondition: () => { throw refusal } })).rejects.toBe(refusal)
      expect(await m.getUpload('u')).toBeDefined()
      expect(await m.allParts('u')).toHaveLength(1)
      expect(await m.getObject('b1', 'k')).toBeUndefined()
    })

    it('completion queues replication like a put', async () => {
      await m.createUpload(upload('b1', 'k', 'u'))
      const p = part('u', 1)
      await m.commitPart(p)
      expect(await m.completeUpload('u', row('b1', 'k', { blobs: [p.blob] }), replicate)).toMatchObject({ status: 'committed', queued: true })
      expect(await m.pendingReplications()).toBe(1)
    })

    it('aborts, naming the part blobs', async () => {
      await m.createUpload(upload('b1', 'k', 'u'))
      const parts = [part('u', 2), part('u', 1)]
      for (const p of parts) await m.commitPart(p)
      expect((await m.deleteUpload('u'))!.sort()).toEqual(parts.map((p) => p.blob).sort())
      expect(await m.deleteUpload('u')).toBeNull()
    })

    it('parts committed from two stores while the upload completes either make it in or are refused', async () => {
      await m.createUpload(upload('b1', 'k', 'u'))
      const m2 = await o.second()
      const parts = Array.from({ length: 20 }, (_, i) => part('u', i + 1))
      const results = new Map<string, string>()
      const commits = parts.map(async (p, i) => {
        const r = await (i % 2 ? m : m2).commitPart(p)
        results.set(p.blob, r.status)
      })
      await new Promise((r) => setTimeout(r, 5))
      const done = (async () => {
        const now = await m.allParts('u')
        return m.completeUpload('u', row('b1', 'k', { blobs: now.map((p) => p.blob), partsCount: now.length }))
      })()
      await Promise.all(commits)
      const res = await done
      expect(res.status).toBe('committed')
      const obj = await m.getObject('b1', 'k')
      const unused = res.status === 'committed' ? res.unused : []
      for (const p of parts) {
        const inObject = obj!.blobs.includes(p.blob)
        // Each part is in the object, or named unused by the completion, or its commit was refused.
        expect(inObject || unused.includes(p.blob) || results.get(p.blob) === 'no-upload').toBe(true)
      }
      expect(await m.allParts('u')).toEqual([])
    })
  })

  describe('jobs', () => {
    const job = (id: string, createdAt: number): JobRow => newJob({ kind: 'encrypt', bucket: 'b1', prefix: 'p/\u0000' }, { id, createdBy: 'root', now: createdAt })
    const finding = (key: string, message: string): Omit<JobFinding, 'seq'> => ({ key, kind: 'error', part: null, package: null, code: 'S3SSE_X', message, at: 1 })

    it('two stores claiming at once never take one job twice', async () => {
      const m2 = await o.second()
      for (let i = 0; i < 6; i++) await m.createJob(job(`j${i}`, i))
      const now = Date.now()
      const take = (s: MetaStore, token: string) => s.claimJob(now, (j) => claim(j, { token, worker: token, now, leaseMs: 60_000 }))
      const got = await Promise.all(Array.from({ length: 12 }, (_, i) => take(i % 2 ? m : m2, `w${i}`)))
      const ids = got.filter((j) => j !== undefined).map((j) => j!.id)
      expect(new Set(ids).size).toBe(ids.length)
      // What a claim skipped while another held it, a last round picks up; then none is left.
      for (let i = 0; i < 6; i++) {
        const j = await take(m, `late${i}`)
        if (j) ids.push(j.id)
      }
      expect(ids.sort()).toEqual(['j0', 'j1', 'j2', 'j3', 'j4', 'j5'])
      for (const id of ids) {
        const stored = await m2.getJob(id)
        expect(stored!.claim!.token).toBe(got.find((j) => j?.id === id)?.claim?.token ?? stored!.claim!.token)
        expect(stored!.state).toBe('running')
      }
    })

    it('read-modify-writes of one job from two stores all land, each with its findings, numbered in the order they committed', async () => {
      const m2 = await o.second()
      await m.createJob(job('j', 1))
      const bump = (s: MetaStore, i: number) => {
        let after = -1
        return s
          .updateJob('j', (j) => {
            after = j.done.objects + 1
            return { ...j, done: { ...j.done, objects: after } }
          }, [finding(`k${i}`, 'first'), finding(`k${i}`, 'second')])
          .then((stored) => ({ stored, after }))
      }
      const results = await Promise.all(Array.from({ length: 16 }, (_, i) => bump(i % 2 ? m : m2, i)))
      expect((await m.getJob('j'))!.done.objects).toBe(16)
      // Every change saw the one before it: the counts stored are 1..16, once each.
      expect(results.map((r) => r.stored!.done.objects).sort((a, b) => a - b)).toEqual(Array.from({ length: 16 }, (_, i) => i + 1))
      const found = await m2.jobFindings('j', 0, 100)
      expect(found).toHaveLength(32)
      // Findings come in commit order: both of a change together, changes in the order of their counts.
      const byKey = new Map(results.map((r, i) => [`k${i}`, r.stored!.done.objects]))
      const order = found.filter((_, i) => i % 2 === 0).map((f) => byKey.get(f.key))
      expect(order).toEqual([...order].sort((a, b) => a! - b!))
      for (let i = 0; i < 32; i += 2) expect([found[i].key, found[i].message, found[i + 1].key, found[i + 1].message]).toEqual([found[i].key, 'first', found[i].key, 'second'])
    })

    it('a lease that ran out is taken over by another store; the first worker\'s late checkpoint changes nothing and writes no findings', async () => {
      const m2 = await o.second()
      await m.createJob(job('j', 1))
      const t = Date.now()
      const a = await m.claimJob(t, (j) => claim(j, { token: 'A', worker: 'gw-a', now: t, leaseMs: 100 }))
      expect(a).toMatchObject({ id: 'j', claim: { token: 'A' } })
      expect(await m2.claimJob(t + 50, (j) => claim(j, { token: 'B', worker: 'gw-b', now: t + 50, leaseMs: 100 }))).toBeUndefined()
      const b = await m2.claimJob(t + 100, (j) => claim(j, { token: 'B', worker: 'gw-b', now: t + 100, leaseMs: 60_000 }))
      expect(b).toMatchObject({ id: 'j', claim: { token: 'B', worker: 'gw-b' } })
      const progress = { cursor: 'p/\u0000z', delta: { objects: 5, bytes: 50, changed: 5, skipped: 0, errors: 0, damaged: 0 }, workedMs: 10 }
      const late = await m.updateJob('j', (j) => checkpoint(j, 'A', progress, t + 200, 100), [finding('late', 'never')])
      expect(late).toMatchObject({ claim: { token: 'B' }, cursor: '', done: { objects: 0 } })
      const mine = await m2.updateJob('j', (j) => checkpoint(j, 'B', progress, t + 200, 60_000), [finding('a\u0000b/🗝', 'key "a\u0000b/🗝" failed')])
      expect(mine).toMatchObject({ cursor: 'p/\u0000z', done: { objects: 5 }, claim: { token: 'B', until: t + 60_200 } })
      expect(await m.getJob('j')).toEqual(mine)
      expect((await m.jobFindings('j', 0, 10)).map((f) => [f.key, f.message])).toEqual([['a\u0000b/🗝', 'key "a\u0000b/🗝" failed']])
      // A pause from the first store while B holds the job: B sees it at its next checkpoint.
      await m.updateJob('j', (j) => requestAction(j, 'pause', t + 300))
      expect(await m2.updateJob('j', (j) => checkpoint(j, 'B', { ...progress, release: true }, t + 400, 60_000))).toMatchObject({ state: 'paused', claim: null, done: { objects: 10 } })
      expect(await m.claimJob(t + 500, (j) => j)).toBeUndefined()
    })

    it('aggregates count what every store committed', async () => {
      const m2 = await o.second()
      const under = (keyId: string, version: number) => ({ encryption: { algorithm: 'aws:kms', keyId } as unknown as ObjectRow['encryption'], kmsKey: { keyId, version } })
      await m.commitObject(row('b1', 'p/1', { size: 10, ...under('k', 1) }))
      await m2.commitObject(row('b1', 'p/2', { size: 20, ...under('k', 2) }))
      await m2.commitObject(row('b1', 'p/3', { size: 40 }))
      await m.createUpload(upload('b1', 'p/4', 'u1', { kmsKey: { keyId: 'k', version: 2 } }))
      expect(await m.objectStats('b1', 'p/')).toEqual({ objects: 3, bytes: 70, plaintextObjects: 1, plaintextBytes: 40 })
      expect(await m2.keyUsage()).toEqual([
        { keyId: 'k', version: 1, objects: 1, bytes: 10, uploads: 0 },
        { keyId: 'k', version: 2, objects: 1, bytes: 20, uploads: 1 },
      ])
      // A rewrap moves the row to another version and keeps its blobs.
      const moved = await m2.getObject('b1', 'p/1')
      expect(await m.commitObject({ ...moved!, kmsKey: { keyId: 'k', version: 2 } })).toMatchObject({ status: 'committed', unused: [] })
      expect((await m.keyUsage()).map((u) => [u.version, u.objects])).toEqual([[2, 2]])
    })

    beforeEach(async () => {
      await m.createBucket(bucket('b1'))
    })
  })

  describe('users and the sweep', () => {
    it('looks up users its admin path added; a removed user is gone', async () => {
      const u = await o.addUser('alice')
      expect(u.id).toMatch(/^u-[0-9a-f]{24}$/)
      expect(await m.lookupUser(u.accessKey)).toMatchObject({ id: u.id, name: 'alice', accessKey: u.accessKey, secretKey: u.secretKey })
      expect(await m.lookupUserById(u.id)).toMatchObject({ name: 'alice', accessKey: u.accessKey })
      expect(await m.lookupUserByName('alice')).toMatchObject({ id: u.id, accessKey: u.accessKey })
      expect(await m.lookupUserByName('nobody')).toBeUndefined()
      expect(await m.lookupUser('NOSUCHKEY')).toBeUndefined()
      expect(await m.lookupUserById('u-nobody')).toBeUndefined()
      await o.removeUser('alice')
      // A new user of the same name is another user: a new id.
      const again = await o.addUser('alice')
      expect(again.id).not.toBe(u.id)
      await new Promise((r) => setTimeout(r, 1100)) // the users file is re-read at most once a second
      expect(await m.lookupUser(u.accessKey)).toBeUndefined()
      expect(await m.lookupUserById(u.id)).toBeUndefined()
      expect(await m.lookupUserById(again.id)).toMatchObject({ name: 'alice' })
      expect((await m.lookupUserByName('alice'))?.id).toBe(again.id)
    })

    it('counts the objects and uploads stored encrypted', async () => {
      await m.createBucket(bucket('b1'))
      expect(await m.encryptedData()).toEqual({ objects: 0, uploads: 0 })
      const enc = { algorithm: 'aws:kms', keyId: 'k' } as unknown as ObjectRow['encryption']
      await m.commitObject(row('b1', 'e1', { encryption: enc }))
      await m.commitObject(row('b1', 'e2', { encryption: enc }))
      await m.commitObject(row('b1', 'p'))
      await m.createUpload(upload('b1', 'u', 'u1', { encryption: enc as unknown as UploadRow['encryption'] }))
      await m.createUpload(upload('b1', 'u', 'u2'))
      expect(await m.encryptedData()).toEqual({ objects: 2, uploads: 1 })
    })

    it('names every blob a row references', async () => {
      await m.createBucket(bucket('b1'))
      const a = row('b1', 'a', { blobs: [blob(), blob()] })
      await m.commitObject(a)
      await m.createUpload(upload('b1', 'k', 'u'))
      const p = part('u', 1)
      await m.commitPart(p)
      expect(await m.referencedBlobs()).toEqual(new Set([...a.blobs, p.blob]))
    })
  })
})
