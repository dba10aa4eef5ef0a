import { timingSafeEqual } from 'node:crypto'
import { S3sseError } from '../errors.js'
import { MAX_PACKAGE_SIZE, PACKAGE_SIZE, SALT_SIZE } from '../crypto/constants.js'
import { deriveStreamKey, newSalt } from '../crypto/kdf.js'
import { sealedStreamSize } from '../crypto/offsets.js'
import { sealStream } from '../crypto/stream.js'
import type { Kms } from '../keys/kms.js'
import { checkObjectContext, kmsContextOf, newObjectKey, objectEncryptionContext, recoverObjectKey, withKeyCreation, type EncryptionRequest, type KeyAccess } from './keys.js'
import {
  KEY_NONCE_SIZE, MAX_PARTS, manifestMac, manifestMacKey, partMac, validateManifest,
  type Algorithm, type Manifest, type ManifestEncryption, type ManifestPart, type ObjectContext,
} from './manifest.js'
import { prepareOpen, type OpenOptions, type ReadStored } from './open.js'

/** A stream to store and what it amounts to; `result()` is valid once the stream is consumed. */
export interface SealedOutput<T> {
  stream: AsyncIterable<Buffer>
  result(): T
}

function output<T>(run: (done: (t: T) => void) => AsyncGenerator<Buffer>): SealedOutput<T> {
  let value: T | undefined
  let finished = false
  const stream = run((t) => {
    value = t
    finished = true
  })
  return {
    stream,
    result(): T {
      if (!finished) throw new S3sseError('S3SSE_BAD_ARGUMENT', 'result() is valid only once the stream has been consumed to its end')
      return value as T
    },
  }
}

function checkPackageSize(packageSize: number | undefined): number {
  const p = packageSize ?? PACKAGE_SIZE
  if (!Number.isInteger(p) || p < 1 || p > MAX_PACKAGE_SIZE) {
    throw new S3sseError('S3SSE_BAD_PACKAGE_SIZE', `packageSize must be an integer from 1 to MAX_PACKAGE_SIZE = ${MAX_PACKAGE_SIZE}`)
  }
  return p
}

function checkPartNumber(n: number): void {
  if (!Number.isInteger(n) || n < 1 || n > MAX_PARTS) {
    throw new S3sseError('S3SSE_BAD_ARGUMENT', `a part number is an integer from 1 to ${MAX_PARTS}`)
  }
}

/** Counts the plaintext as it passes. */
async function* counted(source: AsyncIterable<Uint8Array>, count: { bytes: number }): AsyncGenerator<Uint8Array> {
  for await (const chunk of source) {
    if (!(chunk instanceof Uint8Array)) throw new S3sseError('S3SSE_BAD_ARGUMENT', 'the source must yield Uint8Arrays (Buffers), not strings')
    count.bytes += chunk.length
    yield chunk
  }
}

/**
 * One stream: plaintext through (plain) or sealed under the stream key of (dataKey, salt,
 * number). Calls `done(size)` after the last byte, and only then.
 */
async function* partStream(source: AsyncIterable<Uint8Array>, dataKey: Uint8Array | null, salt: Uint8Array | undefined,
  number: number, packageSize: number, done: (size: number) => void): AsyncGenerator<Buffer> {
  const count = { bytes: 0 }
  let stored = 0
  if (!dataKey) {
    for await (const chunk of counted(source, count)) {
      stored += chunk.length
      if (chunk.length > 0) yield Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
    }
  } else {
    const sk = deriveStreamKey(dataKey, salt!, number)
    try {
      for await (const out of sealStream(counted(source, count), sk, { packageSize })) {
        stored += out.length
        yield out
      }
    } finally {
      sk.wipe()
    }
  }
  const expected = dataKey ? sealedStreamSize(count.bytes, packageSize) : count.bytes
  if (stored !== expected) {
    throw new S3sseError('S3SSE_CRYPTO_FAILURE', `part ${number}: ${stored} bytes sealed where ${expected} were due`)
  }
  done(count.bytes)
}

