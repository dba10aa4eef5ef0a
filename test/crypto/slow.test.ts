import { createHash, randomBytes } from 'node:crypto'
import { createReadStream, createWriteStream, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { describe, expect, it } from 'vitest'
import { deriveStreamKey, loadNativeBackend, newSalt, openStream, packageSpan, sealedStreamSize, sealStream } from '../../src/index.js'
import { testNativeEngines } from '../helpers/backends.js'

// Many GiB, offsets past 2^32 (STYLE.md 8). Runs only with S3SSE_SLOW=1.
const SLOW = process.env.S3SSE_SLOW === '1'
const SIZE = 4.5 * 2 ** 30 + 12345
const BLOCK = 1024 * 1024

/** Deterministic plaintext: a random block stamped with its index, so no two blocks match. */
function* plaintext(block: Buffer): Generator<Buffer> {
  for (let off = 0, i = 0; off < SIZE; off += BLOCK, i++) {
    const b = Buffer.from(block.subarray(0, Math.min(BLOCK, SIZE - off)))
    if (b.length >= 8) b.writeDoubleBE(i, 0)
    yield b
  }
}

function plainAt(block: Buffer, offset: number, length: number): Buffer {
  const out = Buffer.alloc(length)
  for (let k = 0; k < length; k++) {
    const o = offset + k
    const i = Math.floor(o / BLOCK)
    const b = Buffer.from(block)
    b.writeDoubleBE(i, 0)
    out[k] = b[o - i * BLOCK]
  }
  return out
}

describe.runIf(SLOW).each(testNativeEngines())('a 4.5 GiB stream on the native %s engine (S3SSE_SLOW=1)', (engine) => {
  it('seals to disk, opens back whole, and opens ranges past 2^32', { timeout: 30 * 60_000 }, async () => {
    const backend = loadNativeBackend(engine)
    const dir = mkdtempSync(join(tmpdir(), 's3sse-slow-'))
    try {
      const file = join(dir, 'sealed')
      const block = randomBytes(BLOCK)
      const sk = deriveStreamKey(randomBytes(32), newSalt(), 1)
      const h1 = createHash('sha256')
      async function* tee() {
        for (const b of plaintext(block)) {
          h1.update(b)
          yield b
        }
      }
      await pipeline(Readable.from(sealStream(tee(), sk, { backend })), createWriteStream(file))
      const h2 = createHash('sha256')
      let n = 0
      for await (const c of openStream(createReadStream(file, { highWaterMark: 4 * BLOCK }), sk, { backend })) {
        h2.update(c)
        n += c.length
      }
      expect(n).toBe(SIZE)
      expect(h2.digest('hex')).toBe(h1.digest('hex'))

      for (const [start, end] of [[2 ** 32 - 3, 2 ** 32 + 2], [2 ** 32 + 65536 * 3 + 5, 2 ** 32 + 65536 * 5], [SIZE - 10, SIZE - 1]]) {
        const s = packageSpan(SIZE, start, end)
        const parts: Buffer[] = []
        const src = createReadStream(file, { start: s.sealedStart, end: s.sealedEnd - 1 })
        for await (const c of openStream(src, sk, { backend, firstPackage: s.firstPackage, final: s.final })) parts.push(c)
        const got = Buffer.concat(parts).subarray(s.skip, s.skip + s.length)
        expect(got.equals(plainAt(block, start, end - start + 1)), `${start}-${end}`).toBe(true)
      }
      expect(sealedStreamSize(SIZE)).toBeGreaterThan(2 ** 32)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
