/**
 * Many gateways at once, in this process, over one backend bucket on Ceph RGW, one PostgreSQL
 * database and one KMS (test/helpers/fleet.ts), spoken to over HTTPS with the AWS SDK:
 *
 * - a multipart upload whose Create, parts, ListParts and Complete go to different gateways;
 * - two gateways overwriting one key at once: one committed version stays, read alike through
 *   every gateway, and no blob leaks (after the removals' grace, the bucket holds exactly the
 *   referenced blobs, and a sweep finds nothing);
 * - one gateway's orphan sweep never takes another's live staging, and does take a dead one's;
 * - the replication queue worked by every gateway, each item copied once;
 * - a key rotated, disabled and enabled in the shared KMS: every gateway follows within the
 *   key cache's TTL (the documented bound on staleness);
 * - what the backend bucket holds, read with RGW's own credentials: no plaintext of any
 *   encrypted object (a marker scan), while a plaintext bucket's marker is found.
 */
import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, expect, it } from 'vitest'
import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  ListPartsCommand,
  PutBucketEncryptionCommand,
  PutBucketReplicationCommand,
  PutObjectCommand,
  UploadPartCommand,
  UploadPartCopyCommand,
  HeadObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3'
import { sweepOrphans } from '../../src/server/commit.js'
import type { BlobStore } from '../../src/server/store/blob.js'
import { decodeManifest } from '../../src/object/index.js'
import { S3sseError } from '../../src/errors.js'
import { toS3Error } from '../../src/s3/errors.js'
import { inProcessFleet, type InProcessFleet } from '../helpers/fleet.js'
import { describeWithServices } from '../helpers/services.js'
import { errorCode } from '../server/helpers.js'

const MiB = 1024 * 1024

