import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { TAG_SIZE } from '../../src/crypto/constants.js'
import { sealedStreamSize } from '../../src/crypto/offsets.js'
import { openEmbeddedKms, type EmbeddedKms } from '../../src/keys/embedded.js'
import { cachedKms, countingKms } from '../../src/keys/cache.js'
import type { Kms } from '../../src/keys/kms.js'
import {
  completeUpload, copyPartRange, decodeManifest, encodeManifest, openObject, openRange, resolveRange, rewrap,
  sealObject, sealPart, startUpload, verifyManifest,
  type EncryptionRequest, type Manifest, type ObjectContext, type PartRecord, type UploadState,
} from '../../src/object/index.js'
import { ROOT_KEY_ENV } from '../../src/keys/keyring.js'
import { FlakyKms, MemoryStore, chunks, collect, expectCode, randomData, tempDir } from '../helpers/objects.js'

const P = 64
const ctx: ObjectContext = { bucket: 'bucket-a', key: 'dir/object.bin' }

let dir: string
let cleanup: () => void
let kms: EmbeddedKms
let keyId: string

beforeAll(async () => {
  delete process.env[ROOT_KEY_ENV]
  ;({ dir, cleanup } = tempDir('s3sse-objects-'))
  kms = await openEmbeddedKms(dir)
  keyId = (await kms.createKey({ alias: 'objects' })).keyId
})
afterAll(async () => {
  await kms.close()
  cleanup()
})

function enc(k: Kms = kms, extra: Partial<EncryptionRequest> = {}): EncryptionRequest {
  return { algorithm: 'aws:kms', kms: k, keyId: 'objects', ...extra }
}

/** Seals a single-part object into a MemoryStore. */
async function put(data: Uint8Array, encryption: EncryptionRequest | null, context = ctx, packageSize = P, step = 10) {
  const out = await sealObject(chunks(data, step), { context, encryption, packageSize })
  const store = new MemoryStore()
  store.parts.push(await collect(out.stream))
  return { store, manifest: out.result() }
}

/** A multipart object from `sizes`, stored one file per part. */
async function putParts(sizes: number[], encryption: EncryptionRequest | null, context = ctx, packageSize = P) {
  const upload = await startUpload({ context, encryption, packageSize })
  const store = new MemoryStore()
  const records: PartRecord[] = []
  const plain: Buffer[] = []
  for (let i = 0; i < sizes.length; i++) {
    const data = randomData(sizes[i])
    plain.push(data)
    const out = await sealPart(upload, { kms }, i + 1, chunks(data, 7))
    store.parts.push(await collect(out.stream))
    records.push(out.result())
  }
  const manifest = await completeUpload(upload, { kms }, records)
  return { upload, store, manifest, records, plain: Buffer.concat(plain) }
}

