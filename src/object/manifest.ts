import { createHmac, timingSafeEqual } from 'node:crypto'
import { S3sseError } from '../errors.js'
import { KEY_SIZE, MAX_PACKAGE_SIZE, SALT_SIZE } from '../crypto/constants.js'
import { hkdfSha256 } from '../crypto/kdf.js'
import { sealedStreamSize } from '../crypto/offsets.js'
import { canonicalContext, contextPairs } from '../keys/context.js'

/** Where an object lives; bound to its wrapped key and its manifest MAC. */
export interface ObjectContext { bucket: string; key: string }

/** 'SSE-C': the data key comes from a customer-provided key (docs/FORMAT.md 7.6), not a KMS. */
export type Algorithm = 'aws:kms' | 'AES256' | 'SSE-C'

export interface ManifestPart {
  /** Part number (1..10000); a single PUT is part 1. Named in the stream key derivation. */
  number: number
  /** Plaintext bytes. */
  size: number
  /** Bytes stored: sealedStreamSize(size, packageSize) when encrypted, else size. */
  storedSize: number
  /** The stream salt (SALT_SIZE bytes); encrypted objects only. */
  salt?: Uint8Array
}

export interface ManifestEncryption {
  algorithm: Algorithm
  /** The KMS key id the data key (or bucket key) is wrapped under. */
  keyId: string
  keyVersion: number
  wrappedKey: Uint8Array
  /** The wrapped key is a bucket key; the data key is derived from it with keyNonce. */
  bucketKey?: boolean
  /** Per-object HKDF salt for bucket-key objects (KEY_SIZE bytes). Addition to the contract. */
  keyNonce?: Uint8Array
  /**
   * The object's encryption context: { bucket, key } plus any extra pairs (aws mode). The KMS
   * sees it whole, or without `key` when the wrapped key is a bucket key.
   */
  context: Record<string, string>
}

export interface Manifest {
  version: 1
  packageSize: number
  /** Plaintext bytes of the object (the sum of the parts). */
  size: number
  parts: ManifestPart[]
  encryption?: ManifestEncryption
  /** HMAC-SHA256 of the canonical bytes (KEY_SIZE bytes); encrypted objects only. */
  mac?: Uint8Array
}

export const MANIFEST_MAGIC = Buffer.from('S3SM', 'latin1')
export const MANIFEST_VERSION = 1
export const MAX_PARTS = 10000
export const MAC_SIZE = 32
export const KEY_NONCE_SIZE = 32
const FLAG_ENCRYPTED = 0x01
const FLAG_BUCKET_KEY = 0x02
const ALGORITHMS: Record<Algorithm, number> = { 'aws:kms': 1, AES256: 2, 'SSE-C': 3 }
/** An SSE-C header's key id field (there is no KMS key) and the size of its key field: salt ‖ check. */
export const CUSTOMER_KEY_ID = 'sse-c'
export const CUSTOMER_KEY_FIELD_SIZE = 64

const MAC_KEY_INFO = Buffer.from('s3-sse v1 manifest mac', 'latin1')
const MANIFEST_LABEL = Buffer.from('s3-sse v1 manifest\0', 'latin1')
const PART_LABEL = Buffer.from('s3-sse v1 part\0', 'latin1')
const BUCKET_OBJECT_INFO = Buffer.from('s3-sse v1 bucket object key', 'latin1')

function bad(why: string): S3sseError {
  return new S3sseError('S3SSE_BAD_MANIFEST', `malformed manifest: ${why}`)
}

function isSize(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0
}

/**
 * Checks a Manifest value for everything the byte form cannot express: the checks decode
 * makes, applied to objects built in memory (encode and every open call it).
 */
