import { S3sseError } from '../errors.js'
import { PACKAGE_SIZE, TAG_SIZE } from './constants.js'

/**
 * The one package-count rule (docs/FORMAT.md, "Packages"): every size in the crypto layer —
 * a backend call's output, a whole stream's stored size, a range's sealed span — is derived
 * from these two functions. native/packages.h is its twin on the addon's side of the boundary
 * (test/crypto/packages.test.ts holds the two against each other).
 *
 * Sealing n bytes makes ceil(n / P) packages, and an empty final call one empty package.
 * Opening L sealed bytes finds floor(L / (P + TAG_SIZE)) whole packages plus one shorter piece
 * when L leaves a remainder; that piece must hold at least a tag.
 */

/** Packages a seal call of `plainLength` bytes produces. */
export function packagesForPlaintext(plainLength: number, final: boolean, packageSize = PACKAGE_SIZE): number {
  if (plainLength === 0) return final ? 1 : 0
  return Math.ceil(plainLength / packageSize)
}

/**
 * Packages in `cipherLength` bytes of sealed input, or S3SSE_TRUNCATED when the length cannot
 * be a run of packages (a piece shorter than a tag; nothing at all for the end of a stream).
 */
export function packagesForCiphertext(cipherLength: number, final: boolean, packageSize = PACKAGE_SIZE, firstPackage = 0): number {
  const sealed = packageSize + TAG_SIZE
  if (cipherLength === 0) {
    if (final) throw new S3sseError('S3SSE_TRUNCATED', 'sealed input is empty: a final call needs at least one package (TAG_SIZE bytes)')
    return 0
  }
  const whole = Math.floor(cipherLength / sealed)
  const rest = cipherLength - whole * sealed
  if (rest === 0) return whole
  if (rest < TAG_SIZE) {
    throw new S3sseError('S3SSE_TRUNCATED', `sealed input ends with ${rest} bytes, shorter than a tag (TAG_SIZE = ${TAG_SIZE})`, { packageNumber: firstPackage + whole })
  }
  return whole + 1
}

/** Bytes `seal` writes for `plainLength` bytes of input. */
export function sealedLength(plainLength: number, final: boolean, packageSize = PACKAGE_SIZE): number {
  return plainLength + packagesForPlaintext(plainLength, final, packageSize) * TAG_SIZE
}

/** Bytes `open` writes for `cipherLength` bytes of sealed input. */
export function openedLength(cipherLength: number, final: boolean, packageSize = PACKAGE_SIZE, firstPackage = 0): number {
  return cipherLength - packagesForCiphertext(cipherLength, final, packageSize, firstPackage) * TAG_SIZE
}