/**
 * Seals a single-part object. The data key is fetched (one KMS call, or none with a bucket
 * key served from a CachedKms) before the promise resolves, so a KMS failure is a rejected
 * promise and no byte is written. The stream yields what to store; result() is the manifest.
 * As with Node streams, a chunk of `source` must not be changed after it has been yielded
 * (sealing reads it while the next one is pulled).
 */
export async function sealObject(source: AsyncIterable<Uint8Array>, opts: {
  context: ObjectContext; encryption?: EncryptionRequest | null; packageSize?: number
}): Promise<SealedOutput<Manifest>> {
  const packageSize = checkPackageSize(opts.packageSize)
  checkObjectContext(opts.context)
  const context = { bucket: opts.context.bucket, key: opts.context.key }
  if (!opts.encryption) {
    return output((done) => partStream(source, null, undefined, 1, packageSize, (size) => {
      done({ version: 1, packageSize, size, parts: [{ number: 1, size, storedSize: size }] })
    }))
  }
  const { header, dataKey } = await newObjectKey(opts.encryption, context)
  const salt = newSalt()
  return output((done) => (async function* () {
    try {
      yield* partStream(source, dataKey, salt, 1, packageSize, (size) => {
        const m: Manifest = {
          version: 1, packageSize, size,
          parts: [{ number: 1, size, storedSize: sealedStreamSize(size, packageSize), salt }],
          encryption: header,
        }
        m.mac = withMacKey(dataKey, (k) => manifestMac(k, context, m))
        done(m)
      })
    } finally {
      dataKey.fill(0)
    }
  })())
}

function withMacKey<T>(dataKey: Uint8Array, fn: (macKey: Uint8Array) => T): T {
  const k = manifestMacKey(dataKey)
  try {
    return fn(k)
  } finally {
    k.fill(0)
  }
}

// ---------------------------------------------------------------------------------------------
// Multipart uploads

/**
 * A multipart upload between requests: plain JSON (the server keeps it in SQLite). It holds
 * the wrapped data key, never the data key itself.
 */
export interface UploadState {
  version: 1
  context: ObjectContext
  packageSize: number
  encryption: null | {
    algorithm: Algorithm
    keyId: string
    keyVersion: number
    /** base64 */
    wrappedKey: string
    bucketKey: boolean
    /** base64, bucket-key uploads only */
    keyNonce?: string
    context: Record<string, string>
    /**
     * base64, SSE-C uploads only: the manifest MAC key (HKDF of the data key, section 6.3),
     * kept until the upload completes or is aborted, so Complete needs no customer key. It
     * authenticates but decrypts nothing; the data key stays derivable only from the key.
     */
    macKey?: string
  }
}

/**
 * One uploaded part: plain JSON. `salt` (base64) is fresh on every sealPart call, so sending
 * part n again never reuses a key/nonce pair. `mac` (base64) binds the record to its upload
 * and object, so a record that was altered in storage is refused at completion.
 */
export interface PartRecord {
  number: number
  size: number
  storedSize: number
  salt?: string
  mac?: string
}

/** Fixes the data key of a multipart upload (wrapped under the object's context). */
export async function startUpload(opts: { context: ObjectContext; encryption?: EncryptionRequest | null; packageSize?: number }): Promise<UploadState> {
  const packageSize = checkPackageSize(opts.packageSize)
  checkObjectContext(opts.context)
  const context = { bucket: opts.context.bucket, key: opts.context.key }
  if (!opts.encryption) return { version: 1, context, packageSize, encryption: null }
  const { header, dataKey } = await newObjectKey(opts.encryption, context)
  const macKey = header.algorithm === 'SSE-C' ? Buffer.from(manifestMacKey(dataKey)).toString('base64') : undefined
  dataKey.fill(0)
  return {
    version: 1, context, packageSize,
    encryption: {
      algorithm: header.algorithm,
      keyId: header.keyId,
      keyVersion: header.keyVersion,
      wrappedKey: Buffer.from(header.wrappedKey).toString('base64'),
      bucketKey: header.bucketKey === true,
      ...(header.keyNonce ? { keyNonce: Buffer.from(header.keyNonce).toString('base64') } : {}),
      context: header.context,
      ...(macKey !== undefined ? { macKey } : {}),
    },
  }
}

