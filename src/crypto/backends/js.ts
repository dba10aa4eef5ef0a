import { gcm } from '@noble/ciphers/aes.js'
import { TAG_SIZE } from '../constants.js'
import type { Backend } from '../backend.js'
import { packageLoopBackend } from './loop.js'

/**
 * The reference backend: @noble/ciphers, audited pure TypeScript. Slow, dependency-free at
 * run time, and the producer of the test vectors.
 */
export function createJsBackend(): Backend {
  return packageLoopBackend(
    'js',
    (key, nonce, aad, plain, out) => {
      out.set(gcm(key, nonce, aad).encrypt(plain), 0)
    },
    (key, nonce, aad, sealed, out) => {
      let plain: Uint8Array
      try {
        plain = gcm(key, nonce, aad).decrypt(sealed)
      } catch {
        return false
      }
      out.set(plain, 0)
      return true
    },
  )
}