export function validateManifest(m: Manifest): void {
  if (!m || typeof m !== 'object') throw bad('not an object')
  if (m.version !== MANIFEST_VERSION) throw bad(`version ${String(m.version)}; this reads ${MANIFEST_VERSION}`)
  if (!Number.isInteger(m.packageSize) || m.packageSize < 1 || m.packageSize > MAX_PACKAGE_SIZE) {
    throw bad(`packageSize must be an integer from 1 to MAX_PACKAGE_SIZE = ${MAX_PACKAGE_SIZE}`)
  }
  if (!Array.isArray(m.parts) || m.parts.length < 1 || m.parts.length > MAX_PARTS) throw bad(`an object has 1 to ${MAX_PARTS} parts`)
  const encrypted = m.encryption !== undefined && m.encryption !== null
  let total = 0
  let previous = 0
  for (const p of m.parts) {
    if (!p || !Number.isInteger(p.number) || p.number <= previous || p.number > MAX_PARTS) {
      throw bad(`part numbers must rise strictly within 1..${MAX_PARTS}`)
    }
    previous = p.number
    if (!isSize(p.size)) throw bad(`part ${p.number} has an invalid size`)
    const stored = encrypted ? sealedStreamSize(p.size, m.packageSize) : p.size
    if (p.storedSize !== stored) throw bad(`part ${p.number} stores ${String(p.storedSize)} bytes; its size means ${stored}`)
    if (encrypted ? !(p.salt instanceof Uint8Array && p.salt.length === SALT_SIZE) : p.salt !== undefined) {
      throw bad(encrypted ? `part ${p.number} needs a SALT_SIZE = ${SALT_SIZE} byte salt` : `part ${p.number} of a plaintext object has a salt`)
    }
    total += p.size
  }
  if (!isSize(total) || m.size !== total) throw bad(`size ${String(m.size)} is not the sum of the part sizes (${total})`)
  if (!encrypted) {
    if (m.mac !== undefined) throw bad('a plaintext object has no MAC')
    return
  }
  const e = m.encryption!
  if (!(e.algorithm in ALGORITHMS)) throw bad(`unknown algorithm ${String(e.algorithm)}`)
  if (typeof e.keyId !== 'string' || e.keyId.length === 0 || Buffer.byteLength(e.keyId) > 0xffff) throw bad('keyId must be 1 to 65535 bytes')
  if (!Number.isInteger(e.keyVersion) || e.keyVersion < 0 || e.keyVersion > 0xffffffff) throw bad('keyVersion must be a uint32')
  if (!(e.wrappedKey instanceof Uint8Array) || e.wrappedKey.length === 0 || e.wrappedKey.length > 0xffff) throw bad('wrappedKey must be 1 to 65535 bytes')
  if (e.algorithm === 'SSE-C' && (e.keyId !== CUSTOMER_KEY_ID || e.keyVersion !== 0 || e.wrappedKey.length !== CUSTOMER_KEY_FIELD_SIZE || e.bucketKey)) {
    throw bad(`an SSE-C header has key id "${CUSTOMER_KEY_ID}", version 0, a ${CUSTOMER_KEY_FIELD_SIZE}-byte salt ‖ check and no bucket key`)
  }
  if (e.bucketKey ? !(e.keyNonce instanceof Uint8Array && e.keyNonce.length === KEY_NONCE_SIZE) : e.keyNonce !== undefined) {
    throw bad(e.bucketKey ? `a bucket-key object needs a ${KEY_NONCE_SIZE}-byte keyNonce` : 'keyNonce belongs to bucket-key objects only')
  }
  if (!e.context || typeof e.context.bucket !== 'string' || typeof e.context.key !== 'string') throw bad('the context must hold bucket and key')
  try {
    contextPairs(e.context)
  } catch (err) {
    throw bad(`context: ${(err as Error).message}`)
  }
  if (m.mac !== undefined && !(m.mac instanceof Uint8Array && m.mac.length === MAC_SIZE)) throw bad(`the MAC is MAC_SIZE = ${MAC_SIZE} bytes`)
}

