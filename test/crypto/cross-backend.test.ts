import { randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { MAX_PACKAGE_NUMBER, openedLength, S3sseError, sealedLength } from '../../src/index.js'
import { referenceSeal, testBackends } from '../helpers/backends.js'

// Lengths around every package boundary (STYLE.md 9), at a small and the default size.
function lengths(p: number): number[] {
  return [0, 1, p - 1, p, p + 1, 2 * p, 2 * p + 1, 7 * p, 7 * p + 3]
}
const FIRSTS = [0, 1, MAX_PACKAGE_NUMBER - 20]

describe.each(testBackends())('backend %s against the reference', (name, backend) => {
  for (const packageSize of [16, 1000, 65536]) {
    for (const final of [true, false]) {
      it(`P=${packageSize} final=${final}: seal = reference, open round-trips, async = sync`, async () => {
        for (const n of lengths(packageSize)) {
          for (const first of FIRSTS) {
            const key = randomBytes(32)
            const prefix = randomBytes(7)
            const pt = randomBytes(n)
            const expected = referenceSeal(key, prefix, first, final, pt, packageSize)
            const out = Buffer.alloc(sealedLength(n, final, packageSize))
            const where = `${name} n=${n} first=${first}`
            expect(backend.seal(key, prefix, first, final, pt, out, packageSize), where).toBe(expected.length)
            expect(out.equals(expected), where).toBe(true)

            const back = Buffer.alloc(openedLength(expected.length, final, packageSize))
            expect(backend.open(key, prefix, first, final, expected, back, packageSize), where).toBe(n)
            expect(back.equals(pt), where).toBe(true)

            const outA = Buffer.alloc(expected.length)
            expect(await backend.sealAsync(key, prefix, first, final, pt, outA, packageSize), where).toBe(expected.length)
            expect(outA.equals(expected), where).toBe(true)
            const backA = Buffer.alloc(n)
            expect(await backend.openAsync(key, prefix, first, final, expected, backA, packageSize), where).toBe(n)
            expect(backA.equals(pt), where).toBe(true)
          }
        }
      })
    }
  }

  it('async calls split across threads give the same bytes as one call (4 MiB, 1 and 2 threads)', async () => {
    const key = randomBytes(32)
    const prefix = randomBytes(7)
    const pt = randomBytes(4 * 1024 * 1024 + 12345)
    const expected = referenceSeal(key, prefix, 5, true, pt, 65536)
    for (const threads of [1, 2, 4]) {
      const out = Buffer.alloc(expected.length)
      await backend.sealAsync(key, prefix, 5, true, pt, out, 65536, { threads })
      expect(out.equals(expected), `threads=${threads}`).toBe(true)
      const back = Buffer.alloc(pt.length)
      await backend.openAsync(key, prefix, 5, true, expected, back, 65536, { threads })
      expect(back.equals(pt), `threads=${threads}`).toBe(true)
    }
  })

  it('writes only the bytes it reports (out may be larger)', () => {
    const key = randomBytes(32)
    const prefix = randomBytes(7)
    const pt = randomBytes(100)
    const out = Buffer.alloc(200, 0xee)
    const n = backend.seal(key, prefix, 0, true, pt, out, 64)
    expect(n).toBe(132)
    expect(out.subarray(n).every((b) => b === 0xee)).toBe(true)
  })

  it('does not accept a call whose last package number passes 2^32-1 (no wrap-around)', async () => {
    const key = randomBytes(32)
    const prefix = randomBytes(7)
    const pt = randomBytes(33)
    const out = Buffer.alloc(sealedLength(33, true, 16, ))
    // Three packages starting at 2^32-2 would need package 2^32.
    for (const call of [() => backend.seal(key, prefix, MAX_PACKAGE_NUMBER - 1, true, pt, out, 16)]) {
      expect(call).toThrowError(expect.objectContaining({ code: 'S3SSE_PACKAGE_OVERFLOW' }))
    }
    await expect(backend.sealAsync(key, prefix, MAX_PACKAGE_NUMBER - 1, true, pt, out, 16)).rejects.toMatchObject({ code: 'S3SSE_PACKAGE_OVERFLOW' })
    // Ending exactly at 2^32-1 is fine.
    expect(backend.seal(key, prefix, MAX_PACKAGE_NUMBER - 2, true, pt, out, 16)).toBe(33 + 48)
  })

  const bad: Array<[string, string, () => unknown]> = []
  const key = Buffer.alloc(32)
  const prefix = Buffer.alloc(7)
  const pt = Buffer.alloc(10)
  const out = Buffer.alloc(26)
  bad.push(['short key', 'S3SSE_BAD_KEY_SIZE', () => backend.seal(key.subarray(1), prefix, 0, true, pt, out)])
  bad.push(['long key', 'S3SSE_BAD_KEY_SIZE', () => backend.seal(Buffer.alloc(33), prefix, 0, true, pt, out)])
  bad.push(['short prefix', 'S3SSE_BAD_NONCE_SIZE', () => backend.seal(key, Buffer.alloc(6), 0, true, pt, out)])
  bad.push(['12-byte prefix', 'S3SSE_BAD_NONCE_SIZE', () => backend.open(key, Buffer.alloc(12), 0, true, out, pt)])
  bad.push(['negative package', 'S3SSE_BAD_PACKAGE_NUMBER', () => backend.seal(key, prefix, -1, true, pt, out)])
  bad.push(['fractional package', 'S3SSE_BAD_PACKAGE_NUMBER', () => backend.seal(key, prefix, 1.5, true, pt, out)])
  bad.push(['package 2^32', 'S3SSE_BAD_PACKAGE_NUMBER', () => backend.seal(key, prefix, 2 ** 32, true, pt, out)])
  bad.push(['package size 0', 'S3SSE_BAD_PACKAGE_SIZE', () => backend.seal(key, prefix, 0, true, pt, out, 0)])
  bad.push(['package size too large', 'S3SSE_BAD_PACKAGE_SIZE', () => backend.seal(key, prefix, 0, true, pt, out, 2 ** 25)])
  bad.push(['out too small (seal)', 'S3SSE_BAD_OUTPUT_SIZE', () => backend.seal(key, prefix, 0, true, pt, Buffer.alloc(25))])
  bad.push(['out too small (open)', 'S3SSE_BAD_OUTPUT_SIZE', () => backend.open(key, prefix, 0, true, out, Buffer.alloc(9))])
  bad.push(['sealed shorter than a tag', 'S3SSE_TRUNCATED', () => backend.open(key, prefix, 0, true, Buffer.alloc(15), Buffer.alloc(16))])
  bad.push(['empty sealed input with final', 'S3SSE_TRUNCATED', () => backend.open(key, prefix, 0, true, Buffer.alloc(0), Buffer.alloc(0))])
  bad.push(['final not a boolean', 'S3SSE_BAD_ARGUMENT', () => backend.seal(key, prefix, 0, 1 as unknown as boolean, pt, out)])
  bad.push(['input not bytes', 'S3SSE_BAD_ARGUMENT', () => backend.seal(key, prefix, 0, true, 'text' as unknown as Uint8Array, out)])
  it.each(bad)('%s → %s', (_what, code, call) => {
    let err: unknown
    try {
      call()
    } catch (e) {
      err = e
    }
    expect(err).toBeInstanceOf(S3sseError)
    expect((err as S3sseError).code).toBe(code)
    // Size errors name the constant they break.
    if (code.startsWith('S3SSE_BAD_') && code.endsWith('_SIZE') && code !== 'S3SSE_BAD_OUTPUT_SIZE') {
      expect((err as Error).message).toMatch(/[A-Z_]+_SIZE = \d+/)
    }
  })

  it('an empty non-final call writes nothing; an empty final call writes one empty package', () => {
    const k = randomBytes(32)
    const p = randomBytes(7)
    expect(backend.seal(k, p, 3, false, Buffer.alloc(0), Buffer.alloc(0))).toBe(0)
    const one = Buffer.alloc(16)
    expect(backend.seal(k, p, 3, true, Buffer.alloc(0), one)).toBe(16)
    expect(one.equals(referenceSeal(k, p, 3, true, Buffer.alloc(0), 65536))).toBe(true)
    expect(backend.open(k, p, 3, false, Buffer.alloc(0), Buffer.alloc(0))).toBe(0)
    expect(backend.open(k, p, 3, true, one, Buffer.alloc(0))).toBe(0)
  })
})
