/**
 * The S3 BlobStore on a real Ceph RGW: staged and published blobs in the backend bucket, streamed
 * multipart uploads with bounded read-ahead, server-side copies (CopyObject and UploadPartCopy),
 * ranged GETs of exactly the ciphertext a range needs, deferred removal that open readers outlive,
 * staging leases another gateway's sweep respects, and backend errors as typed codes (a proxy in
 * front of RGW throttles or goes down on purpose).
 */
import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { openEmbeddedKms, type EmbeddedKms } from '../../src/keys/index.js'
import type { EncryptionRequest } from '../../src/object/index.js'
import { readObject, stageObject } from '../../src/server/sealed.js'
import { S3BlobStore } from '../../src/server/store/s3.js'
import { backendBucket, throttlingProxy, type BackendBucket } from '../helpers/rgw.js'
import { describeWithServices, rgw } from '../helpers/services.js'
import { removeDir, tempDir } from '../server/helpers.js'

const MiB = 1024 * 1024

async function* chunks(data: Buffer, size = 256 * 1024): AsyncGenerator<Buffer> {
  for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size)
}

async function collect(it: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const out: Buffer[] = []
  for await (const c of it) out.push(Buffer.from(c))
  return Buffer.concat(out)
}

async function entries(store: S3BlobStore) {
  const out = new Map<string, { state: string; createdAt: number }>()
  for await (const e of store.list()) out.set(e.id, { state: e.state, createdAt: e.createdAt })
  return out
}

/** Records the backend calls a store makes (command, range, part number). */
function record(store: S3BlobStore): Array<{ cmd: string; range?: string; part?: number; copyRange?: string }> {
  const log: Array<{ cmd: string; range?: string; part?: number; copyRange?: string }> = []
  store.client.middlewareStack.add(
    (next, context) => async (args) => {
      const input = args.input as { Range?: string; PartNumber?: number; CopySourceRange?: string }
      log.push({ cmd: context.commandName as string, range: input.Range, part: input.PartNumber, copyRange: input.CopySourceRange })
      return next(args)
    },
    { step: 'initialize' },
  )
  return log
}