function badUpload(why: string): S3sseError {
  return new S3sseError('S3SSE_BAD_UPLOAD', `malformed upload state: ${why}`)
}

function fromBase64(s: unknown, size: number | null, what: string): Uint8Array {
  if (typeof s !== 'string') throw badUpload(`${what} is not base64 text`)
  const b = Buffer.from(s, 'base64')
  if ((size !== null && b.length !== size) || b.toString('base64') !== s) throw badUpload(`${what} is not ${size ?? 'valid'} bytes of base64`)
  return new Uint8Array(b)
}

/** The manifest header an upload state stands for (checked). */
function uploadHeader(u: UploadState): { context: ObjectContext; packageSize: number; header: ManifestEncryption | null } {
  if (!u || u.version !== 1) throw badUpload('unknown version')
  try {
    checkObjectContext(u.context)
    checkPackageSize(u.packageSize)
  } catch (e) {
    throw badUpload((e as Error).message)
  }
  const context = { bucket: u.context.bucket, key: u.context.key }
  const e = u.encryption
  if (!e) return { context, packageSize: u.packageSize, header: null }
  const header: ManifestEncryption = {
    algorithm: e.algorithm,
    keyId: e.keyId,
    keyVersion: e.keyVersion,
    wrappedKey: fromBase64(e.wrappedKey, null, 'wrappedKey'),
    ...(e.bucketKey ? { bucketKey: true, keyNonce: fromBase64(e.keyNonce, KEY_NONCE_SIZE, 'keyNonce') } : {}),
    context: { ...e.context },
  }
  // The same checks as a manifest's header, on a one-part stand-in.
  try {
    validateManifest({ version: 1, packageSize: u.packageSize, size: 0, parts: [{ number: 1, size: 0, storedSize: sealedStreamSize(0, u.packageSize), salt: new Uint8Array(SALT_SIZE) }], encryption: header })
  } catch (err) {
    throw badUpload((err as Error).message)
  }
  return { context, packageSize: u.packageSize, header }
}

/**
 * Seals one part of an upload under a fresh salt. The data key is recovered from the KMS
 * (a CachedKms answers from memory after the first part) before the promise resolves.
 */
export async function sealPart(upload: UploadState, opts: KeyAccess, partNumber: number, source: AsyncIterable<Uint8Array>): Promise<SealedOutput<PartRecord>> {
  const { context, packageSize, header } = uploadHeader(upload)
  checkPartNumber(partNumber)
  if (!header) {
    return output((done) => partStream(source, null, undefined, partNumber, packageSize, (size) => done({ number: partNumber, size, storedSize: size })))
  }
  const dataKey = await recoverObjectKey(header, opts, context)
  const salt = newSalt()
  return output((done) => (async function* () {
    try {
      yield* partStream(source, dataKey, salt, partNumber, packageSize, (size) => {
        const mac = withMacKey(dataKey, (k) => partMac(k, context, partNumber, size, salt))
        done({
          number: partNumber, size, storedSize: sealedStreamSize(size, packageSize),
          salt: Buffer.from(salt).toString('base64'), mac: Buffer.from(mac).toString('base64'),
        })
      })
    } finally {
      dataKey.fill(0)
    }
  })())
}

/**
 * The manifest of a finished upload: the chosen parts, in rising part-number order (S3
 * CompleteMultipartUpload, InvalidPartOrder otherwise), as they were stored: nothing is
 * re-encrypted. Parts left out are simply not part of the object.
 */
