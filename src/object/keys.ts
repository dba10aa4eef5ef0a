import { randomBytes } from 'node:crypto'
import { S3sseError, isS3sseError } from '../errors.js'
import { hasBucketKeys, kmsCall, type DataKey, type Kms } from '../keys/kms.js'
import { CUSTOMER_KEY_FIELD_SIZE, CUSTOMER_KEY_ID, KEY_NONCE_SIZE, bucketObjectKey, type Algorithm, type ManifestEncryption, type ObjectContext } from './manifest.js'
import { customerDataKey, newCustomerDataKey } from './customer-key.js'

/** How to encrypt a new object; null/undefined stores it as plaintext. */
export interface EncryptionRequest {
  algorithm: Algorithm
  /** The KMS of aws:kms and AES256 (unused by SSE-C). */
  kms: Kms
  /** SSE-C: the customer's 32-byte key (never stored; docs/FORMAT.md 7.6). */
  customerKey?: Uint8Array
  /** Key id or alias (oss mode: the bucket's service key alias). */
  keyId: string
  /** Create the key by alias on first use (KMS ensureKey), then retry. */
  createKey?: boolean
  /** Derive the data key from a bucket key (cheap with a CachedKms). */
  bucketKey?: boolean
  /** aws mode: x-amz-server-side-encryption-context pairs; may not name `bucket` or `key`. */
  extraContext?: Record<string, string>
}

/** What reading or extending an encrypted object takes: the KMS, or an SSE-C object's customer key. */
export interface KeyAccess {
  kms?: Kms
  customerKey?: Uint8Array
}

export function checkObjectContext(context: ObjectContext): void {
  if (!context || typeof context.bucket !== 'string' || typeof context.key !== 'string' || context.bucket === '' || context.key === '') {
    throw new S3sseError('S3SSE_BAD_ARGUMENT', 'an object context is { bucket, key }, both non-empty strings')
  }
}

/** The full encryption context of an object: { bucket, key } and the extra pairs. */
export function objectEncryptionContext(context: ObjectContext, extra?: Record<string, string>): Record<string, string> {
  checkObjectContext(context)
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(extra ?? {})) {
    if (k === 'bucket' || k === 'key') {
      throw new S3sseError('S3SSE_BAD_ARGUMENT', `the extra encryption context may not set "${k}": s3-sse binds it to the object itself`)
    }
    if (typeof v !== 'string') throw new S3sseError('S3SSE_BAD_ARGUMENT', `extra encryption context value of "${k}" is not a string`)
    out[k] = v
  }
  out.bucket = context.bucket
  out.key = context.key
  return out
}

/** What the KMS binds the wrapped key to: the object's context, or without `key` for a bucket key. */
export function kmsContextOf(e: Pick<ManifestEncryption, 'bucketKey' | 'context'>): Record<string, string> {
  if (!e.bucketKey) return { ...e.context }
  const { key: _key, ...rest } = e.context
  return rest
}

/**
 * A new object's data key and the manifest header that recovers it. Every KMS call happens
 * here, before a single byte is sealed: a KMS failure surfaces as a rejected promise, with
 * nothing written.
 */