/** The canonical bytes without the MAC (what the MAC covers). */
export function encodeManifestBody(m: Manifest): Uint8Array {
  validateManifest(m)
  const e = m.encryption ?? undefined
  const chunks: Uint8Array[] = []
  const head = Buffer.alloc(12)
  MANIFEST_MAGIC.copy(head, 0)
  head[4] = MANIFEST_VERSION
  head[5] = (e ? FLAG_ENCRYPTED : 0) | (e?.bucketKey ? FLAG_BUCKET_KEY : 0)
  head.writeUInt32BE(m.packageSize, 6)
  head.writeUInt16BE(m.parts.length, 10)
  chunks.push(head)
  for (const p of m.parts) {
    const b = Buffer.alloc(10)
    b.writeUInt16BE(p.number, 0)
    b.writeBigUInt64BE(BigInt(p.size), 2)
    chunks.push(b)
    if (e) chunks.push(p.salt!)
  }
  if (e) {
    const keyId = Buffer.from(e.keyId, 'utf8')
    const a = Buffer.alloc(3)
    a[0] = ALGORITHMS[e.algorithm]
    a.writeUInt16BE(keyId.length, 1)
    const v = Buffer.alloc(6)
    v.writeUInt32BE(e.keyVersion, 0)
    v.writeUInt16BE(e.wrappedKey.length, 4)
    chunks.push(a, keyId, v, e.wrappedKey)
    if (e.bucketKey) chunks.push(e.keyNonce!)
    chunks.push(canonicalContext(e.context))
  }
  return Buffer.concat(chunks)
}

/** Canonical bytes of a manifest (docs/FORMAT.md, "Manifest"); an encrypted one must carry its MAC. */
export function encodeManifest(m: Manifest): Uint8Array {
  const body = encodeManifestBody(m)
  if (!m.encryption) return body
  if (!m.mac) throw bad('an encrypted manifest is encoded with its MAC (sealObject and completeUpload add it)')
  return Buffer.concat([body, m.mac])
}

/** Reads a manifest; anything malformed, non-canonical or trailing is S3SSE_BAD_MANIFEST. */
export function decodeManifest(bytes: Uint8Array): Manifest {
  if (!(bytes instanceof Uint8Array)) throw bad('not bytes')
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  let pos = 0
  const take = (n: number): Buffer => {
    if (pos + n > b.length) throw bad(`truncated at byte ${b.length} (needs ${pos + n})`)
    const out = b.subarray(pos, pos + n)
    pos += n
    return out
  }
  const copy = (n: number): Uint8Array => new Uint8Array(take(n))
  if (!take(4).equals(MANIFEST_MAGIC)) throw bad('bad magic')
  const version = take(1)[0]
  if (version !== MANIFEST_VERSION) throw bad(`version ${version}; this reads ${MANIFEST_VERSION}`)
  const flags = take(1)[0]
  if ((flags & ~(FLAG_ENCRYPTED | FLAG_BUCKET_KEY)) !== 0 || flags === FLAG_BUCKET_KEY) throw bad(`unknown flags 0x${flags.toString(16)}`)
  const encrypted = (flags & FLAG_ENCRYPTED) !== 0
  const packageSize = take(4).readUInt32BE(0)
  const count = take(2).readUInt16BE(0)
  const parts: ManifestPart[] = []
  let size = 0
  for (let i = 0; i < count; i++) {
    const number = take(2).readUInt16BE(0)
    const big = take(8).readBigUInt64BE(0)
    if (big > BigInt(Number.MAX_SAFE_INTEGER)) throw bad(`part ${number} is larger than 2^53-1 bytes`)
    const partSize = Number(big)
    size += partSize
    const part: ManifestPart = { number, size: partSize, storedSize: encrypted ? sealedStreamSize(partSize, Math.max(1, packageSize)) : partSize }
    if (encrypted) part.salt = copy(SALT_SIZE)
    parts.push(part)
  }
  const m: Manifest = { version: 1, packageSize, size, parts }
  if (encrypted) {
    const algorithmCode = take(1)[0]
    const algorithm = (Object.keys(ALGORITHMS) as Algorithm[]).find((a) => ALGORITHMS[a] === algorithmCode)
    if (!algorithm) throw bad(`unknown algorithm code ${algorithmCode}`)
    const keyIdBytes = take(take(2).readUInt16BE(0))
    const keyId = keyIdBytes.toString('utf8')
    if (!Buffer.from(keyId, 'utf8').equals(keyIdBytes)) throw bad('keyId is not UTF-8')
    const keyVersion = take(4).readUInt32BE(0)
    const wrappedKey = copy(take(2).readUInt16BE(0))
    const enc: ManifestEncryption = { algorithm, keyId, keyVersion, wrappedKey, context: {} }
    if (flags & FLAG_BUCKET_KEY) {
      enc.bucketKey = true
      enc.keyNonce = copy(KEY_NONCE_SIZE)
    }
    const start = pos
    const pairs = take(2).readUInt16BE(0)
    const context: Record<string, string> = Object.create(null)
    for (let i = 0; i < pairs; i++) {
      const k = take(take(2).readUInt16BE(0)).toString('utf8')
      const v = take(take(2).readUInt16BE(0)).toString('utf8')
      if (Object.prototype.hasOwnProperty.call(context, k)) throw bad('a context key appears twice')
      context[k] = v
    }
    enc.context = { ...context }
    // Canonical means one byte form per manifest: sorted pairs, valid UTF-8.
    let canonical: Uint8Array
    try {
      canonical = canonicalContext(enc.context)
    } catch (err) {
      throw bad(`context: ${(err as Error).message}`)
    }
    if (!b.subarray(start, pos).equals(canonical)) throw bad('the context is not in canonical form')
    m.encryption = enc
    m.mac = copy(MAC_SIZE)
  }
  if (pos !== b.length) throw bad(`${b.length - pos} bytes after the end`)
  validateManifest(m)
  return m
}