export async function completeUpload(upload: UploadState, opts: KeyAccess, parts: PartRecord[]): Promise<Manifest> {
  const { context, packageSize, header } = uploadHeader(upload)
  if (!Array.isArray(parts) || parts.length === 0) throw new S3sseError('S3SSE_BAD_ARGUMENT', 'an upload completes with at least one part')
  if (parts.length > MAX_PARTS) throw new S3sseError('S3SSE_BAD_ARGUMENT', `an upload has at most ${MAX_PARTS} parts`)
  let previous = 0
  for (const p of parts) {
    if (!p || !Number.isInteger(p.number)) throw new S3sseError('S3SSE_BAD_ARGUMENT', 'a part record has no number')
    checkPartNumber(p.number)
    if (p.number <= previous) throw new S3sseError('S3SSE_BAD_PART_ORDER', `part ${p.number} follows part ${previous}: parts are listed in rising order`)
    previous = p.number
    if (!Number.isSafeInteger(p.size) || p.size < 0) throw new S3sseError('S3SSE_BAD_ARGUMENT', `part ${p.number} has an invalid size`)
    const stored = header ? sealedStreamSize(p.size, packageSize) : p.size
    if (p.storedSize !== stored) throw new S3sseError('S3SSE_PART_AUTH_FAILED', `part ${p.number} claims ${p.storedSize} stored bytes; its size means ${stored}`)
  }
  const manifestParts: ManifestPart[] = parts.map((p) => ({ number: p.number, size: p.size, storedSize: p.storedSize }))
  const size = parts.reduce((a, p) => a + p.size, 0)
  if (!header) {
    if (parts.some((p) => p.salt !== undefined || p.mac !== undefined)) {
      throw new S3sseError('S3SSE_PART_AUTH_FAILED', 'a part of a plaintext upload carries a salt: it comes from another upload')
    }
    return { version: 1, packageSize, size, parts: manifestParts }
  }
  // An SSE-C upload completes without the customer key (clients do not send it to
  // CompleteMultipartUpload): the manifest MAC key it kept since CreateMultipartUpload serves.
  const stashed = header.algorithm === 'SSE-C' && !opts?.customerKey ? upload.encryption?.macKey : undefined
  let macKey: Uint8Array
  if (stashed !== undefined) macKey = fromBase64(stashed, 32, 'macKey')
  else {
    const dataKey = await recoverObjectKey(header, opts, context)
    macKey = manifestMacKey(dataKey)
    dataKey.fill(0)
  }
  const sign = (macKey: Uint8Array) => {
    parts.forEach((p, i) => {
      let salt: Uint8Array
      let mac: Uint8Array
      try {
        salt = fromBase64(p.salt, SALT_SIZE, 'salt')
        mac = fromBase64(p.mac, 32, 'mac')
      } catch {
        throw new S3sseError('S3SSE_PART_AUTH_FAILED', `part ${p.number} has no valid salt and MAC: it was not sealed by this upload`)
      }
      if (!timingSafeEqual(partMac(macKey, context, p.number, p.size, salt), mac)) {
        throw new S3sseError('S3SSE_PART_AUTH_FAILED', `part ${p.number} fails authentication: it was altered or belongs to another upload`)
      }
      manifestParts[i].salt = salt
    })
    const m: Manifest = { version: 1, packageSize, size, parts: manifestParts, encryption: header }
    m.mac = manifestMac(macKey, context, m)
    return m
  }
  try {
    return sign(macKey)
  } finally {
    macKey.fill(0)
  }
}

/**
 * UploadPartCopy: plaintext bytes [srcRange.start, srcRange.end] (inclusive, as in
 * x-amz-copy-source-range) of the source object, sealed as part `partNumber` of the upload.
 * Only the source packages covering the range are read and opened. The source manifest and
 * both keys are checked before the promise resolves. {start: 0, end: -1} copies an empty source.
 * `onPlaintext` sees the copied plaintext as it is sealed (the part's digests: MD5, checksums).
 */
export async function copyPartRange(src: Manifest, srcOpts: OpenOptions, srcRange: { start: number; end: number }, readSrc: ReadStored,
  upload: UploadState, opts: KeyAccess, partNumber: number, onPlaintext?: (chunk: Buffer) => void): Promise<SealedOutput<PartRecord>> {
  const opened = await prepareOpen(src, srcOpts)
  try {
    const empty = src.size === 0 && srcRange?.start === 0 && srcRange?.end === -1
    if (!empty && !(Number.isSafeInteger(srcRange?.start) && Number.isSafeInteger(srcRange?.end) && srcRange.start >= 0 && srcRange.start <= srcRange.end && srcRange.end < src.size)) {
      throw new S3sseError('S3SSE_BAD_RANGE', `copy range ${srcRange?.start}-${srcRange?.end} is outside the ${src.size}-byte source`)
    }
    const plain = empty ? opened.whole(readSrc) : opened.range(srcRange.start, srcRange.end, readSrc)
    return await sealPart(upload, opts, partNumber, onPlaintext ? observed(plain, onPlaintext) : plain)
  } catch (e) {
    opened.dispose()
    throw e
  }
}

