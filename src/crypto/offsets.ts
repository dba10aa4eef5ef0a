import { S3sseError } from '../errors.js'
import { PACKAGE_SIZE, TAG_SIZE } from './constants.js'
import { openedLength, packagesForPlaintext, sealedLength } from './packages.js'

/**
 * Closed-form arithmetic between plaintext offsets and the sealed stream
 * (docs/FORMAT.md, "Offsets"). A stream of n plaintext bytes has max(1, ceil(n / P))
 * packages; package i starts at i·(P + TAG_SIZE) in the sealed stream.
 */

/** Packages in a whole stream of `plainSize` bytes (an empty stream is one empty package). */
export function streamPackageCount(plainSize: number, packageSize = PACKAGE_SIZE): number {
  return packagesForPlaintext(plainSize, true, packageSize)
}

/** Size of the sealed stream of `plainSize` bytes. */
export function sealedStreamSize(plainSize: number, packageSize = PACKAGE_SIZE): number {
  return sealedLength(plainSize, true, packageSize)
}

/** Plaintext size of a whole sealed stream, or S3SSE_TRUNCATED when no stream has that size. */
export function plainStreamSize(sealedSize: number, packageSize = PACKAGE_SIZE): number {
  const bad = () => new S3sseError('S3SSE_TRUNCATED', `${sealedSize} bytes is not the size of a sealed stream with packageSize ${packageSize}`)
  let plain: number
  try {
    plain = openedLength(sealedSize, true, packageSize)
  } catch {
    throw bad()
  }
  // A run of packages is a whole stream only if sealing its plaintext gives it back: a bare
  // tag after full packages is no stream (n = k·P bytes make k packages, not k + 1).
  if (sealedLength(plain, true, packageSize) !== sealedSize) throw bad()
  return plain
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