describe.each([['encrypted', true], ['plaintext', false]] as const)('%s objects', (_name, encrypted) => {
  const encryption = () => encrypted ? enc() : null

  it('round-trip at every length around the package size, through canonical manifest bytes', async () => {
    for (const n of [0, 1, P - 1, P, P + 1, 2 * P, 2 * P + 1, 5 * P + 3]) {
      const data = randomData(n)
      const { store, manifest } = await put(data, encryption())
      expect(manifest.size).toBe(n)
      expect(store.parts[0].length).toBe(encrypted ? sealedStreamSize(n, P) : n)
      expect(manifest.parts[0].storedSize).toBe(store.parts[0].length)
      if (encrypted && n >= 16) expect(store.parts[0].includes(data.subarray(0, 16))).toBe(false)
      const bytes = encodeManifest(manifest)
      expect(Buffer.from(encodeManifest(decodeManifest(bytes)))).toEqual(Buffer.from(bytes))
      expect(await collect(openObject(decodeManifest(bytes), { context: ctx, kms }, store.read))).toEqual(data)
    }
  })

  it('range reads equal the plaintext oracle at every start/end around package and part boundaries', async () => {
    // Three parts of unequal sizes, none a multiple of the package size but one.
    const { store, manifest, plain } = await putParts([3 * P + 5, P, 2 * P - 7], encryption())
    const points = new Set<number>([0, plain.length - 1])
    let offset = 0
    for (const part of manifest.parts) {
      for (let k = 0; k * P <= part.size; k++) for (const d of [-1, 0, 1]) points.add(offset + k * P + d)
      for (const d of [-1, 0, 1]) points.add(offset + part.size + d)
      offset += part.size
    }
    const list = [...points].filter((p) => p >= 0 && p < plain.length).sort((a, b) => a - b)
    let pairs = 0
    for (const s of list) {
      for (const e of list) {
        if (e < s) continue
        store.resetCounters()
        const got = await collect(openRange(manifest, { context: ctx, kms }, s, e, store.read))
        expect(got.equals(plain.subarray(s, e + 1)), `range ${s}-${e}`).toBe(true)
        expect(store.bytesRead).toBe(expectedRead(manifest, s, e, encrypted))
        pairs++
      }
    }
    expect(list.length).toBeGreaterThanOrEqual(20)
    expect(pairs).toBe(list.length * (list.length + 1) / 2)
  })

  it('random ranges equal the oracle', async () => {
    const { store, manifest, plain } = await putParts([1000, 1, 777, 64 * 5], encryption())
    for (let i = 0; i < 300; i++) {
      const a = Math.floor(Math.random() * plain.length)
      const b = Math.floor(Math.random() * plain.length)
      const [s, e] = a <= b ? [a, b] : [b, a]
      expect((await collect(openRange(manifest, { context: ctx, kms }, s, e, store.read))).equals(plain.subarray(s, e + 1)), `range ${s}-${e}`).toBe(true)
    }
  })

  it('a 1-byte range from the middle reads one package; across a boundary, two', async () => {
    const data = randomData(1000 * P + 17)
    const { store, manifest } = await put(data, encryption(), ctx, P, 4096)
    const mid = 500 * P + 10
    store.resetCounters()
    expect(await collect(openRange(manifest, { context: ctx, kms }, mid, mid, store.read))).toEqual(data.subarray(mid, mid + 1))
    expect(store.bytesRead).toBe(encrypted ? P + TAG_SIZE : 1)
    store.resetCounters()
    expect(await collect(openRange(manifest, { context: ctx, kms }, 500 * P - 1, 500 * P, store.read))).toEqual(data.subarray(500 * P - 1, 500 * P + 1))
    expect(store.bytesRead).toBe(encrypted ? 2 * (P + TAG_SIZE) : 2)
    expect(() => openRange(manifest, { context: ctx, kms }, 0, data.length, store.read)).not.toThrow()
    await expectCode(collect(openRange(manifest, { context: ctx, kms }, 0, data.length, store.read)), 'S3SSE_BAD_RANGE')
    await expectCode(collect(openRange(manifest, { context: ctx, kms }, 5, 4, store.read)), 'S3SSE_BAD_RANGE')
  })

  it('uploading a part again gives a different ciphertext; a subset of parts reads back as exactly those parts', async () => {
    const upload = await startUpload({ context: ctx, encryption: encryption(), packageSize: P })
    const data = [randomData(300), randomData(200), randomData(100)]
    const stored: Buffer[] = []
    const records: PartRecord[] = []
    for (let i = 0; i < 3; i++) {
      const out = await sealPart(upload, { kms }, i + 1, chunks(data[i]))
      stored.push(await collect(out.stream))
      records.push(out.result())
    }
    const again = await sealPart(upload, { kms }, 2, chunks(data[1]))
    const stored2 = await collect(again.stream)
    const record2 = again.result()
    if (encrypted) {
      expect(stored2.equals(stored[1])).toBe(false)
      expect(record2.salt).not.toBe(records[1].salt)
    }
    // JSON round trip: the server keeps records and state as JSON.
    const json = <T>(v: T): T => JSON.parse(JSON.stringify(v))
    const m = await completeUpload(json(upload), { kms }, json([records[0], records[2]]))
    expect(m.parts.map((p) => p.number)).toEqual([1, 3])
    const store = new MemoryStore()
    store.parts = [stored[0], stored[2]]
    expect(await collect(openObject(m, { context: ctx, kms }, store.read))).toEqual(Buffer.concat([data[0], data[2]]))
    const m2 = await completeUpload(upload, { kms }, [records[0], record2])
    store.parts = [stored[0], stored2]
    expect(await collect(openObject(m2, { context: ctx, kms }, store.read))).toEqual(Buffer.concat([data[0], data[1]]))
    if (encrypted) {
      // The first upload of part 2 does not open under the second one's record.
      store.parts = [stored[0], stored[1]]
      await expectCode(collect(openObject(m2, { context: ctx, kms }, store.read)), 'S3SSE_AUTH_FAILED')
    }
    await expectCode(completeUpload(upload, { kms }, [records[2], records[0]]), 'S3SSE_BAD_PART_ORDER')
    await expectCode(completeUpload(upload, { kms }, [records[0], records[0]]), 'S3SSE_BAD_PART_ORDER')
    await expectCode(completeUpload(upload, { kms }, []), 'S3SSE_BAD_ARGUMENT')
    const altered = { ...records[0], size: records[0].size + 1, storedSize: encrypted ? sealedStreamSize(records[0].size + 1, P) : records[0].size + 1 }
    if (encrypted) {
      await expectCode(completeUpload(upload, { kms }, [altered]), 'S3SSE_PART_AUTH_FAILED')
    } else {
      // Plaintext records carry no MAC; the read finds the part file shorter than claimed.
      const m3 = await completeUpload(upload, { kms }, [altered])
      store.parts = [stored[0]]
      await expectCode(collect(openObject(m3, { context: ctx, kms }, store.read)), 'S3SSE_TRUNCATED')
    }
    await expectCode(sealPart(upload, { kms }, 0, chunks(data[0])), 'S3SSE_BAD_ARGUMENT')
    await expectCode(sealPart(upload, { kms }, 10001, chunks(data[0])), 'S3SSE_BAD_ARGUMENT')
  })

  it('copyPartRange copies just the packages of a range, from an encrypted or a plain source', async () => {
    const src = await putParts([3 * P + 5, P, 2 * P - 7], encryption())
    for (const destEncrypted of [true, false]) {
      const upload = await startUpload({ context: { bucket: 'dest', key: 'copy' }, encryption: destEncrypted ? enc() : null, packageSize: 32 })
      const ranges = [[0, src.plain.length - 1], [3 * P + 3, 3 * P + 8], [10, 10], [4 * P + 5, 4 * P + 5 + 2 * P - 8]]
      const records: PartRecord[] = []
      const dest = new MemoryStore()
      for (let i = 0; i < ranges.length; i++) {
        const [s, e] = ranges[i]
        src.store.resetCounters()
        const out = await copyPartRange(src.manifest, { context: ctx, kms }, { start: s, end: e }, src.store.read, upload, { kms }, i + 1)
        dest.parts.push(await collect(out.stream))
        records.push(out.result())
        expect(src.store.bytesRead).toBe(expectedRead(src.manifest, s, e, encrypted))
      }
      const m = await completeUpload(upload, { kms }, records)
      const want = Buffer.concat(ranges.map(([s, e]) => src.plain.subarray(s, e + 1)))
      expect(await collect(openObject(m, { context: { bucket: 'dest', key: 'copy' }, kms }, dest.read))).toEqual(want)
    }
    await expectCode(copyPartRange(src.manifest, { context: ctx, kms }, { start: 0, end: src.plain.length }, src.store.read,
      await startUpload({ context: ctx, encryption: null }), { kms }, 1), 'S3SSE_BAD_RANGE')
  })
})

