import { describe, expect, it } from 'vitest'
import { packageSpan, plainStreamSize, sealedStreamSize, streamPackageCount, TAG_SIZE } from '../../src/index.js'

describe('offset arithmetic', () => {
  it('sealed size and back, around package boundaries', () => {
    for (const P of [1, 16, 1000, 65536]) {
      for (const n of [0, 1, P - 1, P, P + 1, 2 * P, 2 * P + 1, 1000 * P + 7]) {
        if (n < 0) continue
        const sealed = sealedStreamSize(n, P)
        expect(sealed).toBe(n + Math.max(1, Math.ceil(n / P)) * TAG_SIZE)
        expect(plainStreamSize(sealed, P)).toBe(n)
      }
    }
  })

  it('rejects sealed sizes no stream can have', () => {
    for (const bad of [0, 5, 15, 65536 + 16 + 16, 65536 + 16 + 3]) {
      expect(() => plainStreamSize(bad, 65536)).toThrowError(expect.objectContaining({ code: 'S3SSE_TRUNCATED' }))
    }
  })

  it('maps every plaintext range onto the packages that hold it (brute force, small P)', () => {
    const P = 8
    for (const n of [1, 7, 8, 9, 16, 17, 40]) {
      const count = streamPackageCount(n, P)
      for (let start = 0; start < n; start++) {
        for (let end = start; end < n; end++) {
          const s = packageSpan(n, start, end, P)
          // Oracle: walk the packages one by one.
          let first = -1
          let last = -1
          for (let i = 0; i < count; i++) {
            const lo = i * P
            const hi = Math.min(n, lo + P) - 1
            if (hi >= start && lo <= end) {
              if (first < 0) first = i
              last = i
            }
          }
          expect([s.firstPackage, s.lastPackage]).toEqual([first, last])
          expect(s.sealedStart).toBe(first * (P + TAG_SIZE))
          expect(s.sealedEnd).toBe(Math.min(sealedStreamSize(n, P), (last + 1) * (P + TAG_SIZE)))
          expect(s.skip).toBe(start - first * P)
          expect(s.length).toBe(end - start + 1)
          expect(s.final).toBe(last === count - 1)
        }
      }
    }
  })

  it('reads at most two packages for a 1-byte range from the middle of 1 GiB', () => {
    const n = 1024 ** 3
    const s = packageSpan(n, n / 2 + 12345, n / 2 + 12345)
    expect(s.sealedEnd - s.sealedStart).toBeLessThanOrEqual(2 * (65536 + TAG_SIZE))
    expect(s.lastPackage - s.firstPackage).toBe(0)
  })

  it('handles offsets past 2^32 exactly', () => {
    const n = 6 * 2 ** 30 + 5
    const s = packageSpan(n, 2 ** 32 + 100, 2 ** 32 + 65536 + 100)
    expect(s.firstPackage).toBe(2 ** 32 / 65536)
    expect(s.lastPackage).toBe(2 ** 32 / 65536 + 1)
    expect(s.sealedStart).toBe((2 ** 32 / 65536) * (65536 + TAG_SIZE))
  })

  it('refuses ranges outside the stream', () => {
    for (const [a, b] of [[-1, 3], [5, 4], [0, 100], [100, 100], [1.5, 3]]) {
      expect(() => packageSpan(100, a, b, 16)).toThrowError(expect.objectContaining({ code: 'S3SSE_BAD_RANGE' }))
    }
    // The empty stream: the one empty package is still read, to authenticate it.
    expect(packageSpan(0, 0, -1)).toMatchObject({ firstPackage: 0, lastPackage: 0, sealedStart: 0, sealedEnd: TAG_SIZE, length: 0, final: true })
  })
})
