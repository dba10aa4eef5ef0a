import { describe, expect, it } from 'vitest'
import { nativePackageCount } from '../../src/crypto/backends/native.js'
import {
  openedLength, packageSpan, packagesForCiphertext, packagesForPlaintext, plainStreamSize, S3sseError, sealedLength,
  sealedStreamSize, streamPackageCount, TAG_SIZE,
} from '../../src/index.js'

// One package-count rule (src/crypto/packages.ts), with its twin in the addon
// (native/packages.h): the two must agree on every length, and every size in the crypto
// layer must follow from it.

const SIZES = [1, 2, 16, 17, 1000, 65536]

/** Every length up to a few packages for small sizes, the boundaries for large ones. */
function lengths(p: number, sealed: boolean): number[] {
  const step = sealed ? p + TAG_SIZE : p
  if (step <= 40) return Array.from({ length: 4 * step + 2 * TAG_SIZE }, (_, i) => i)
  const out = new Set<number>()
  for (const k of [0, 1, 2, 7]) {
    for (const d of [-TAG_SIZE - 1, -TAG_SIZE, -TAG_SIZE + 1, -1, 0, 1, TAG_SIZE - 1, TAG_SIZE, TAG_SIZE + 1]) {
      const n = k * step + d
      if (n >= 0) out.add(n)
    }
  }
  return [...out]
}

function tsCount(direction: 'seal' | 'open', n: number, final: boolean, p: number): { packages: number; outLength: number } | string {
  try {
    return direction === 'seal'
      ? { packages: packagesForPlaintext(n, final, p), outLength: sealedLength(n, final, p) }
      : { packages: packagesForCiphertext(n, final, p), outLength: openedLength(n, final, p) }
  } catch (e) {
    return (e as S3sseError).code
  }
}

function addonCount(direction: 'seal' | 'open', n: number, final: boolean, p: number): { packages: number; outLength: number } | string {
  try {
    return nativePackageCount(direction, n, final, p)
  } catch (e) {
    return (e as S3sseError).code
  }
}

describe('the package count', () => {
  for (const direction of ['seal', 'open'] as const) {
    for (const final of [true, false]) {
      it(`the addon and TypeScript agree (${direction}, final=${final}) for every length around the boundaries`, () => {
        let compared = 0
        for (const p of SIZES) {
          for (const n of lengths(p, direction === 'open')) {
            expect(addonCount(direction, n, final, p), `${direction} n=${n} P=${p} final=${final}`).toEqual(tsCount(direction, n, final, p))
            compared++
          }
        }
        expect(compared).toBeGreaterThan(300)
      })
    }
  }

  it('follows the format: ceil(n / P) packages, one empty package for an empty final call', () => {
    expect(packagesForPlaintext(0, true, 16)).toBe(1)
    expect(packagesForPlaintext(0, false, 16)).toBe(0)
    expect(packagesForPlaintext(16, true, 16)).toBe(1)
    expect(packagesForPlaintext(17, false, 16)).toBe(2)
    expect(packagesForCiphertext(2 * (16 + TAG_SIZE), true, 16)).toBe(2)
    expect(packagesForCiphertext(16 + TAG_SIZE + TAG_SIZE, true, 16)).toBe(2)
    expect(() => packagesForCiphertext(16 + TAG_SIZE + TAG_SIZE - 1, true, 16)).toThrowError(expect.objectContaining({ code: 'S3SSE_TRUNCATED', packageNumber: 1 }))
    expect(() => packagesForCiphertext(0, true, 16)).toThrowError(expect.objectContaining({ code: 'S3SSE_TRUNCATED' }))
    expect(packagesForCiphertext(0, false, 16)).toBe(0)
  })

  it('whole-stream sizes and ranges are the same rule', () => {
    for (const p of SIZES) {
      for (const n of lengths(p, false)) {
        expect(streamPackageCount(n, p)).toBe(packagesForPlaintext(n, true, p))
        expect(sealedStreamSize(n, p)).toBe(sealedLength(n, true, p))
        expect(plainStreamSize(sealedStreamSize(n, p), p)).toBe(n)
        if (n > 0) {
          const s = packageSpan(n, 0, n - 1, p)
          expect(s.lastPackage + 1).toBe(packagesForPlaintext(n, true, p))
          expect(s.sealedEnd).toBe(sealedLength(n, true, p))
        }
      }
    }
  })
})