async function body(out: { Body?: unknown }): Promise<Buffer> {
  return Buffer.from(await (out.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray())
}

async function get(s3: S3Client, Bucket: string, Key: string): Promise<Buffer> {
  return body(await s3.send(new GetObjectCommand({ Bucket, Key })))
}

/** Data that carries a findable marker every 64 bytes. */
function marked(marker: string, size: number): Buffer {
  const out = Buffer.alloc(size)
  const unit = Buffer.from(marker.padEnd(64, '.'))
  for (let i = 0; i < size; i += 64) unit.copy(out, i)
  return out
}

async function until(what: string, check: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

/** Counts the blob copies a gateway makes (the replicas it writes by copying). */
function countingCopies(counter: { copies: number }) {
  return (inner: BlobStore): BlobStore =>
    new Proxy(inner, {
      get(target, prop, receiver) {
        if (prop === 'copy') return async (ids: string[]) => { counter.copies += ids.length; return target.copy(ids) }
        const v = Reflect.get(target, prop, receiver)
        return typeof v === 'function' ? v.bind(target) : v
      },
    })
}

describeWithServices('a fleet of gateways over Ceph RGW and PostgreSQL', ['rgw', 'postgres'], () => {
  let fleet: InProcessFleet
  const copies = { copies: 0 }

  beforeAll(async () => {
    fleet = await inProcessFleet(3, { config: { keyCache: { ttlMs: 1500, bucketKeyTtlMs: 1500 } }, blobs: countingCopies(copies) })
  })

  afterAll(async () => {
    await fleet?.stop()
  })

  const gw = (i: number) => fleet.gateways[i % fleet.gateways.length]

  it('a multipart upload created on one gateway, its parts sent to the others and completed on a third', async () => {
    const [a, b, c] = fleet.gateways
    await a.s3.send(new CreateBucketCommand({ Bucket: 'mp-across' }))
    await b.s3.send(new PutBucketEncryptionCommand({ Bucket: 'mp-across', ServerSideEncryptionConfiguration: { Rules: [{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms' } }] } }))
    const { UploadId } = await a.s3.send(new CreateMultipartUploadCommand({ Bucket: 'mp-across', Key: 'big' }))
    const p1 = randomBytes(5 * MiB)
    const p2 = randomBytes(1234)
    const e1 = await b.s3.send(new UploadPartCommand({ Bucket: 'mp-across', Key: 'big', UploadId, PartNumber: 1, Body: p1 }))
    const e2 = await c.s3.send(new UploadPartCommand({ Bucket: 'mp-across', Key: 'big', UploadId, PartNumber: 2, Body: p2 }))
    expect(e1.ServerSideEncryption).toBe('aws:kms')
    const listed = await a.s3.send(new ListPartsCommand({ Bucket: 'mp-across', Key: 'big', UploadId }))
    expect(listed.Parts?.map((p) => p.PartNumber)).toEqual([1, 2])
    const done = await c.s3.send(new CompleteMultipartUploadCommand({ Bucket: 'mp-across', Key: 'big', UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: e1.ETag }, { PartNumber: 2, ETag: e2.ETag }] } }))
    expect(done.ServerSideEncryption).toBe('aws:kms')
    for (const g of fleet.gateways) expect((await get(g.s3, 'mp-across', 'big')).equals(Buffer.concat([p1, p2]))).toBe(true)
    const range = await body(await b.s3.send(new GetObjectCommand({ Bucket: 'mp-across', Key: 'big', Range: `bytes=${5 * MiB - 2}-${5 * MiB + 1}` })))
    expect(range.equals(Buffer.concat([p1, p2]).subarray(5 * MiB - 2, 5 * MiB + 2))).toBe(true)
  })

  it('two gateways overwriting one key at once: one committed version stays and nothing leaks', async () => {
    const [a, b] = fleet.gateways
    await a.s3.send(new CreateBucketCommand({ Bucket: 'hot-key' }))
    const versions = Array.from({ length: 16 }, (_, i) => randomBytes(20_000 + i))
    await Promise.all(versions.map((v, i) => (i % 2 ? a : b).s3.send(new PutObjectCommand({ Bucket: 'hot-key', Key: 'k', Body: v }))))
    const seen = await Promise.all(fleet.gateways.map((g) => get(g.s3, 'hot-key', 'k')))
    expect(versions.some((v) => v.equals(seen[0]))).toBe(true)
    for (const s of seen) expect(s.equals(seen[0])).toBe(true)
    // The row's blob holds the version read (last committed), and every replaced blob was removed.
    const row = await a.meta.getObject('hot-key', 'k')
    expect(row!.blobs).toHaveLength(1)
    const store = a.blobs
    await store.purge(Date.now() + store.graceMs + 1000)
    const referenced = await a.meta.referencedBlobs()
    const stored: string[] = []
    for await (const e of store.list()) stored.push(e.id)
    expect(new Set(stored)).toEqual(referenced)
    const swept = await sweepOrphans(a.server.state, Date.now() + 1000)
    expect(swept).toEqual({ staged: 0, stored: 0 })
  })

  it("a gateway's sweep leaves another gateway's live staging alone, and takes a dead gateway's", async () => {
    const lease = { leaseMs: 600 }
    const slow = await fleet.add({ store: lease })
    const sweeper = await fleet.add({ store: lease })
    await slow.s3.send(new CreateBucketCommand({ Bucket: 'slow-writes' }))
    // A body that takes a while: the blob stays staged on `slow` the whole time.
    const data = randomBytes(3 * MiB)
    const source = (async function* () {
      for (let i = 0; i < data.length; i += 256 * 1024) {
        await new Promise((r) => setTimeout(r, 150))
        yield data.subarray(i, i + 256 * 1024)
      }
    })()
    const put = slow.s3.send(new PutObjectCommand({ Bucket: 'slow-writes', Key: 'slow', Body: (await import('node:stream')).Readable.from(source), ContentLength: data.length }))
    // Meanwhile the other gateway sweeps with a cutoff three leases back, again and again.
    let sweeps = 0
    let staged = 0
    const end = Date.now() + 2500
    while (Date.now() < end) {
      const r = await sweepOrphans(sweeper.server.state, Date.now() - 3 * lease.leaseMs)
      staged += r.staged
      sweeps++
      await new Promise((r) => setTimeout(r, 200))
    }
    await put
    expect(sweeps).toBeGreaterThan(3)
    expect(staged).toBe(0)
    expect((await get(sweeper.s3, 'slow-writes', 'slow')).equals(data)).toBe(true)

    // Now a gateway dies mid-upload (its store stops renewing; the upload never completes).
    let release!: () => void
    const held = new Promise<void>((r) => (release = r))
    const dying = slow.blobs.stage((async function* () {
      yield randomBytes(1000)
      await held
    })())
    await until('the staging marker', async () => {
      for await (const e of sweeper.blobs.list()) if (e.state === 'staged') return true
      return false
    })
    await slow.blobs.close()
    await new Promise((r) => setTimeout(r, 3 * lease.leaseMs + 1500))
    const r = await sweepOrphans(sweeper.server.state, Date.now() - 3 * lease.leaseMs)
    expect(r.staged).toBe(1)
    release()
    await dying.catch(() => undefined)
    expect(await fleet.bucket.keys('staging/')).toEqual([])
    expect(await fleet.bucket.openUploads()).toEqual([])
    await slow.stop()
    await sweeper.stop()
  })

  it('the replication queue is worked by every gateway, each write copied exactly once', async () => {
    const a = gw(0)
    await a.s3.send(new CreateBucketCommand({ Bucket: 'repl-src' }))
    await a.s3.send(new CreateBucketCommand({ Bucket: 'repl-dst' }))
    await a.s3.send(new PutBucketReplicationCommand({
      Bucket: 'repl-src',
      ReplicationConfiguration: { Role: 'arn:aws:iam::000000000000:role/replication', Rules: [{ ID: 'all', Status: 'Enabled', Prefix: '', Destination: { Bucket: 'arn:aws:s3:::repl-dst' } }] },
    }))
    copies.copies = 0
    const completedBefore = fleet.gateways.map((g) => g.server.state.replicator!.completed)
    const data = Array.from({ length: 12 }, (_, i) => randomBytes(1000 + i))
    await Promise.all(data.map((d, i) => gw(i).s3.send(new PutObjectCommand({ Bucket: 'repl-src', Key: `obj-${i}`, Body: d }))))
    await until('the queue to drain', async () => (await a.meta.pendingReplications()) === 0)
    for (const [i, d] of data.entries()) {
      expect((await get(gw(i + 1).s3, 'repl-dst', `obj-${i}`)).equals(d)).toBe(true)
      const head = await gw(i).s3.send(new HeadObjectCommand({ Bucket: 'repl-src', Key: `obj-${i}` }))
      expect(head.ReplicationStatus).toBe('COMPLETED')
    }
    const completed = fleet.gateways.map((g, i) => g.server.state.replicator!.completed - (completedBefore[i] ?? 0))
    expect(completed.reduce((x, y) => x + y, 0)).toBe(12)
    expect(copies.copies).toBe(12)
    // More than one gateway did the work.
    expect(completed.filter((n) => n > 0).length).toBeGreaterThan(1)
  })

  it('a key rotated, disabled and enabled in the shared KMS (kms serve): every gateway follows within the key cache TTL', async () => {
    const [a, b, c] = fleet.gateways
    await a.s3.send(new CreateBucketCommand({ Bucket: 'keyed' }))
    await a.s3.send(new PutBucketEncryptionCommand({ Bucket: 'keyed', ServerSideEncryptionConfiguration: { Rules: [{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms' }, BucketKeyEnabled: true }] } }))
    const before = randomBytes(3000)
    await a.s3.send(new PutObjectCommand({ Bucket: 'keyed', Key: 'before', Body: before }))
    for (const g of fleet.gateways) expect((await get(g.s3, 'keyed', 'before')).equals(before)).toBe(true)
    const keyId = decodeManifest((await a.meta.getObject('keyed', 'before'))!.manifest).encryption!.keyId
    await fleet.kms.rotateKey(keyId)
    // A rotation is the KMS's own business (the AWS KMS API shows no versions): objects wrapped
    // before and after it read through every gateway.
    await new Promise((r) => setTimeout(r, 1600))
    for (const [i, g] of [a, b, c].entries()) await g.s3.send(new PutObjectCommand({ Bucket: 'keyed', Key: `after-${i}`, Body: before }))
    for (const g of fleet.gateways) {
      expect((await get(g.s3, 'keyed', 'before')).equals(before)).toBe(true)
      for (let i = 0; i < 3; i++) expect((await get(g.s3, 'keyed', `after-${i}`)).equals(before)).toBe(true)
    }
    await fleet.kms.disableKey(keyId)
    const DISABLED = toS3Error(new S3sseError('S3SSE_KMS_KEY_DISABLED', 'disabled')).code
    // The bound: after the TTL no gateway reads or writes with the disabled key.
    await new Promise((r) => setTimeout(r, 1600))
    for (const g of fleet.gateways) {
      expect(await errorCode(g.s3.send(new GetObjectCommand({ Bucket: 'keyed', Key: 'before' })))).toBe(DISABLED)
      expect(await errorCode(g.s3.send(new PutObjectCommand({ Bucket: 'keyed', Key: 'refused', Body: 'x' })))).toBe(DISABLED)
    }
    await fleet.kms.enableKey(keyId)
    for (const g of fleet.gateways) expect((await get(g.s3, 'keyed', 'after-1')).equals(before)).toBe(true)
  })

  it('the backend bucket, read with RGW credentials, holds no plaintext of any encrypted object', async () => {
    const ENC = 'ENCRYPTED-MARKER-7f3a1c'
    const PLAIN = 'PLAINTEXT-MARKER-2b9e44'
    const REPL = 'REPLICATED-MARKER-91d0c5'
    const [a, b, c] = fleet.gateways
    await a.s3.send(new CreateBucketCommand({ Bucket: 'scan-enc' }))
    await a.s3.send(new CreateBucketCommand({ Bucket: 'scan-plain' }))
    await a.s3.send(new CreateBucketCommand({ Bucket: 'scan-replica' }))
    await b.s3.send(new PutBucketEncryptionCommand({ Bucket: 'scan-enc', ServerSideEncryptionConfiguration: { Rules: [{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms' } }] } }))
    await b.s3.send(new PutBucketEncryptionCommand({ Bucket: 'scan-replica', ServerSideEncryptionConfiguration: { Rules: [{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms' } }] } }))
    await c.s3.send(new PutBucketReplicationCommand({
      Bucket: 'scan-plain',
      ReplicationConfiguration: { Role: 'arn:aws:iam::000000000000:role/replication', Rules: [{ ID: 'r', Status: 'Enabled', Prefix: 'to-replica/', Destination: { Bucket: 'arn:aws:s3:::scan-replica' } }] },
    }))
    const plain = marked(PLAIN, 200_000)
    const secret = marked(ENC, 300_000)
    await a.s3.send(new PutObjectCommand({ Bucket: 'scan-plain', Key: 'p', Body: plain }))
    await a.s3.send(new PutObjectCommand({ Bucket: 'scan-enc', Key: 'single', Body: secret }))
    // An encrypted copy of a plaintext object, an encrypted multipart with a copied part, and a
    // plaintext object replicated into an encrypted bucket.
    const secretPlain = marked(REPL, 100_000)
    await b.s3.send(new PutObjectCommand({ Bucket: 'scan-plain', Key: 'to-replica/x', Body: secretPlain }))
    await c.s3.send(new CopyObjectCommand({ Bucket: 'scan-enc', Key: 'copied', CopySource: 'scan-enc/single' }))
    const { UploadId } = await b.s3.send(new CreateMultipartUploadCommand({ Bucket: 'scan-enc', Key: 'mp' }))
    const p1 = await c.s3.send(new UploadPartCommand({ Bucket: 'scan-enc', Key: 'mp', UploadId, PartNumber: 1, Body: marked(ENC, 5 * MiB) }))
    const p2 = await a.s3.send(new UploadPartCopyCommand({ Bucket: 'scan-enc', Key: 'mp', UploadId, PartNumber: 2, CopySource: 'scan-enc/single' }))
    await b.s3.send(new CompleteMultipartUploadCommand({ Bucket: 'scan-enc', Key: 'mp', UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: p1.ETag }, { PartNumber: 2, ETag: p2.CopyPartResult!.ETag }] } }))
    await until('the replica', async () => (await errorCode(a.s3.send(new HeadObjectCommand({ Bucket: 'scan-replica', Key: 'to-replica/x' })))) === undefined)
    // Every object of the backend bucket, read directly: staged, stored, being removed alike.
    const hits = { enc: [] as string[], plain: [] as string[], repl: [] as string[] }
    for (const key of await fleet.bucket.keys()) {
      const bytes = await fleet.bucket.get(key)
      if (bytes.includes(ENC)) hits.enc.push(key)
      if (bytes.includes(PLAIN)) hits.plain.push(key)
      if (bytes.includes(REPL)) hits.repl.push(key)
    }
    expect(hits.enc).toEqual([])
    // The replicated source is plaintext by choice; its encrypted replica is not.
    const source = (await a.meta.getObject('scan-plain', 'to-replica/x'))!.blobs.map((id) => a.blobs.blobKey(id))
    expect(hits.repl).toEqual(source)
    // The scan can see a marker: the plaintext bucket's object is stored as it is.
    expect(hits.plain.length).toBeGreaterThan(0)
    expect((await get(c.s3, 'scan-replica', 'to-replica/x')).equals(secretPlain)).toBe(true)
  })
})
