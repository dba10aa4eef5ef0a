import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openEmbeddedKms, type EmbeddedKms } from '../../src/keys/embedded.js'
import { CachedKms, KeyLru, cachedKms, countingKms } from '../../src/keys/cache.js'
import { ROOT_KEY_ENV } from '../../src/keys/keyring.js'
import { openObject, sealObject, type EncryptionRequest, type Manifest } from '../../src/object/index.js'
import type { Kms } from '../../src/keys/kms.js'
import { MemoryStore, chunks, collect, expectCode, randomData, tempDir } from '../helpers/objects.js'

let kms: EmbeddedKms
let cleanup: () => void

beforeAll(async () => {
  delete process.env[ROOT_KEY_ENV]
  const t = tempDir('s3sse-cache-')
  cleanup = t.cleanup
  kms = await openEmbeddedKms(t.dir)
  await kms.createKey({ alias: 'svc' })
})
afterAll(async () => {
  await kms.close()
  cleanup()
})

describe('KeyLru', () => {
  it('keeps at most maxEntries, least recently used out first, and zeroes what leaves', () => {
    let now = 0
    const lru = new KeyLru(3, 1000, () => now)
    const keys = Array.from({ length: 5 }, (_, i) => new Uint8Array(32).fill(i + 1))
    lru.set('a', keys[0])
    lru.set('b', keys[1])
    lru.set('c', keys[2])
    expect(lru.get('a')).toEqual(keys[0]) // a is now the most recent
    lru.set('d', keys[3])
    expect(lru.size).toBe(3)
    expect(lru.get('b')).toBeUndefined()
    expect(lru.get('a')).toEqual(keys[0])
    // Callers get copies: wiping one leaves the cache intact.
    lru.get('c')!.fill(0)
    expect(lru.get('c')).toEqual(keys[2])
    now = 1000
    expect(lru.get('a')).toBeUndefined()
    expect(lru.size).toBe(2)
    lru.clear()
    expect(lru.size).toBe(0)
  })
})

describe('CachedKms', () => {
  it('answers repeated decrypts from memory until the TTL, and never across contexts', async () => {
    let now = 0
    const counting = countingKms(kms)
    const cached = new CachedKms(counting, { ttlMs: 60_000, now: () => now })
    const ctx = { bucket: 'b', key: 'k' }
    const dk = await kms.generateDataKey('svc', ctx)
    for (let i = 0; i < 10; i++) expect(Buffer.from(await cached.decrypt(dk.wrapped, ctx))).toEqual(Buffer.from(dk.plaintext))
    expect(counting.counts.decrypt).toBe(1)
    await expectCode(cached.decrypt(dk.wrapped, { bucket: 'b', key: 'other' }), 'S3SSE_KMS_CONTEXT_MISMATCH')
    await expectCode(cached.decrypt(dk.wrapped, { bucket: 'b', key: 'other' }), 'S3SSE_KMS_CONTEXT_MISMATCH')
    expect(counting.counts.decrypt).toBe(3)
    now = 60_001
    await cached.decrypt(dk.wrapped, ctx)
    expect(counting.counts.decrypt).toBe(4)
    expect(cached.stats).toMatchObject({ hits: 9, misses: 4 })
    // What generateDataKey returns is cached too: the next decrypt costs nothing.
    const fresh = await cached.generateDataKey('svc', ctx)
    await cached.decrypt(fresh.wrapped, ctx)
    expect(counting.counts.decrypt).toBe(4)
  })

  it('is bounded: a working set larger than maxEntries goes back to the KMS', async () => {
    const counting = countingKms(kms)
    const cached = cachedKms(counting, { maxEntries: 4 })
    const blobs = await Promise.all(Array.from({ length: 6 }, (_, i) => kms.generateDataKey('svc', { bucket: 'b', key: `k${i}` })))
    for (let round = 0; round < 2; round++) {
      for (const [i, b] of blobs.entries()) await cached.decrypt(b.wrapped, { bucket: 'b', key: `k${i}` })
    }
    expect(counting.counts.decrypt).toBe(12) // LRU over a cyclic working set of 6 > 4 always misses
    counting.reset()
    for (let round = 0; round < 3; round++) {
      for (const [i, b] of blobs.slice(0, 4).entries()) await cached.decrypt(b.wrapped, { bucket: 'b', key: `k${i}` })
    }
    expect(counting.counts.decrypt).toBe(4)
    expect(() => cachedKms(kms, { maxEntries: -1 })).toThrow(expect.objectContaining({ code: 'S3SSE_BAD_ARGUMENT' }))
  })
})