/** Stored bytes a range must read: whole packages touching it (plaintext: just the bytes). */
function expectedRead(m: Manifest, s: number, e: number, encrypted: boolean): number {
  if (!encrypted) return e - s + 1
  let offset = 0
  let total = 0
  for (const part of m.parts) {
    const a = Math.max(s, offset)
    const b = Math.min(e, offset + part.size - 1)
    if (a <= b) {
      const first = Math.floor((a - offset) / m.packageSize)
      const last = Math.floor((b - offset) / m.packageSize)
      for (let k = first; k <= last; k++) total += Math.min(m.packageSize, part.size - k * m.packageSize) + TAG_SIZE
    }
    offset += part.size
  }
  return total
}

describe('encrypted objects: keys and the KMS', () => {
  it('an empty object and an upload completed with an empty part open and authenticate', async () => {
    const { store, manifest } = await put(new Uint8Array(0), enc())
    expect(store.parts[0].length).toBe(TAG_SIZE)
    expect(await collect(openObject(manifest, { context: ctx, kms }, store.read))).toEqual(Buffer.alloc(0))
    store.parts[0] = Buffer.alloc(0)
    await expectCode(collect(openObject(manifest, { context: ctx, kms }, store.read)), 'S3SSE_TRUNCATED')
    expect(resolveRange(0, { start: 0 })).toBeNull()
  })

  it('a KMS that fails mid-upload is S3SSE_KMS_UNAVAILABLE, and nothing is half-written', async () => {
    const flaky = new FlakyKms(kms)
    const upload = await startUpload({ context: ctx, encryption: enc(flaky.kms), packageSize: P })
    const store = new MemoryStore()
    const records: PartRecord[] = []
    const data = [randomData(500), randomData(300)]
    const p1 = await sealPart(upload, { kms: flaky.kms }, 1, chunks(data[0]))
    store.parts.push(await collect(p1.stream))
    records.push(p1.result())

    flaky.down = true
    let pulled = 0
    const source = (async function* () { pulled++; yield data[1] })()
    await expectCode(sealPart(upload, { kms: flaky.kms }, 2, source), 'S3SSE_KMS_UNAVAILABLE')
    expect(pulled).toBe(0) // the source was never read: no stream, no part file
    await expectCode(completeUpload(upload, { kms: flaky.kms }, records), 'S3SSE_KMS_UNAVAILABLE')
    await expectCode(sealObject(chunks(data[0]), { context: ctx, encryption: enc(flaky.kms) }), 'S3SSE_KMS_UNAVAILABLE')
    await expectCode(startUpload({ context: ctx, encryption: enc(flaky.kms) }), 'S3SSE_KMS_UNAVAILABLE')

    flaky.down = false
    const p2 = await sealPart(upload, { kms: flaky.kms }, 2, chunks(data[1]))
    store.parts.push(await collect(p2.stream))
    records.push(p2.result())
    const m = await completeUpload(upload, { kms: flaky.kms }, records)

    flaky.down = true
    store.resetCounters()
    const e = await expectCode(collect(openObject(m, { context: ctx, kms: flaky.kms }, store.read)), 'S3SSE_KMS_UNAVAILABLE')
    expect((e.cause as Error).message).toContain('ECONNREFUSED')
    expect(store.reads).toEqual([]) // nothing read before the key was there
    flaky.down = false
    expect(await collect(openObject(m, { context: ctx, kms: flaky.kms }, store.read))).toEqual(Buffer.concat(data))
  })

  it('rotation: objects written under the old version keep reading; rewrap moves them to the new one', async () => {
    const { keyId: rid } = await kms.createKey({ alias: 'rotating' })
    const old = await put(randomData(1000), enc(kms, { keyId: 'rotating' }))
    expect(old.manifest.encryption).toMatchObject({ keyId: rid, keyVersion: 1 })
    await kms.rotateKey('rotating')
    const fresh = await put(randomData(1000), enc(kms, { keyId: 'rotating' }))
    expect(fresh.manifest.encryption!.keyVersion).toBe(2)
    const oldPlain = await collect(openObject(old.manifest, { context: ctx, kms }, old.store.read))
    expect(oldPlain.length).toBe(1000)
    const moved = await rewrap(old.manifest, { kms, from: ctx, to: ctx })
    expect(moved.encryption).toMatchObject({ keyId: rid, keyVersion: 2 })
    expect(moved.parts).toEqual(old.manifest.parts)
    expect(await collect(openObject(moved, { context: ctx, kms }, old.store.read))).toEqual(oldPlain)
  })

  it('rewrap for a copy: reads under the new name (and key), not the old one; data untouched', async () => {
    const src = await putParts([300, 200], enc(kms, { extraContext: { tenant: 't1' } }))
    const to = { bucket: 'other-bucket', key: 'copied' }
    const other = await kms.createKey()
    const m = await rewrap(src.manifest, { kms, from: ctx, to, keyId: other.keyId })
    expect(m.encryption).toMatchObject({ keyId: other.keyId, context: { bucket: 'other-bucket', key: 'copied', tenant: 't1' } })
    expect(await collect(openObject(decodeManifest(encodeManifest(m)), { context: to, kms }, src.store.read))).toEqual(src.plain)
    await expectCode(collect(openObject(m, { context: ctx, kms }, src.store.read)), 'S3SSE_KMS_CONTEXT_MISMATCH')
    await expectCode(rewrap(src.manifest, { kms, from: to, to: ctx }), 'S3SSE_KMS_CONTEXT_MISMATCH')
    const plain = await putParts([10], null)
    const plainCopy = await rewrap(plain.manifest, { kms, from: ctx, to })
    expect(plainCopy.encryption).toBeUndefined()
    expect(await collect(openObject(plainCopy, { context: to, kms }, plain.store.read))).toEqual(plain.plain)
  })

  it('bucket keys: data keys derived per object, bound to the object; rewrap makes an ordinary object', async () => {
    const counting = countingKms(kms)
    const cached = cachedKms(counting)
    const a = await put(randomData(700), enc(cached, { bucketKey: true }))
    const b = await put(randomData(700), enc(cached, { bucketKey: true }), { bucket: ctx.bucket, key: 'another' })
    expect(counting.counts.generateDataKey).toBe(1)
    expect(a.manifest.encryption).toMatchObject({ bucketKey: true, context: { bucket: ctx.bucket, key: ctx.key } })
    expect(Buffer.from(a.manifest.encryption!.wrappedKey)).toEqual(Buffer.from(b.manifest.encryption!.wrappedKey))
    expect(Buffer.from(a.manifest.encryption!.keyNonce!)).not.toEqual(Buffer.from(b.manifest.encryption!.keyNonce!))
    // Same bucket key, different data keys: b's stored bytes do not open under a's manifest.
    const swapped = { ...a.manifest, size: 700, parts: [{ ...a.manifest.parts[0] }] }
    await expectCode(collect(openObject(swapped, { context: ctx, kms: cached }, b.store.read)), 'S3SSE_AUTH_FAILED')
    // Reads with a plain (uncached) KMS work: nothing needs the cache.
    const aPlain = await collect(openObject(a.manifest, { context: ctx, kms }, a.store.read))
    expect(aPlain.length).toBe(700)
    // b's manifest presented as a's object: context differs.
    await expectCode(collect(openObject(b.manifest, { context: ctx, kms }, b.store.read)), 'S3SSE_KMS_CONTEXT_MISMATCH')
    const moved = await rewrap(a.manifest, { kms, from: ctx, to: { bucket: 'elsewhere', key: 'x' } })
    expect(moved.encryption!.bucketKey).toBeUndefined()
    expect(moved.encryption!.keyNonce).toBeUndefined()
    expect(await collect(openObject(moved, { context: { bucket: 'elsewhere', key: 'x' }, kms }, a.store.read))).toEqual(aPlain)
  })

  it('creates the service key by alias on first use when asked, and only then', async () => {
    // Not asked to create it: the key the writer named does not exist (S3: the client's mistake).
    await expectCode(sealObject(chunks(randomData(10)), { context: ctx, encryption: enc(kms, { keyId: 'bucket/new-one' }) }), 'S3SSE_KMS_NAMED_KEY_NOT_FOUND')
    const counting = countingKms(kms)
    const first = await put(randomData(10), enc(counting, { keyId: 'bucket/new-one', createKey: true }))
    expect(counting.counts.ensureKey).toBe(1)
    const info = await kms.describeKey('alias/bucket/new-one')
    expect(first.manifest.encryption!.keyId).toBe(info.keyId)
    counting.reset()
    await put(randomData(10), enc(counting, { keyId: 'bucket/new-one', createKey: true }))
    expect(counting.counts).toMatchObject({ ensureKey: 0, generateDataKey: 1 })
  })

  it('extra context (aws mode) is bound and kept; it may not override bucket or key', async () => {
    const { store, manifest } = await put(randomData(100), enc(kms, { extraContext: { department: 'x', 'aws:s3:arn': 'arn:aws:s3:::bucket-a/dir/object.bin' } }))
    expect(manifest.encryption!.context).toEqual({ bucket: ctx.bucket, key: ctx.key, department: 'x', 'aws:s3:arn': 'arn:aws:s3:::bucket-a/dir/object.bin' })
    expect((await collect(openObject(manifest, { context: ctx, kms }, store.read))).length).toBe(100)
    await expectCode(sealObject(chunks(randomData(1)), { context: ctx, encryption: enc(kms, { extraContext: { key: 'evil' } }) }), 'S3SSE_BAD_ARGUMENT')
    await expectCode(startUpload({ context: ctx, encryption: enc(kms, { extraContext: { bucket: 'evil' } }) }), 'S3SSE_BAD_ARGUMENT')
  })

  it('an encrypted object needs a KMS to be read; result() before the end is an error', async () => {
    const { store, manifest } = await put(randomData(10), enc())
    await expectCode(collect(openObject(manifest, { context: ctx }, store.read)), 'S3SSE_BAD_ARGUMENT')
    const out = await sealObject(chunks(randomData(10)), { context: ctx, encryption: enc() })
    expect(() => out.result()).toThrow(/consumed/)
    await collect(out.stream)
    expect(out.result().size).toBe(10)
    await verifyManifest(manifest, { context: ctx, kms })
    await expectCode(verifyManifest(manifest, { context: { ...ctx, key: 'moved' }, kms }), 'S3SSE_KMS_CONTEXT_MISMATCH')
  })

  it('a malformed upload state is S3SSE_BAD_UPLOAD', async () => {
    const upload = await startUpload({ context: ctx, encryption: enc(), packageSize: P })
    const broken: UploadState[] = [
      { ...upload, version: 2 as 1 },
      { ...upload, packageSize: 0 },
      { ...upload, encryption: { ...upload.encryption!, wrappedKey: '***' } },
      { ...upload, encryption: { ...upload.encryption!, bucketKey: true } },
      { ...upload, context: { bucket: '', key: 'k' } },
    ]
    for (const u of broken) await expectCode(sealPart(u, { kms }, 1, chunks(randomData(1))), 'S3SSE_BAD_UPLOAD')
    // An upload state moved to another object name: the wrapped key refuses.
    await expectCode(sealPart({ ...upload, context: { ...ctx, key: 'elsewhere' } }, { kms }, 1, chunks(randomData(1))), 'S3SSE_KMS_CONTEXT_MISMATCH')
    const other = await startUpload({ context: ctx, encryption: enc(), packageSize: P })
    const part = await sealPart(other, { kms }, 1, chunks(randomData(5)))
    await collect(part.stream)
    await expectCode(completeUpload(upload, { kms }, [part.result()]), 'S3SSE_PART_AUTH_FAILED')
    await expectCode(completeUpload(upload, { kms }, [{ number: 1, size: 5, storedSize: sealedStreamSize(5, P) }]), 'S3SSE_PART_AUTH_FAILED')
  })

  it('restart: reopening the keyring from disk reads everything back, uploads continue', async () => {
    const { dir: d2, cleanup: c2 } = tempDir('s3sse-restart-')
    try {
      let k = await openEmbeddedKms(d2)
      await k.createKey({ alias: 'svc' })
      const single = await sealObject(chunks(randomData(1234)), { context: ctx, encryption: { algorithm: 'aws:kms', kms: k, keyId: 'svc' }, packageSize: P })
      const singleStored = await collect(single.stream)
      const upload = await startUpload({ context: ctx, encryption: { algorithm: 'AES256', kms: k, keyId: 'svc', bucketKey: true }, packageSize: P })
      const p1 = await sealPart(upload, { kms: k }, 1, chunks(randomData(100)))
      const p1Stored = await collect(p1.stream)
      const manifestBytes = encodeManifest(single.result())
      const uploadJson = JSON.stringify(upload)
      const recordJson = JSON.stringify(p1.result())
      await k.close()

      k = await openEmbeddedKms(d2)
      const store = new MemoryStore()
      store.parts = [singleStored]
      expect((await collect(openObject(decodeManifest(manifestBytes), { context: ctx, kms: k }, store.read))).length).toBe(1234)
      const p2 = await sealPart(JSON.parse(uploadJson), { kms: k }, 2, chunks(randomData(50)))
      const p2Stored = await collect(p2.stream)
      const m = await completeUpload(JSON.parse(uploadJson), { kms: k }, [JSON.parse(recordJson), p2.result()])
      expect(m.encryption).toMatchObject({ algorithm: 'AES256', bucketKey: true })
      store.parts = [p1Stored, p2Stored]
      expect((await collect(openObject(m, { context: ctx, kms: k }, store.read))).length).toBe(150)
      await k.close()
    } finally {
      c2()
    }
  })
})

