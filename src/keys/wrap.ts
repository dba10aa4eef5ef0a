import { createCipheriv, createDecipheriv, createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { S3sseError } from '../errors.js'
import { KEY_SIZE, TAG_SIZE } from '../crypto/constants.js'
import { hkdfSha256 } from '../crypto/kdf.js'
import { canonicalContext, type EncryptionContext } from './context.js'

/**
 * Wrapped data keys of the embedded KMS, format 1 (docs/FORMAT.md, "Wrapped data keys"):
 *
 *   0x01 ‖ u8 L ‖ key id (L bytes ASCII) ‖ u32_be version ‖ nonce (32) ‖ check (16) ‖ ct (32) ‖ tag (16)
 *
 * Every wrap derives its own AES-256-GCM key and IV from the master key version and a random
 * 256-bit nonce (HKDF-SHA256, RFC 5869). A random 96-bit IV under one key is limited to 2^32
 * messages (NIST SP 800-38D §8.3); deriving per wrap lifts that bound, so a master key
 * version can wrap any number of data keys. The context is authenticated as AAD, and a
 * 16-byte keyed check value of the context lets decrypt tell "wrong context" apart from "the
 * blob was altered" (both would only fail the GCM tag otherwise).
 */

export const WRAP_FORMAT = 1
export const WRAP_NONCE_SIZE = 32
export const WRAP_CHECK_SIZE = 16
const IV_SIZE = 12
const WRAP_INFO = Buffer.from('s3-sse v1 wrap', 'latin1')
export const MAX_KEY_ID_LENGTH = 255
/**
 * Largest plaintext a blob of this format carries: the embedded KMS wraps KEY_SIZE-byte data
 * keys; `s3-sse kms serve` also seals the 1 to 4096 bytes AWS KMS Encrypt accepts.
 */
export const MAX_WRAP_PLAINTEXT = 4096

export interface WrappedHeader {
  keyId: string
  keyVersion: number
}

interface Parsed extends WrappedHeader {
  nonce: Uint8Array
  check: Uint8Array
  ciphertext: Uint8Array
  tag: Uint8Array
  /** Bytes before the ciphertext: authenticated as the first part of the AAD. */
  header: Uint8Array
}

/** Key id and version of a wrapped blob, or S3SSE_KMS_BAD_CIPHERTEXT when it is not one. */
export function parseWrapped(wrapped: Uint8Array): Parsed {
  if (!(wrapped instanceof Uint8Array) || wrapped.length < 2) {
    throw new S3sseError('S3SSE_KMS_BAD_CIPHERTEXT', 'the wrapped key is too short to be one')
  }
  if (wrapped[0] !== WRAP_FORMAT) {
    throw new S3sseError('S3SSE_KMS_BAD_CIPHERTEXT', `the wrapped key has format ${wrapped[0]}; this KMS reads format ${WRAP_FORMAT}`)
  }
  const idLength = wrapped[1]
  const headerLength = 2 + idLength + 4 + WRAP_NONCE_SIZE + WRAP_CHECK_SIZE
  const size = wrapped.length - headerLength - TAG_SIZE
  if (idLength === 0 || size < 1 || size > MAX_WRAP_PLAINTEXT) {
    throw new S3sseError('S3SSE_KMS_BAD_CIPHERTEXT', 'the wrapped key has the wrong length for its key id')
  }
  const view = new DataView(wrapped.buffer, wrapped.byteOffset, wrapped.byteLength)
  const keyId = Buffer.from(wrapped.subarray(2, 2 + idLength)).toString('latin1')
  const keyVersion = view.getUint32(2 + idLength)
  if (keyVersion === 0) throw new S3sseError('S3SSE_KMS_BAD_CIPHERTEXT', 'the wrapped key names key version 0; versions start at 1')
  let pos = 6 + idLength
  const nonce = wrapped.subarray(pos, pos + WRAP_NONCE_SIZE)
  pos += WRAP_NONCE_SIZE
  const check = wrapped.subarray(pos, pos + WRAP_CHECK_SIZE)
  pos += WRAP_CHECK_SIZE
  return {
    keyId,
    keyVersion,
    nonce,
    check,
    header: wrapped.subarray(0, pos),
    ciphertext: wrapped.subarray(pos, pos + size),
    tag: wrapped.subarray(pos + size),
  }
}

/** K ‖ IV ‖ Kc = HKDF-SHA256(master, nonce, "s3-sse v1 wrap", 76). */
function wrapKeys(master: Uint8Array, nonce: Uint8Array): { key: Uint8Array; iv: Uint8Array; checkKey: Uint8Array; wipe(): void } {
  const okm = hkdfSha256(master, nonce, WRAP_INFO, KEY_SIZE + IV_SIZE + KEY_SIZE)
  return {
    key: okm.subarray(0, KEY_SIZE),
    iv: okm.subarray(KEY_SIZE, KEY_SIZE + IV_SIZE),
    checkKey: okm.subarray(KEY_SIZE + IV_SIZE),
    wipe: () => okm.fill(0),
  }
}

function contextCheck(checkKey: Uint8Array, context: Uint8Array): Uint8Array {
  return createHmac('sha256', checkKey).update(context).digest().subarray(0, WRAP_CHECK_SIZE)
}

/** Wraps `dataKey` under one master key version; `nonce` is random unless a vector fixes it. */
export function wrapDataKey(master: Uint8Array, keyId: string, keyVersion: number, dataKey: Uint8Array,
  context: EncryptionContext, nonce: Uint8Array = randomBytes(WRAP_NONCE_SIZE)): Uint8Array {
  if (master.length !== KEY_SIZE || dataKey.length !== KEY_SIZE) {
    throw new S3sseError('S3SSE_BAD_KEY_SIZE', `master and data keys must be KEY_SIZE = ${KEY_SIZE} bytes`)
  }
  return wrapBytes(master, keyId, keyVersion, dataKey, context, nonce)
}

/** The same layout around 1 to MAX_WRAP_PLAINTEXT bytes of any secret (AWS KMS Encrypt). */
export function wrapBytes(master: Uint8Array, keyId: string, keyVersion: number, plaintext: Uint8Array,
  context: EncryptionContext, nonce: Uint8Array = randomBytes(WRAP_NONCE_SIZE)): Uint8Array {
  if (master.length !== KEY_SIZE) throw new S3sseError('S3SSE_BAD_KEY_SIZE', `master keys must be KEY_SIZE = ${KEY_SIZE} bytes`)
  if (!(plaintext instanceof Uint8Array) || plaintext.length < 1 || plaintext.length > MAX_WRAP_PLAINTEXT) {
    throw new S3sseError('S3SSE_BAD_ARGUMENT', `a wrapped plaintext is 1 to MAX_WRAP_PLAINTEXT = ${MAX_WRAP_PLAINTEXT} bytes`)
  }
  const id = Buffer.from(keyId, 'latin1')
  if (id.length === 0 || id.length > MAX_KEY_ID_LENGTH || !/^[\x21-\x7e]+$/.test(keyId)) {
    throw new S3sseError('S3SSE_BAD_ARGUMENT', `a key id is 1 to ${MAX_KEY_ID_LENGTH} printable ASCII characters`)
  }
  if (!Number.isInteger(keyVersion) || keyVersion < 1 || keyVersion > 0xffffffff) {
    throw new S3sseError('S3SSE_BAD_ARGUMENT', 'a key version is an integer from 1 to 2^32-1')
  }
  if (nonce.length !== WRAP_NONCE_SIZE) throw new S3sseError('S3SSE_BAD_ARGUMENT', `the wrap nonce is WRAP_NONCE_SIZE = ${WRAP_NONCE_SIZE} bytes`)
  const ctx = canonicalContext(context)
  const k = wrapKeys(master, nonce)
  try {
    const headerLength = 2 + id.length + 4 + WRAP_NONCE_SIZE + WRAP_CHECK_SIZE
    const out = new Uint8Array(headerLength + plaintext.length + TAG_SIZE)
    out[0] = WRAP_FORMAT
    out[1] = id.length
    out.set(id, 2)
    new DataView(out.buffer).setUint32(2 + id.length, keyVersion)
    out.set(nonce, 6 + id.length)
    out.set(contextCheck(k.checkKey, ctx), 6 + id.length + WRAP_NONCE_SIZE)
    const cipher = createCipheriv('aes-256-gcm', k.key, k.iv)
    cipher.setAAD(out.subarray(0, headerLength))
    cipher.setAAD(ctx)
    const ct = cipher.update(plaintext)
    cipher.final()
    out.set(ct, headerLength)
    ct.fill(0)
    out.set(cipher.getAuthTag(), headerLength + plaintext.length)
    return out
  } finally {
    k.wipe()
  }
}

/** Opens a blob made by wrapDataKey with the master key version it names. */
export function unwrapDataKey(master: Uint8Array, wrapped: Uint8Array, context: EncryptionContext): Uint8Array {
  if (parseWrapped(wrapped).ciphertext.length !== KEY_SIZE) {
    throw new S3sseError('S3SSE_KMS_BAD_CIPHERTEXT', `the blob does not hold a data key of KEY_SIZE = ${KEY_SIZE} bytes`)
  }
  return unwrapBytes(master, wrapped, context)
}

/** Opens a blob made by wrapBytes (or wrapDataKey) with the master key version it names. */
export function unwrapBytes(master: Uint8Array, wrapped: Uint8Array, context: EncryptionContext): Uint8Array {
  const p = parseWrapped(wrapped)
  const ctx = canonicalContext(context)
  const k = wrapKeys(master, p.nonce)
  try {
    if (!timingSafeEqual(contextCheck(k.checkKey, ctx), p.check)) {
      throw new S3sseError('S3SSE_KMS_CONTEXT_MISMATCH', 'the wrapped key was not made for this encryption context')
    }
    const decipher = createDecipheriv('aes-256-gcm', k.key, k.iv)
    decipher.setAAD(p.header)
    decipher.setAAD(ctx)
    decipher.setAuthTag(p.tag)
    const out = decipher.update(p.ciphertext)
    try {
      decipher.final()
    } catch {
      out.fill(0)
      throw new S3sseError('S3SSE_KMS_BAD_CIPHERTEXT', 'the wrapped key failed authentication: it was altered or damaged')
    }
    return new Uint8Array(out.buffer, out.byteOffset, out.byteLength)
  } finally {
    k.wipe()
  }
}
