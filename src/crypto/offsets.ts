import { S3sseError } from '../errors.js'
import { PACKAGE_SIZE, TAG_SIZE } from './constants.js'

/**
 * Closed-form arithmetic between plaintext offsets and the sealed stream
 * (docs/FORMAT.md, "Offsets"). A stream of n plaintext bytes has max(1, ceil(n / P))
 * packages; package i starts at i·(P + TAG_SIZE) in the sealed stream.
 */

/** Packages in a whole stream of `plainSize` bytes (an empty stream is one empty package). */
export function streamPackageCount(plainSize: number, packageSize = PACKAGE_SIZE): number {
  return plainSize === 0 ? 1 : Math.ceil(plainSize / packageSize)
}

/** Size of the sealed stream of `plainSize` bytes. */
export function sealedStreamSize(plainSize: number, packageSize = PACKAGE_SIZE): number {
  return plainSize + streamPackageCount(plainSize, packageSize) * TAG_SIZE
}

/** Plaintext size of a whole sealed stream, or S3SSE_TRUNCATED when no stream has that size. */
export function plainStreamSize(sealedSize: number, packageSize = PACKAGE_SIZE): number {
  const sealed = packageSize + TAG_SIZE
  const whole = Math.floor(sealedSize / sealed)
  const rest = sealedSize - whole * sealed
  if (rest === 0 && whole > 0) return whole * packageSize
  if (rest < TAG_SIZE || (rest === TAG_SIZE && whole > 0)) {
    // Only a stream whose whole content is one empty package ends in a bare tag.
    throw new S3sseError('S3SSE_TRUNCATED', `${sealedSize} bytes is not the size of a sealed stream with packageSize ${packageSize}`)
  }
  return whole * packageSize + rest - TAG_SIZE
}

export interface PackageSpan {
  /** First and last package (inclusive) that hold the requested plaintext. */
  firstPackage: number
  lastPackage: number
  /** Byte range [start, end) of those packages in the sealed stream. */
  sealedStart: number
  sealedEnd: number
  /** Plaintext bytes to drop from the front of the first package, and bytes to keep. */
  skip: number
  length: number
  /** Whether lastPackage is the final package of the stream (opened with the final flag). */
  final: boolean
}

/**
 * The packages and sealed bytes that plaintext bytes [start, endInclusive] of a
 * `plainSize`-byte stream live in. An empty range of an empty stream is allowed as
 * start = 0, endInclusive = -1 (it still reads the one empty package, to authenticate it).
 */
export function packageSpan(plainSize: number, start: number, endInclusive: number, packageSize = PACKAGE_SIZE): PackageSpan {
  const emptyWhole = plainSize === 0 && start === 0 && endInclusive === -1
  if (!emptyWhole && !(Number.isInteger(start) && Number.isInteger(endInclusive) && start >= 0 && start <= endInclusive && endInclusive < plainSize)) {
    throw new S3sseError('S3SSE_BAD_RANGE', `range ${start}-${endInclusive} is outside a ${plainSize}-byte stream`)
  }
  const count = streamPackageCount(plainSize, packageSize)
  const firstPackage = emptyWhole ? 0 : Math.floor(start / packageSize)
  const lastPackage = emptyWhole ? 0 : Math.floor(endInclusive / packageSize)
  const sealed = packageSize + TAG_SIZE
  const lastPlain = Math.min(packageSize, plainSize - lastPackage * packageSize)
  return {
    firstPackage,
    lastPackage,
    sealedStart: firstPackage * sealed,
    sealedEnd: lastPackage * sealed + lastPlain + TAG_SIZE,
    skip: emptyWhole ? 0 : start - firstPackage * packageSize,
    length: emptyWhole ? 0 : endInclusive - start + 1,
    final: lastPackage === count - 1,
  }
}