describeWithServices('S3 BlobStore on Ceph RGW', ['rgw'], () => {
  let bucket: BackendBucket
  let store: S3BlobStore
  let dir: string
  let kms: EmbeddedKms

  beforeAll(async () => {
    bucket = await backendBucket('store')
    store = await bucket.store({ partSize: 5 * MiB, copyThreshold: 6 * MiB, copyPartSize: 5 * MiB })
    dir = tempDir()
    kms = await openEmbeddedKms(dir, { rootKey: randomBytes(32) })
  })

  afterAll(async () => {
    await store?.close()
    await bucket?.drop()
    await kms?.close()
    if (dir) removeDir(dir)
  })

  it('stages small blobs with one PUT and large ones as a multipart upload read ahead by at most two parts', async () => {
    const log = record(store)
    const small = randomBytes(1000)
    const s = await store.stage(chunks(small))
    expect(log.filter((l) => l.cmd === 'PutObjectCommand')).toHaveLength(2) // the marker, the blob
    expect(log.some((l) => l.cmd === 'CreateMultipartUploadCommand')).toBe(false)

    const big = randomBytes(12 * MiB + 77)
    let pulled = 0
    let acked = 0
    let maxAhead = 0
    store.client.middlewareStack.add(
      (next, context) => async (args) => {
        const out = await next(args)
        if (context.commandName === 'UploadPartCommand') acked += (args.input as { ContentLength: number }).ContentLength
        return out
      },
      { step: 'initialize', name: 'ackCounter' },
    )
    const source = (async function* () {
      for await (const c of chunks(big)) {
        pulled += c.length
        maxAhead = Math.max(maxAhead, pulled - acked)
        yield c
      }
    })()
    const b = await store.stage(source)
    store.client.middlewareStack.remove('ackCounter')
    const parts = log.filter((l) => l.cmd === 'UploadPartCommand').map((l) => l.part)
    expect(parts).toEqual([1, 2, 3])
    // One part uploading, one filling, one chunk in hand: memory stays bounded whatever the size.
    expect(maxAhead).toBeLessThanOrEqual(2 * 5 * MiB + 256 * 1024)
    const listed = await entries(store)
    expect(listed.get(s.id)?.state).toBe('staged')
    expect(listed.get(b.id)?.state).toBe('staged')
    await store.publish([s, b])
    await store.settled()
    const after = await entries(store)
    expect(after.get(s.id)?.state).toBe('stored')
    expect(after.get(b.id)?.state).toBe('stored')
    expect((await bucket.get(store.blobKey(b.id))).equals(big)).toBe(true)
    expect(await bucket.keys('staging/')).toEqual([])
    const reader = await store.open([s.id, b.id])
    expect((await collect(reader.read(1, 5 * MiB - 3, 5 * MiB + 3))).equals(big.subarray(5 * MiB - 3, 5 * MiB + 3))).toBe(true)
    expect((await collect(reader.read(0, 0, 1000))).equals(small)).toBe(true)
    await reader.close()
  })

  it('reads exactly the ciphertext a range needs: a 1-byte range of an encrypted object is one ranged GET of one package', async () => {
    const data = randomBytes(3 * MiB + 5)
    const encryption: EncryptionRequest = { algorithm: 'aws:kms', kms, keyId: 'store-test', createKey: true }
    const context = { bucket: 'b', key: 'k' }
    const staged = await stageObject(store, chunks(data), { context, encryption })
    await store.publish([staged.blob])
    const stored = await bucket.get(store.blobKey(staged.blob.id))
    expect(stored.includes(data.subarray(100_000, 100_032))).toBe(false)
    const log = record(store)
    const obj = { manifest: staged.result, blobs: [staged.blob.id], context }
    const one = await collect(await readObject(store, obj, { kms }, { start: 2 * MiB + 1, end: 2 * MiB + 1 }))
    expect(one.equals(data.subarray(2 * MiB + 1, 2 * MiB + 2))).toBe(true)
    const gets = log.filter((l) => l.cmd === 'GetObjectCommand')
    expect(gets).toHaveLength(1)
    const [, from, to] = /^bytes=(\d+)-(\d+)$/.exec(gets[0].range!)!.map(Number)
    expect(to - from + 1).toBe(65536 + 16)
    expect((await collect(await readObject(store, obj, { kms }))).equals(data)).toBe(true)
  })

  it('copies on the server: CopyObject for small blobs, UploadPartCopy above the threshold', async () => {
    const small = await store.stage(chunks(randomBytes(10_000)))
    const big = await store.stage(chunks(randomBytes(11 * MiB)))
    await store.publish([small, big])
    const log = record(store)
    const copies = await store.copy([small.id, big.id])
    expect(log.filter((l) => l.cmd === 'CopyObjectCommand')).toHaveLength(1)
    expect(log.filter((l) => l.cmd === 'UploadPartCopyCommand').map((l) => l.copyRange).sort()).toEqual([`bytes=0-${5 * MiB - 1}`, `bytes=${10 * MiB}-${11 * MiB - 1}`, `bytes=${5 * MiB}-${10 * MiB - 1}`].sort())
    expect(log.some((l) => l.cmd === 'UploadPartCommand' || l.cmd === 'GetObjectCommand')).toBe(false)
    expect((await entries(store)).get(copies[1].id)?.state).toBe('staged')
    await store.publish(copies)
    await store.settled()
    expect((await bucket.get(store.blobKey(copies[0].id))).equals(await bucket.get(store.blobKey(small.id)))).toBe(true)
    expect((await bucket.get(store.blobKey(copies[1].id))).equals(await bucket.get(store.blobKey(big.id)))).toBe(true)
    // Either side can go alone.
    await store.remove([small.id])
    await store.purge(Date.now() + store.graceMs + 1000)
    expect((await bucket.get(store.blobKey(copies[0].id))).length).toBe(10_000)
  })

  it('a removed blob stays readable for open readers until its grace runs out, then is deleted in a batch', async () => {
    const data = randomBytes(200_000)
    const a = await store.stage(chunks(data))
    const b = await store.stage(chunks(randomBytes(10)))
    await store.publish([a, b])
    const reader = await store.open([a.id])
    await store.remove([a.id, b.id])
    expect((await entries(store)).has(a.id)).toBe(false) // on its way out: no sweep counts it
    expect((await collect(reader.read(0, 0, data.length))).equals(data)).toBe(true)
    expect(await store.purge()).toBe(0) // within the grace
    const log = record(store)
    expect(await store.purge(Date.now() + store.graceMs + 1000)).toBeGreaterThanOrEqual(2)
    expect(log.filter((l) => l.cmd === 'DeleteObjectsCommand')).toHaveLength(1)
    await expect(collect(reader.read(0, 0, 10))).rejects.toMatchObject({ code: 'S3SSE_BLOB_NOT_FOUND' })
    await reader.close()
    await expect(store.open(['0'.repeat(32), a.id])).rejects.toMatchObject({ code: 'S3SSE_BLOB_NOT_FOUND' })
    expect(await bucket.keys('deleted/')).toEqual([])
  })

  it('a failing source stream passes its error through and leaves nothing behind, no open backend upload either', async () => {
    const bad = Object.assign(new Error('BadDigest'), { code: 'BadDigest' })
    const before = new Set(await bucket.keys())
    const source = (async function* () {
      yield randomBytes(6 * MiB)
      throw bad
    })()
    await expect(store.stage(source)).rejects.toBe(bad)
    expect((await bucket.keys()).filter((k) => !before.has(k))).toEqual([])
    expect(await bucket.openUploads()).toEqual([])
    const d = await store.stage(chunks(randomBytes(100)))
    await store.discard([d])
    expect((await bucket.keys()).filter((k) => !before.has(k))).toEqual([])
  })

  it("a live gateway's staging stays young for every sweep; a dead one's ages and is swept with its open upload", async () => {
    const a = await bucket.store({ leaseMs: 900, owner: 'gateway-a' })
    const b = await bucket.store({ leaseMs: 900, owner: 'gateway-b' })
    let release!: () => void
    const held = new Promise<void>((r) => (release = r))
    const source = (async function* () {
      yield randomBytes(5 * MiB)
      yield randomBytes(5 * MiB) // the first part is on its way to the backend
      await held
    })()
    const staging = a.stage(source)
    await new Promise((r) => setTimeout(r, 2500))
    const live = [...(await entries(b))].filter(([, e]) => e.state === 'staged')
    expect(live).toHaveLength(1)
    // Renewed within the lease (the backend's times have 1 s resolution).
    expect(live[0][1].createdAt).toBeGreaterThan(Date.now() - 900 - 1000 - 500)
    // Gateway A dies: no more renewals; its upload never completes.
    await a.close()
    release()
    await staging.catch(() => undefined)
    await new Promise((r) => setTimeout(r, 2500))
    const dead = [...(await entries(b))].filter(([, e]) => e.state === 'staged')
    expect(dead).toHaveLength(1)
    expect(dead[0][1].createdAt).toBeLessThan(Date.now() - 900 - 500)
    await b.discard([{ id: dead[0][0], createdAt: dead[0][1].createdAt }])
    expect(await bucket.keys('staging/')).toEqual([])
    expect(await bucket.openUploads()).toEqual([])
    await b.close()
  })

  it('throttling is retried with backoff; a backend that keeps refusing or is gone is a typed 503 code', async () => {
    const proxy = await throttlingProxy()
    const r = rgw()!
    try {
      const s = await S3BlobStore.open({ endpoint: proxy.endpoint, bucket: bucket.name, credentials: { accessKeyId: r.accessKey, secretAccessKey: r.secretKey }, purgeIntervalMs: 0, maxAttempts: 4 })
      proxy.throttle(2)
      const ok = await s.stage(chunks(randomBytes(1000)))
      expect(proxy.refused).toBe(2)
      await s.publish([ok])
      proxy.down()
      await expect(s.stage(chunks(randomBytes(1000)))).rejects.toMatchObject({ code: 'S3SSE_STORAGE_UNAVAILABLE' })
      await expect(s.open(['0'.repeat(32), ok.id])).rejects.toMatchObject({ code: 'S3SSE_STORAGE_UNAVAILABLE' })
      proxy.up()
      const reader = await s.open([ok.id])
      expect((await collect(reader.read(0, 0, 1000))).length).toBe(1000)
      await reader.close()
      await s.close()
    } finally {
      await proxy.close()
    }
    await expect(S3BlobStore.open({ endpoint: 'http://127.0.0.1:1', bucket: bucket.name, credentials: { accessKeyId: 'x', secretAccessKey: 'y' }, maxAttempts: 1 })).rejects.toMatchObject({ code: 'S3SSE_STORAGE_UNAVAILABLE' })
    await expect(S3BlobStore.open({ endpoint: r.endpoint, bucket: bucket.name, credentials: { accessKeyId: r.accessKey, secretAccessKey: 'wrong-secret' }, maxAttempts: 1 })).rejects.toMatchObject({ code: 'S3SSE_STORAGE_IO' })
    await expect(S3BlobStore.open({ endpoint: r.endpoint, bucket: 'no-such-bucket-here', credentials: { accessKeyId: r.accessKey, secretAccessKey: r.secretKey } })).rejects.toMatchObject({
      code: 'S3SSE_STORAGE_IO',
      message: expect.stringContaining('does not exist'),
    })
  })
})
