import { S3sseError } from '../errors.js'
import {
  KEY_SIZE,
  MAX_PACKAGE_NUMBER,
  MAX_PACKAGE_SIZE,
  NONCE_PREFIX_SIZE,
  NONCE_SIZE,
  PACKAGE_SIZE,
  TAG_SIZE,
} from './constants.js'
import { packagesForCiphertext, packagesForPlaintext } from './packages.js'

export type BackendName = 'native' | 'node' | 'wasm' | 'js'

export interface AsyncOptions {
  /** How many pool threads a large input may be split across (default: the core count). */
  threads?: number
}

/**
 * The package cipher. Package i of a call is AES-256-GCM under `key` with
 * nonce = noncePrefix ‖ uint32_be(firstPackage + i) ‖ flag, no AAD, output ciphertext ‖ tag.
 * flag is 1 on the last package of a call made with final = true, else 0.
 * Both directions write into `out` and return the bytes written.
 */
export interface Backend {
  readonly name: BackendName
  /**
   * The AES-256-GCM primitive under the packages, one message with any 96-bit IV and AAD:
   * the same code path the package loop uses, exposed for known-answer tests (Wycheproof)
   * and small messages. `open` throws S3SSE_AUTH_FAILED and returns no plaintext on a bad tag.
   */
  readonly gcm: Gcm
  seal(key: Uint8Array, noncePrefix: Uint8Array, firstPackage: number, final: boolean,
    plaintext: Uint8Array, out: Uint8Array, packageSize?: number): number
  open(key: Uint8Array, noncePrefix: Uint8Array, firstPackage: number, final: boolean,
    ciphertext: Uint8Array, out: Uint8Array, packageSize?: number): number
  sealAsync(key: Uint8Array, noncePrefix: Uint8Array, firstPackage: number, final: boolean,
    plaintext: Uint8Array, out: Uint8Array, packageSize?: number, options?: AsyncOptions): Promise<number>
  openAsync(key: Uint8Array, noncePrefix: Uint8Array, firstPackage: number, final: boolean,
    ciphertext: Uint8Array, out: Uint8Array, packageSize?: number, options?: AsyncOptions): Promise<number>
}

export interface Gcm {
  seal(key: Uint8Array, iv: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): Uint8Array
  open(key: Uint8Array, iv: Uint8Array, aad: Uint8Array, sealed: Uint8Array): Uint8Array
}

/** Checks of the single-message primitive; returns nothing, throws S3sseError. */
export function checkGcm(key: Uint8Array, iv: Uint8Array, aad: Uint8Array, input: Uint8Array, direction: 'seal' | 'open'): void {
  if (!(key instanceof Uint8Array) || key.length !== KEY_SIZE) {
    throw new S3sseError('S3SSE_BAD_KEY_SIZE', `key must be KEY_SIZE = ${KEY_SIZE} bytes`)
  }
  if (!(iv instanceof Uint8Array) || iv.length !== NONCE_SIZE) {
    throw new S3sseError('S3SSE_BAD_NONCE_SIZE', `iv must be NONCE_SIZE = ${NONCE_SIZE} bytes`)
  }
  if (!(aad instanceof Uint8Array) || !(input instanceof Uint8Array)) {
    throw new S3sseError('S3SSE_BAD_ARGUMENT', 'aad and input must be Uint8Arrays')
  }
  if (direction === 'open' && input.length < TAG_SIZE) {
    throw new S3sseError('S3SSE_TRUNCATED', `sealed message is shorter than a tag (TAG_SIZE = ${TAG_SIZE})`)
  }
}

export interface CheckedCall {
  packageSize: number
  packages: number
  outLength: number
}

/**
 * The argument checks every backend makes before touching data (the native addon checks
 * again on its side of the boundary). Returns the package count and output length.
 */
export function checkCall(direction: 'seal' | 'open', key: Uint8Array, noncePrefix: Uint8Array,
  firstPackage: number, final: boolean, input: Uint8Array, out: Uint8Array,
  packageSize: number = PACKAGE_SIZE): CheckedCall {
  if (!(key instanceof Uint8Array) || key.length !== KEY_SIZE) {
    throw new S3sseError('S3SSE_BAD_KEY_SIZE', `key must be KEY_SIZE = ${KEY_SIZE} bytes`)
  }
  if (!(noncePrefix instanceof Uint8Array) || noncePrefix.length !== NONCE_PREFIX_SIZE) {
    throw new S3sseError('S3SSE_BAD_NONCE_SIZE', `noncePrefix must be NONCE_PREFIX_SIZE = ${NONCE_PREFIX_SIZE} bytes`)
  }
  if (!Number.isInteger(packageSize) || packageSize < 1 || packageSize > MAX_PACKAGE_SIZE) {
    throw new S3sseError('S3SSE_BAD_PACKAGE_SIZE', `packageSize must be an integer from 1 to MAX_PACKAGE_SIZE = ${MAX_PACKAGE_SIZE}`)
  }
  if (!Number.isInteger(firstPackage) || firstPackage < 0 || firstPackage > MAX_PACKAGE_NUMBER) {
    throw new S3sseError('S3SSE_BAD_PACKAGE_NUMBER', `firstPackage must be an integer from 0 to MAX_PACKAGE_NUMBER = ${MAX_PACKAGE_NUMBER}`)
  }
  if (typeof final !== 'boolean') {
    throw new S3sseError('S3SSE_BAD_ARGUMENT', 'final must be a boolean')
  }
  if (!(input instanceof Uint8Array) || !(out instanceof Uint8Array)) {
    throw new S3sseError('S3SSE_BAD_ARGUMENT', 'input and out must be Uint8Arrays')
  }
  const packages = direction === 'seal'
    ? packagesForPlaintext(input.length, final, packageSize)
    : packagesForCiphertext(input.length, final, packageSize, firstPackage)
  if (packages > 0 && firstPackage + packages - 1 > MAX_PACKAGE_NUMBER) {
    throw new S3sseError('S3SSE_PACKAGE_OVERFLOW',
      `package ${firstPackage + packages - 1} is past MAX_PACKAGE_NUMBER = ${MAX_PACKAGE_NUMBER}; a stream never wraps around`)
  }
  const outLength = direction === 'seal'
    ? input.length + packages * TAG_SIZE
    : input.length - packages * TAG_SIZE
  if (out.length < outLength) {
    throw new S3sseError('S3SSE_BAD_OUTPUT_SIZE', `out holds ${out.length} bytes; this call writes ${outLength}`)
  }
  return { packageSize, packages, outLength }
}

/** nonce = prefix ‖ uint32_be(packageNumber) ‖ flag, written into `nonce` (NONCE_SIZE bytes). */
export function writeNonce(nonce: Uint8Array, noncePrefix: Uint8Array, packageNumber: number, final: boolean): Uint8Array {
  nonce.set(noncePrefix, 0)
  nonce[7] = packageNumber >>> 24
  nonce[8] = (packageNumber >>> 16) & 0xff
  nonce[9] = (packageNumber >>> 8) & 0xff
  nonce[10] = packageNumber & 0xff
  nonce[11] = final ? 1 : 0
  return nonce
}

export function authFailed(packageNumber: number): S3sseError {
  return new S3sseError('S3SSE_AUTH_FAILED', `package ${packageNumber} failed authentication`, { packageNumber })
}

export { NONCE_SIZE }