describe('stored data that was altered', () => {
  it('fails with the stream error and releases no plaintext of the bad package', async () => {
    const data = randomData(10 * P)
    const { store, manifest } = await put(data, enc(), ctx, P, 4096)
    const good = store.parts[0]
    const sealed = P + TAG_SIZE

    const flipped = Buffer.from(good)
    flipped[3 * sealed + 5] ^= 1
    store.parts[0] = flipped
    const released: Buffer[] = []
    const e = await expectCode((async () => { for await (const c of openObject(manifest, { context: ctx, kms }, store.read)) released.push(c) })(), 'S3SSE_AUTH_FAILED')
    expect(e.packageNumber).toBe(3)
    expect(Buffer.concat(released).length).toBeLessThanOrEqual(3 * P)
    expect(data.subarray(0, Buffer.concat(released).length)).toEqual(Buffer.concat(released))

    store.parts[0] = good.subarray(0, 7 * sealed)
    await expectCode(collect(openObject(manifest, { context: ctx, kms }, store.read)), 'S3SSE_TRUNCATED')
    // A reader that hands out more than it was asked for.
    store.parts[0] = good
    const generous = (i: number, start: number, end: number) => (async function* () {
      yield* store.read(i, start, end)
      yield Buffer.alloc(5)
    })()
    await expectCode(collect(openObject(manifest, { context: ctx, kms }, generous)), 'S3SSE_TRAILING_DATA')
    await expectCode(collect(openRange(manifest, { context: ctx, kms }, 2, 2, generous)), 'S3SSE_TRAILING_DATA')
    // A range reading from a part that is shorter than the manifest says.
    store.parts[0] = good.subarray(0, 5 * sealed + 3)
    await expectCode(collect(openRange(manifest, { context: ctx, kms }, 5 * P, 5 * P + 1, store.read)), 'S3SSE_TRUNCATED')
  })

  it('swapped or reordered part files fail authentication', async () => {
    const { store, manifest } = await putParts([200, 200, 200], enc())
    store.parts = [store.parts[1], store.parts[0], store.parts[2]]
    await expectCode(collect(openObject(manifest, { context: ctx, kms }, store.read)), 'S3SSE_AUTH_FAILED')
    await expectCode(collect(openRange(manifest, { context: ctx, kms }, 0, 0, store.read)), 'S3SSE_AUTH_FAILED')
  })
})