/** K_mac = HKDF-SHA256(data key, salt = empty, "s3-sse v1 manifest mac", 32): never a stream key. */
export function manifestMacKey(dataKey: Uint8Array): Uint8Array {
  return hkdfSha256(dataKey, new Uint8Array(0), MAC_KEY_INFO, KEY_SIZE)
}

function where(context: ObjectContext): Uint8Array {
  return canonicalContext({ bucket: context.bucket, key: context.key })
}

/** HMAC-SHA256(K_mac, "s3-sse v1 manifest" ‖ 0 ‖ canonical {bucket, key} ‖ body). */
export function manifestMac(macKey: Uint8Array, context: ObjectContext, m: Manifest): Uint8Array {
  return new Uint8Array(createHmac('sha256', macKey).update(MANIFEST_LABEL).update(where(context)).update(encodeManifestBody(m)).digest())
}

export function checkManifestMac(macKey: Uint8Array, context: ObjectContext, m: Manifest): void {
  const want = manifestMac(macKey, context, m)
  if (!m.mac || m.mac.length !== MAC_SIZE || !timingSafeEqual(want, m.mac)) {
    throw new S3sseError('S3SSE_MANIFEST_AUTH_FAILED', `the manifest of ${context.bucket}/${context.key} fails authentication: it was altered, or belongs to another object`)
  }
}

/** HMAC-SHA256(K_mac, "s3-sse v1 part" ‖ 0 ‖ canonical {bucket, key} ‖ u16 number ‖ u64 size ‖ salt). */
export function partMac(macKey: Uint8Array, context: ObjectContext, number: number, size: number, salt: Uint8Array): Uint8Array {
  const fields = Buffer.alloc(10)
  fields.writeUInt16BE(number, 0)
  fields.writeBigUInt64BE(BigInt(size), 2)
  return new Uint8Array(createHmac('sha256', macKey).update(PART_LABEL).update(where(context)).update(fields).update(salt).digest())
}

/** The data key of a bucket-key object: HKDF-SHA256(bucket key, keyNonce, "s3-sse v1 bucket object key", 32). */
export function bucketObjectKey(bucketKey: Uint8Array, keyNonce: Uint8Array): Uint8Array {
  return hkdfSha256(bucketKey, keyNonce, BUCKET_OBJECT_INFO, KEY_SIZE)
}
