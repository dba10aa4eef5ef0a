import { createCipheriv, createDecipheriv } from 'node:crypto'
import { TAG_SIZE } from '../constants.js'
import type { Backend } from '../backend.js'
import { packageLoopBackend } from './loop.js'

/**
 * Portable fast path over node:crypto. node:crypto offers no way to re-key only the IV,
 * so every package costs one cipher object; and it returns new buffers, so output is
 * copied into `out` once.
 */
export function createNodeBackend(): Backend {
  return packageLoopBackend(
    'node',
    (key, nonce, aad, plain, out) => {
      const c = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_SIZE })
      if (aad.length > 0) c.setAAD(aad)
      const body = c.update(plain)
      const tail = c.final()
      out.set(body, 0)
      out.set(tail, body.length)
      out.set(c.getAuthTag(), plain.length)
    },
    (key, nonce, aad, sealed, out) => {
      const n = sealed.length - TAG_SIZE
      const d = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_SIZE })
      if (aad.length > 0) d.setAAD(aad)
      d.setAuthTag(sealed.subarray(n))
      const body = d.update(sealed.subarray(0, n))
      try {
        d.final()
      } catch {
        body.fill(0)
        return false
      }
      // Released only now that the tag has verified.
      out.set(body, 0)
      return true
    },
  )
}
