import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { Readable, Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { describe, expect, it } from 'vitest'
import {
  createOpenTransform,
  createSealTransform,
  deriveStreamKey,
  newSalt,
  openStream,
  packageSpan,
  sealedStreamSize,
  sealStream,
  type StreamOptions,
} from '../../src/index.js'
import { referenceSeal, testBackends } from '../helpers/backends.js'

interface Vector { name: string; dataKey: string; salt: string; partNumber: number; packageSize: number; plaintext: string; streamKey: string; noncePrefix: string; ciphertext: string }
const vectors = JSON.parse(readFileSync(new URL('../vectors/stream-v1.json', import.meta.url), 'utf8')) as Vector[]
const hex = (s: string) => Buffer.from(s, 'hex')

async function collect(it: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = []
  for await (const c of it) parts.push(Buffer.from(c))
  return Buffer.concat(parts)
}

/** Splits `data` into chunks of the given step sizes, cycling. */
function* chunks(data: Buffer, steps: number[]): Generator<Buffer> {
  let pos = 0
  let i = 0
  while (pos < data.length) {
    const n = steps[i++ % steps.length]
    yield data.subarray(pos, pos + n)
    pos += n
  }
}

async function viaTransform(t: NodeJS.ReadWriteStream, input: Iterable<Buffer>): Promise<Buffer> {
  const out: Buffer[] = []
  await pipeline(Readable.from(input), t, new Writable({
    write(chunk: Buffer, _e, cb) {
      out.push(chunk)
      cb()
    },
  }))
  return Buffer.concat(out)
}

describe('stream-v1 vectors', () => {
  it('has the cases the format needs', () => {
    const sizes = vectors.map((v) => hex(v.plaintext).length)
    expect(sizes).toContain(0)
    expect(sizes).toContain(1)
    expect(vectors.some((v) => hex(v.plaintext).length === v.packageSize)).toBe(true)
    expect(vectors.some((v) => hex(v.plaintext).length === v.packageSize + 1)).toBe(true)
    expect(vectors.some((v) => hex(v.plaintext).length > 3 * v.packageSize)).toBe(true)
  })

  it.each(vectors.map((v) => [v.name, v] as const))('key schedule: %s', (_n, v) => {
    const sk = deriveStreamKey(hex(v.dataKey), hex(v.salt), v.partNumber)
    expect(Buffer.from(sk.key).toString('hex')).toBe(v.streamKey)
    expect(Buffer.from(sk.noncePrefix).toString('hex')).toBe(v.noncePrefix)
    // The package layout, written out independently of src/.
    expect(referenceSeal(sk.key, sk.noncePrefix, 0, true, hex(v.plaintext), v.packageSize).toString('hex')).toBe(v.ciphertext)
  })

  describe.each(testBackends())('on %s', (_name, backend) => {
    it.each(vectors.map((v) => [v.name, v] as const))('%s', async (_n, v) => {
      const sk = deriveStreamKey(hex(v.dataKey), hex(v.salt), v.partNumber)
      const opts = { backend, packageSize: v.packageSize }
      expect((await collect(sealStream([hex(v.plaintext)], sk, opts))).toString('hex')).toBe(v.ciphertext)
      expect((await collect(openStream([hex(v.ciphertext)], sk, opts))).toString('hex')).toBe(v.plaintext)
      expect(hex(v.ciphertext).length).toBe(sealedStreamSize(hex(v.plaintext).length, v.packageSize))
    })
  })
})

describe.each(testBackends())('streams on %s', (name, backend) => {
  const P = 1000
  const sizes = [0, 1, P - 1, P, P + 1, 2 * P, 2 * P + 1, 37 * P + 5]
  const stepSets = [[1, 999, 7], [333], [P + 7, 3], [64 * 1024]]
  const optionSets: StreamOptions[] = [{ batchPackages: 1 }, { batchPackages: 3 }, {}]

  it('streaming with write steps that do not divide P equals one-shot sealing, both forms', async () => {
    const sk = deriveStreamKey(randomBytes(32), newSalt(), 4)
    for (const n of sizes) {
      const pt = randomBytes(n)
      const oneShot = referenceSeal(sk.key, sk.noncePrefix, 0, true, pt, P)
      for (const steps of stepSets) {
        for (const o of optionSets) {
          const opts = { ...o, backend, packageSize: P }
          const where = `${name} n=${n} steps=${steps} batch=${o.batchPackages}`
          expect((await collect(sealStream(chunks(pt, steps), sk, opts))).equals(oneShot), where).toBe(true)
          expect((await collect(openStream(chunks(oneShot, steps), sk, opts))).equals(pt), where).toBe(true)
        }
      }
      const t1 = await viaTransform(createSealTransform(sk, { backend, packageSize: P, batchPackages: 2 }), chunks(pt, [777]))
      expect(t1.equals(oneShot), `transform seal n=${n}`).toBe(true)
      const t2 = await viaTransform(createOpenTransform(sk, { backend, packageSize: P, batchPackages: 2 }), chunks(oneShot, [1234]))
      expect(t2.equals(pt), `transform open n=${n}`).toBe(true)
    }
  })

  it('input in chunks of exactly one batch (aligned reads) seals and opens like one-shot', async () => {
    const sk = deriveStreamKey(randomBytes(32), newSalt(), 4)
    for (const n of [3 * P, 6 * P, 6 * P + 1, 7 * P - 1]) {
      const pt = randomBytes(n)
      const oneShot = referenceSeal(sk.key, sk.noncePrefix, 0, true, pt, P)
      const opts = { backend, packageSize: P, batchPackages: 3 }
      expect((await collect(sealStream(chunks(pt, [3 * P]), sk, opts))).equals(oneShot), `seal n=${n}`).toBe(true)
      expect((await collect(openStream(chunks(oneShot, [3 * (P + 16)]), sk, opts))).equals(pt), `open n=${n}`).toBe(true)
      // Twice a batch per chunk, and a batch and a bit.
      expect((await collect(openStream(chunks(oneShot, [6 * (P + 16)]), sk, opts))).equals(pt), `open 2x n=${n}`).toBe(true)
      expect((await collect(openStream(chunks(oneShot, [3 * (P + 16) + 1]), sk, opts))).equals(pt), `open +1 n=${n}`).toBe(true)
    }
  })

  it('opens any run of packages of a stream with firstPackage and final (what a range read does)', async () => {
    const sk = deriveStreamKey(randomBytes(32), newSalt(), 1)
    const n = 9 * P + 123
    const pt = randomBytes(n)
    const sealed = referenceSeal(sk.key, sk.noncePrefix, 0, true, pt, P)
    for (const [start, end] of [[0, 0], [999, 1000], [1500, 4321], [n - 1, n - 1], [0, n - 1], [8 * P, n - 1]]) {
      const s = packageSpan(n, start, end, P)
      const plain = await collect(openStream([sealed.subarray(s.sealedStart, s.sealedEnd)], sk,
        { backend, packageSize: P, firstPackage: s.firstPackage, final: s.final }))
      expect(plain.subarray(s.skip, s.skip + s.length).equals(pt.subarray(start, end + 1)), `${start}-${end}`).toBe(true)
    }
  })

  it('a run that stops before the end does not verify as final, and the final package does not verify as non-final', async () => {
    const sk = deriveStreamKey(randomBytes(32), newSalt(), 1)
    const pt = randomBytes(3 * P)
    const sealed = referenceSeal(sk.key, sk.noncePrefix, 0, true, pt, P)
    const firstTwo = sealed.subarray(0, 2 * (P + 16))
    await expect(collect(openStream([firstTwo], sk, { backend, packageSize: P, final: true }))).rejects.toMatchObject({ code: 'S3SSE_TRUNCATED', packageNumber: 1 })
    await expect(collect(openStream([sealed], sk, { backend, packageSize: P, final: false }))).rejects.toMatchObject({ code: 'S3SSE_TRAILING_DATA', packageNumber: 2 })
  })

  it('a different part number or salt gives a different stream (fresh salt per stream)', async () => {
    const dataKey = randomBytes(32)
    const salt = newSalt()
    const pt = randomBytes(100)
    const a = await collect(sealStream([pt], deriveStreamKey(dataKey, salt, 1), { backend }))
    const b = await collect(sealStream([pt], deriveStreamKey(dataKey, salt, 2), { backend }))
    const c = await collect(sealStream([pt], deriveStreamKey(dataKey, newSalt(), 1), { backend }))
    expect(a.equals(b)).toBe(false)
    expect(a.equals(c)).toBe(false)
  })
})

describe('stream memory', () => {
  it('keeps at most a couple of batches in flight: a slow consumer sees output as it reads', async () => {
    const sk = deriveStreamKey(randomBytes(32), newSalt(), 1)
    let produced = 0
    async function* source() {
      for (let i = 0; i < 64; i++) {
        produced += 1024 * 1024
        yield Buffer.alloc(1024 * 1024, i)
      }
    }
    const gen = sealStream(source(), sk)
    let consumed = 0
    for await (const chunk of gen) {
      consumed += chunk.length
      // Backpressure: the producer is never more than a few batches ahead of the consumer.
      expect(produced - consumed).toBeLessThanOrEqual(4 * 1024 * 1024)
    }
    expect(consumed).toBe(sealedStreamSize(64 * 1024 * 1024))
  })
})