describe('resolveRange', () => {
  it('resolves S3 byte ranges', () => {
    expect(resolveRange(100, { start: 0, end: 9 })).toEqual({ start: 0, end: 9 })
    expect(resolveRange(100, { start: 90, end: 200 })).toEqual({ start: 90, end: 99 })
    expect(resolveRange(100, { start: 50 })).toEqual({ start: 50, end: 99 })
    expect(resolveRange(100, { start: 99 })).toEqual({ start: 99, end: 99 })
    expect(resolveRange(100, { start: 100 })).toBeNull()
    expect(resolveRange(100, { start: 100, end: 120 })).toBeNull()
    expect(resolveRange(100, { suffix: 10 })).toEqual({ start: 90, end: 99 })
    expect(resolveRange(100, { suffix: 100 })).toEqual({ start: 0, end: 99 })
    expect(resolveRange(100, { suffix: 1000 })).toEqual({ start: 0, end: 99 })
    expect(resolveRange(100, { suffix: 0 })).toBeNull()
    expect(resolveRange(0, { suffix: 5 })).toBeNull()
    expect(resolveRange(0, { start: 0 })).toBeNull()
    expect(() => resolveRange(100, { start: 10, end: 5 })).toThrow(expect.objectContaining({ code: 'S3SSE_BAD_RANGE' }))
    expect(() => resolveRange(100, { start: -1 })).toThrow(expect.objectContaining({ code: 'S3SSE_BAD_RANGE' }))
    expect(() => resolveRange(100, {})).toThrow(expect.objectContaining({ code: 'S3SSE_BAD_RANGE' }))
    expect(() => resolveRange(100, { start: 1, suffix: 1 })).toThrow(expect.objectContaining({ code: 'S3SSE_BAD_RANGE' }))
  })
})
