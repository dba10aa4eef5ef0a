import { S3sseError } from '../errors.js'

/** Key/value pairs bound to a wrapped key (for objects: `{ bucket, key }`, + extra in aws mode). */
export interface EncryptionContext { [k: string]: string }

/** Limits of the canonical form: lengths are uint16, so each string fits 65535 UTF-8 bytes. */
export const MAX_CONTEXT_PAIRS = 64
export const MAX_CONTEXT_STRING = 0xffff

/**
 * Canonical bytes of an encryption context (docs/FORMAT.md, "Encryption context"):
 * uint16_be(n) ‖ n × (uint16_be(len k) ‖ k ‖ uint16_be(len v) ‖ v), UTF-8, pairs sorted by
 * the bytes of k. Length prefixes make it unambiguous; sorting makes it independent of the
 * order a JavaScript object happens to hold its keys in.
 */
export function canonicalContext(context: EncryptionContext): Uint8Array {
  const pairs = contextPairs(context)
  let size = 2
  for (const [k, v] of pairs) size += 4 + k.length + v.length
  const out = new Uint8Array(size)
  const view = new DataView(out.buffer)
  view.setUint16(0, pairs.length)
  let pos = 2
  for (const [k, v] of pairs) {
    view.setUint16(pos, k.length)
    out.set(k, pos + 2)
    pos += 2 + k.length
    view.setUint16(pos, v.length)
    out.set(v, pos + 2)
    pos += 2 + v.length
  }
  return out
}

/** The pairs as UTF-8, checked and sorted by key bytes. */
export function contextPairs(context: EncryptionContext): Array<[Buffer, Buffer]> {
  if (context === null || typeof context !== 'object' || Array.isArray(context)) {
    throw new S3sseError('S3SSE_BAD_ARGUMENT', 'an encryption context must be an object of strings')
  }
  const entries = Object.entries(context)
  if (entries.length > MAX_CONTEXT_PAIRS) {
    throw new S3sseError('S3SSE_BAD_ARGUMENT', `an encryption context holds at most MAX_CONTEXT_PAIRS = ${MAX_CONTEXT_PAIRS} pairs`)
  }
  const pairs: Array<[Buffer, Buffer]> = []
  for (const [k, v] of entries) {
    if (typeof v !== 'string') throw new S3sseError('S3SSE_BAD_ARGUMENT', `encryption context value of "${k}" is not a string`)
    const kb = Buffer.from(k, 'utf8')
    const vb = Buffer.from(v, 'utf8')
    if (kb.length === 0 || kb.length > MAX_CONTEXT_STRING || vb.length > MAX_CONTEXT_STRING) {
      throw new S3sseError('S3SSE_BAD_ARGUMENT', `encryption context keys are 1 to ${MAX_CONTEXT_STRING} bytes and values at most ${MAX_CONTEXT_STRING}`)
    }
    pairs.push([kb, vb])
  }
  pairs.sort((a, b) => Buffer.compare(a[0], b[0]))
  return pairs
}

/** Whether two contexts hold the same pairs. */
export function sameContext(a: EncryptionContext, b: EncryptionContext): boolean {
  return Buffer.from(canonicalContext(a)).equals(canonicalContext(b))
}
