import { S3sseError } from '../../errors.js'
import { TAG_SIZE } from '../constants.js'
import { authFailed, checkCall, checkGcm, NONCE_SIZE, writeNonce, type Backend, type BackendName, type Gcm } from '../backend.js'

/**
 * Seals one package: `plain` → `out` (ciphertext ‖ tag, plain.length + TAG_SIZE bytes).
 */
export type SealOne = (key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, plain: Uint8Array, out: Uint8Array) => void
/**
 * Opens one package: `sealed` (ciphertext ‖ tag) → `out`. Returns false when the tag does
 * not verify, and must then have written nothing to `out`.
 */
export type OpenOne = (key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, sealed: Uint8Array, out: Uint8Array) => boolean

const NO_AAD = new Uint8Array(0)

/**
 * A backend whose primitive is one package at a time (node:crypto, @noble/ciphers): the
 * package loop, nonce layout and checks live here once.
 */
export function packageLoopBackend(name: BackendName, sealOne: SealOne, openOne: OpenOne): Backend {
  function seal(key: Uint8Array, noncePrefix: Uint8Array, firstPackage: number, final: boolean,
    plaintext: Uint8Array, out: Uint8Array, packageSize?: number): number {
    const c = checkCall('seal', key, noncePrefix, firstPackage, final, plaintext, out, packageSize)
    const nonce = new Uint8Array(NONCE_SIZE)
    let inPos = 0
    let outPos = 0
    for (let i = 0; i < c.packages; i++) {
      const n = Math.min(c.packageSize, plaintext.length - inPos)
      const last = i === c.packages - 1
      writeNonce(nonce, noncePrefix, firstPackage + i, final && last)
      sealOne(key, nonce, NO_AAD, plaintext.subarray(inPos, inPos + n), out.subarray(outPos, outPos + n + TAG_SIZE))
      inPos += n
      outPos += n + TAG_SIZE
    }
    return outPos
  }

  function open(key: Uint8Array, noncePrefix: Uint8Array, firstPackage: number, final: boolean,
    ciphertext: Uint8Array, out: Uint8Array, packageSize?: number): number {
    const c = checkCall('open', key, noncePrefix, firstPackage, final, ciphertext, out, packageSize)
    const nonce = new Uint8Array(NONCE_SIZE)
    const sealedSize = c.packageSize + TAG_SIZE
    let inPos = 0
    let outPos = 0
    for (let i = 0; i < c.packages; i++) {
      const n = Math.min(sealedSize, ciphertext.length - inPos)
      const last = i === c.packages - 1
      writeNonce(nonce, noncePrefix, firstPackage + i, final && last)
      if (!openOne(key, nonce, NO_AAD, ciphertext.subarray(inPos, inPos + n), out.subarray(outPos, outPos + n - TAG_SIZE))) {
        throw authFailed(firstPackage + i)
      }
      inPos += n
      outPos += n - TAG_SIZE
    }
    return outPos
  }

  const gcm: Gcm = {
    seal(key, iv, aad, plaintext) {
      checkGcm(key, iv, aad, plaintext, 'seal')
      const out = new Uint8Array(plaintext.length + TAG_SIZE)
      sealOne(key, iv, aad, plaintext, out)
      return out
    },
    open(key, iv, aad, sealed) {
      checkGcm(key, iv, aad, sealed, 'open')
      const out = new Uint8Array(sealed.length - TAG_SIZE)
      if (!openOne(key, iv, aad, sealed, out)) throw new S3sseError('S3SSE_AUTH_FAILED', 'message failed authentication')
      return out
    },
  }

  return {
    name,
    gcm,
    seal,
    open,
    // These primitives run on the calling thread; the promise form keeps one interface.
    sealAsync: async (key, prefix, first, final, input, out, packageSize) => seal(key, prefix, first, final, input, out, packageSize),
    openAsync: async (key, prefix, first, final, input, out, packageSize) => open(key, prefix, first, final, input, out, packageSize),
  }
}

export function cryptoFailure(what: string, cause: unknown): S3sseError {
  return new S3sseError('S3SSE_CRYPTO_FAILURE', `${what} failed in the crypto library`, { cause })
}
