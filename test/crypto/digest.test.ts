import { createHash, randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { createStreamDigest } from '../../src/crypto/digest.js'

// The request-body digests that run on the libuv pool must give node:crypto's answer for
// every way a body can arrive in chunks, in order, with many at once.

const ALGS = ['md5', 'sha1', 'sha256'] as const

function chunked(data: Buffer, sizes: number[]): Buffer[] {
  const out: Buffer[] = []
  for (let at = 0, i = 0; at < data.length; i++) {
    const n = Math.min(sizes[i % sizes.length], data.length - at)
    out.push(data.subarray(at, at + n))
    at += n
  }
  return out
}

describe.each(ALGS.flatMap((a) => [[a, true], [a, false]] as const))('createStreamDigest(%s), native %s', (alg, native) => {
  it('equals node:crypto for empty, small, large and oddly chunked inputs', async () => {
    for (const [size, sizes] of [[0, [1]], [1, [1]], [15_000, [100]], [70_000, [16 * 1024 - 1, 1, 65536]], [3 * 1024 * 1024 + 7, [1, 65536, 1024 * 1024 + 3, 17]]] as Array<[number, number[]]>) {
      const data = randomBytes(size)
      const d = createStreamDigest(alg, { native })
      for (const c of chunked(data, sizes)) d.update(c)
      expect((await d.digest()).toString('hex'), `${size}`).toBe(createHash(alg).update(data).digest('hex'))
    }
  })

  it('keeps the order of chunks while a pool job runs, and reports its backlog until settled', async () => {
    const data = randomBytes(8 * 1024 * 1024)
    const d = createStreamDigest(alg, { native })
    const chunks = chunked(data, [65536])
    let sawBacklog = false
    for (const [i, c] of chunks.entries()) {
      d.update(c)
      if (d.backlog > 0) sawBacklog = true
      if (i % 40 === 0) await d.settle()
    }
    await d.settle()
    expect(d.backlog).toBe(0)
    expect((await d.digest()).toString('hex')).toBe(createHash(alg).update(data).digest('hex'))
    // Only the pool digest has a backlog: the node:crypto one hashes as it is given.
    expect(sawBacklog).toBe(native)
  })

  it('many digests at once do not mix', async () => {
    const inputs = Array.from({ length: 12 }, (_, i) => randomBytes(300_000 + i * 1000))
    const digests = inputs.map(() => createStreamDigest(alg, { native }))
    for (let off = 0; off < 320_000; off += 50_000) inputs.forEach((x, i) => digests[i].update(x.subarray(off, off + 50_000)))
    const got = await Promise.all(digests.map((d) => d.digest()))
    got.forEach((g, i) => expect(g.toString('hex')).toBe(createHash(alg).update(inputs[i]).digest('hex')))
  })
})