async function* observed(source: AsyncIterable<Buffer>, see: (chunk: Buffer) => void): AsyncGenerator<Buffer> {
  for await (const chunk of source) {
    see(chunk)
    yield chunk
  }
}

/**
 * Re-wraps an object's data key for another name (CopyObject, rename) and/or the current
 * version of a key (rotation), without touching the stored data: one KMS call. The manifest
 * is checked under `from` first and comes back authenticated for `to`.
 *
 * An object written under a bucket key comes back as an ordinary one: its derived data key is
 * wrapped on its own (KMS encrypt) under the new context, so the source bucket's key is never
 * shared with the destination. `extraContext` replaces the extra pairs and `algorithm` the
 * algorithm (additions to the contract, for aws-mode CopyObject); `createKey` creates `keyId` by
 * alias when it does not exist yet, as a new object's write would. A plaintext manifest is
 * returned as it is: there is nothing to wrap (to change whether an object is encrypted, copy
 * its bytes through openObject and sealObject).
 *
 * With `toKms` the data key moves to another KMS (the embedded keyring → AWS KMS or an HSM):
 * `kms` unwraps it, `toKms` wraps it with Encrypt under `keyId` (required then). The sealed
 * data is not touched.
 */
export async function rewrap(m: Manifest, opts: {
  kms: Kms; from: ObjectContext; to: ObjectContext; keyId?: string; extraContext?: Record<string, string>; algorithm?: Algorithm; createKey?: boolean; toKms?: Kms
}): Promise<Manifest> {
  if (opts.toKms && !opts.keyId) throw new S3sseError('S3SSE_BAD_ARGUMENT', 'rewrap into another KMS needs the keyId to wrap under there')
  const opened = await prepareOpen(m, { context: opts.from, kms: opts.kms })
  const dataKey = opened.dataKey
  try {
    checkObjectContext(opts.to)
    const to = { bucket: opts.to.bucket, key: opts.to.key }
    const parts = m.parts.map((p) => ({ ...p, ...(p.salt ? { salt: new Uint8Array(p.salt) } : {}) }))
    if (!m.encryption || !dataKey) return { version: 1, packageSize: m.packageSize, size: m.size, parts }
    const e = m.encryption
    const { bucket: _b, key: _k, ...oldExtra } = e.context
    const context = objectEncryptionContext(to, opts.extraContext ?? oldExtra)
    const kms = opts.kms
    const create = opts.createKey === true && opts.keyId !== undefined
    const target = opts.toKms
    const wrapped = target
      ? await withKeyCreation(target, opts.keyId!, create, 'Encrypt', () => target.encrypt(opts.keyId!, dataKey, context))
      : e.bucketKey
      ? await withKeyCreation(kms, opts.keyId ?? e.keyId, create, 'Encrypt', () => kms.encrypt(opts.keyId ?? e.keyId, dataKey, context))
      : await withKeyCreation(kms, opts.keyId ?? e.keyId, create, 'ReEncrypt', () => kms.reEncrypt(e.wrappedKey, kmsContextOf(e), context, opts.keyId))
    const out: Manifest = {
      version: 1, packageSize: m.packageSize, size: m.size, parts,
      encryption: { algorithm: opts.algorithm ?? e.algorithm, keyId: wrapped.keyId, keyVersion: wrapped.keyVersion, wrappedKey: wrapped.wrapped, context },
    }
    out.mac = withMacKey(dataKey, (k) => manifestMac(k, to, out))
    return out
  } finally {
    opened.dispose()
  }
}