describe('bucket keys', () => {
  const P = 4096
  const body = randomData(1024)

  async function writes(n: number, k: Kms, bucketKey: boolean, bucket = 'photos') {
    const out: Array<{ manifest: Manifest; stored: Buffer; key: string }> = []
    const encryption: EncryptionRequest = { algorithm: 'aws:kms', kms: k, keyId: 'svc', bucketKey }
    for (let i = 0; i < n; i++) {
      const key = `obj/${i}`
      const sealed = await sealObject(chunks(body, 4096), { context: { bucket, key }, encryption, packageSize: P })
      out.push({ stored: await collect(sealed.stream), manifest: sealed.result(), key })
    }
    return out
  }

  async function readAll(objects: Awaited<ReturnType<typeof writes>>, k: Kms, bucket = 'photos') {
    for (const o of objects) {
      const store = new MemoryStore()
      store.parts.push(o.stored)
      expect((await collect(openObject(o.manifest, { context: { bucket, key: o.key }, kms: k }, store.read))).equals(body)).toBe(true)
    }
  }

  it('1000 writes to one bucket cost 1000 KMS calls without bucket keys and 1 with them', async () => {
    const without = countingKms(kms)
    const plain = await writes(1000, cachedKms(without), false)
    expect(without.counts.generateDataKey).toBe(1000)
    expect(without.total).toBe(1000)

    const withBk = countingKms(kms)
    const bkCache = cachedKms(withBk)
    const bk = await writes(1000, bkCache, true)
    expect(withBk.total).toBe(1)
    expect(withBk.counts.generateDataKey).toBe(1)
    expect(bkCache.stats.bucketKeyHits).toBe(999)

    // Reading them all back after a restart (a fresh cache): one decrypt per object, or one in all.
    const readPlain = countingKms(kms)
    await readAll(plain, cachedKms(readPlain))
    expect(readPlain.counts.decrypt).toBe(1000)
    const readBk = countingKms(kms)
    await readAll(bk, cachedKms(readBk))
    expect(readBk.counts.decrypt).toBe(1)
    expect(readBk.total).toBe(1)
  })

  it('a bucket key lives for its TTL or its use count; every generation stays readable', async () => {
    let now = 0
    const counting = countingKms(kms)
    const timed = new CachedKms(counting, { bucketKeyTtlMs: 1000, now: () => now })
    const first = await writes(5, timed, true)
    now = 1500
    const second = await writes(5, timed, true)
    expect(counting.counts.generateDataKey).toBe(2)
    expect(Buffer.from(first[0].manifest.encryption!.wrappedKey)).not.toEqual(Buffer.from(second[0].manifest.encryption!.wrappedKey))
    await readAll([...first, ...second], kms)

    counting.reset()
    const limited = cachedKms(counting, { bucketKeyMaxUses: 10 })
    await writes(100, limited, true)
    expect(counting.counts.generateDataKey).toBe(10)
  })

  it('concurrent first writes share one KMS call; another bucket gets its own key', async () => {
    const counting = countingKms(kms)
    const cached = cachedKms(counting)
    const objects = (await Promise.all(Array.from({ length: 50 }, () => writes(1, cached, true)))).flat()
    expect(counting.counts.generateDataKey).toBe(1)
    await writes(3, cached, true, 'videos')
    expect(counting.counts.generateDataKey).toBe(2)
    expect(new Set(objects.map((o) => Buffer.from(o.manifest.encryption!.keyNonce!).toString('hex'))).size).toBe(50)
  })

  it('without a CachedKms, bucket keys still work (one KMS call per object)', async () => {
    const counting = countingKms(kms)
    const objects = await writes(5, counting, true)
    expect(counting.counts.generateDataKey).toBe(5)
    await readAll(objects, kms)
  })
})