export async function newObjectKey(req: EncryptionRequest, context: ObjectContext): Promise<{ header: ManifestEncryption; dataKey: Uint8Array }> {
  if (!req || (req.algorithm !== 'aws:kms' && req.algorithm !== 'AES256' && req.algorithm !== 'SSE-C')) {
    throw new S3sseError('S3SSE_BAD_ARGUMENT', 'encryption.algorithm is "aws:kms", "AES256" or "SSE-C"')
  }
  if (req.algorithm === 'SSE-C') {
    if (!req.customerKey) throw new S3sseError('S3SSE_BAD_ARGUMENT', 'SSE-C needs encryption.customerKey')
    const { dataKey, record } = newCustomerDataKey(req.customerKey)
    const wrappedKey = new Uint8Array(CUSTOMER_KEY_FIELD_SIZE)
    wrappedKey.set(record.salt, 0)
    wrappedKey.set(record.check, record.salt.length)
    return { header: { algorithm: 'SSE-C', keyId: CUSTOMER_KEY_ID, keyVersion: 0, wrappedKey, context: objectEncryptionContext(context, req.extraContext) }, dataKey }
  }
  if (!req.kms) throw new S3sseError('S3SSE_BAD_ARGUMENT', 'encryption.kms is required')
  if (typeof req.keyId !== 'string' || req.keyId === '') throw new S3sseError('S3SSE_BAD_ARGUMENT', 'encryption.keyId is required')
  const objectContext = objectEncryptionContext(context, req.extraContext)
  const kms = req.kms
  if (!req.bucketKey) {
    const dk = await withCreate(req, () => kms.generateDataKey(req.keyId, objectContext))
    return {
      header: { algorithm: req.algorithm, keyId: dk.keyId, keyVersion: dk.keyVersion, wrappedKey: dk.wrapped, context: objectContext },
      dataKey: dk.plaintext,
    }
  }
  const header = { bucketKey: true, context: objectContext }
  const kmsContext = kmsContextOf(header)
  const bk = await withCreate(req, () => hasBucketKeys(kms) ? kms.bucketKey(req.keyId, kmsContext) : kms.generateDataKey(req.keyId, kmsContext))
  const keyNonce = new Uint8Array(randomBytes(KEY_NONCE_SIZE))
  const dataKey = bucketObjectKey(bk.plaintext, keyNonce)
  bk.plaintext.fill(0)
  return {
    header: { algorithm: req.algorithm, keyId: bk.keyId, keyVersion: bk.keyVersion, wrappedKey: bk.wrapped, bucketKey: true, keyNonce, context: objectContext },
    dataKey,
  }
}

async function withCreate(req: EncryptionRequest, call: () => Promise<DataKey>): Promise<DataKey> {
  try {
    return await withKeyCreation(req.kms, req.keyId, req.createKey === true, 'GenerateDataKey', call)
  } catch (e) {
    // A key the writer named (not one made on first use) that is not there: its mistake.
    if (!req.createKey && isS3sseError(e, 'S3SSE_KMS_KEY_NOT_FOUND')) {
      throw new S3sseError('S3SSE_KMS_NAMED_KEY_NOT_FOUND', `the KMS key ${req.keyId} named for this write does not exist`, { cause: e })
    }
    throw e
  }
}

/**
 * Runs a KMS call that names `keyId`. With `createKey` (a bucket's service key, made on the
 * bucket's first encrypted write), a key not found is created by alias and the call tried
 * once more: the one place that rule lives, for new objects, uploads and rewraps alike.
 */
export async function withKeyCreation<T>(kms: Kms, keyId: string, createKey: boolean, what: string, call: () => Promise<T>): Promise<T> {
  try {
    return await kmsCall(what, call)
  } catch (e) {
    if (!createKey || !isS3sseError(e, 'S3SSE_KMS_KEY_NOT_FOUND')) throw e
  }
  await kmsCall('CreateKey', () => kms.ensureKey(keyId))
  return kmsCall(what, call)
}

/**
 * The data key of a stored object or upload. The object must be read under the context it
 * was written for; a manifest or upload moved to another name without rewrap fails here
 * with S3SSE_KMS_CONTEXT_MISMATCH before the KMS is asked.
 */
export async function recoverObjectKey(e: ManifestEncryption, access: KeyAccess | undefined, context: ObjectContext): Promise<Uint8Array> {
  if (e.context.bucket !== context.bucket || e.context.key !== context.key) {
    throw new S3sseError('S3SSE_KMS_CONTEXT_MISMATCH', `the data key was wrapped for another object than ${context.bucket}/${context.key}`)
  }
  if (e.algorithm === 'SSE-C') {
    if (!access?.customerKey) throw new S3sseError('S3SSE_CUSTOMER_KEY_MISSING', `${context.bucket}/${context.key} was written with a customer-provided key: it is needed to read it`)
    return customerDataKey(access.customerKey, { salt: e.wrappedKey.subarray(0, 32), check: e.wrappedKey.subarray(32, CUSTOMER_KEY_FIELD_SIZE) })
  }
  const kms = access?.kms
  if (!kms) throw new S3sseError('S3SSE_BAD_ARGUMENT', `${context.bucket}/${context.key} is encrypted: a KMS is required to read it`)
  const raw = await kmsCall('Decrypt', () => kms.decrypt(e.wrappedKey, kmsContextOf(e)))
  if (!e.bucketKey) return raw
  const key = bucketObjectKey(raw, e.keyNonce!)
  raw.fill(0)
  return key
}
