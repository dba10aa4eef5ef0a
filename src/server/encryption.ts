/**
 * Where the server applies bucket default encryption (the rules themselves are pure, in
 * src/s3/sse.ts):
 *
 * - `encryptionFor`: the one place a write (PutObject, CopyObject, PostObject,
 *   CreateMultipartUpload) decides whether and how to encrypt; UploadPart and UploadPartCopy
 *   inherit their upload's.
 * - `enforceTransport`: the one place that refuses encrypted data over plain HTTP or
 *   without SigV4, for every operation that moves it.
 * - the bucket's configuration, kept in the bucket's settings.
 */
import { isS3sseError, S3sseError } from '../errors.js'
import { kmsCall } from '../keys/kms.js'
import { canAccess } from './auth/index.js'
import { s3Error } from '../s3/errors.js'
import {
  AWS_MANAGED_KEY_ALIAS,
  checkTransport,
  decideWriteEncryption,
  kmsKeyRef,
  sseRequestHeaders,
  type BucketEncryption,
  type EncryptionDecision,
  type StoredEncryption,
} from '../s3/sse.js'
import { parseCopySource } from '../s3/objects.js'
import type { BucketRow } from './db.js'
import { header, type RequestContext } from './http.js'
import type { Operation } from './router.js'
import type { ServerState } from './state.js'
import type { EncryptionRequest, KmsAccess, Manifest } from './store.js'

export { sseResponseHeaders } from '../s3/sse.js'

type HeaderSource = Record<string, string | string[] | undefined>

/** A bucket's default encryption, or null when it has none. */
export function bucketEncryption(bucket: BucketRow): BucketEncryption | null {
  const e = bucket.settings.encryption as BucketEncryption | undefined
  return e ?? null
}

/**
 * Sets (or, with null, removes) a bucket's default encryption: PutBucketEncryption,
 * DeleteBucketEncryption and the web console all come here. In aws mode a named KMS key
 * must exist and be enabled now, not fail every write later.
 */
export async function setBucketEncryption(state: ServerState, bucket: BucketRow, config: BucketEncryption | null): Promise<void> {
  if (config?.kmsMasterKeyId !== undefined) {
    const ref = kmsKeyRef(config.kmsMasterKeyId)
    if (ref !== AWS_MANAGED_KEY_ALIAS) {
      try {
        const info = await state.kms.describeKey(ref)
        if (!info.enabled) throw s3Error('InvalidArgument', `The KMS key ${config.kmsMasterKeyId} is disabled.`)
      } catch (err) {
        if (isS3sseError(err, 'S3SSE_KMS_KEY_NOT_FOUND')) {
          throw s3Error('InvalidArgument', `The KMS key ${config.kmsMasterKeyId} named by KMSMasterKeyID does not exist.`)
        }
        throw err
      }
    }
  }
  // Read-modify-write in one transaction: `bucket` was read before the awaits above, and a
  // concurrent change to another setting (replication) must survive.
  state.meta.updateBucketSettings(bucket.name, (settings) => {
    if (config) settings.encryption = config
    else delete settings.encryption
  })
}

/**
 * The encryption of a write into `bucket`, from the bucket's setting now and (aws mode) the
 * request's SSE headers — or a PostObject's form fields, given as `source`.
 */
export function encryptionFor(ctx: RequestContext, bucket: BucketRow, source: HeaderSource = ctx.req.headers): EncryptionRequest | null {
  const decision = decideWriteEncryption({
    mode: ctx.state.config.mode,
    bucket: bucket.name,
    bucketDefault: bucketEncryption(bucket),
    headers: sseRequestHeaders(source),
  })
  return encryptionRequest(ctx.state, decision)
}

/** What the object layer needs to carry out an encryption decision (null: plaintext). */
export function encryptionRequest(state: ServerState, decision: EncryptionDecision | null): EncryptionRequest | null {
  if (!decision) return null
  return {
    algorithm: decision.algorithm,
    kms: state.kms,
    keyId: decision.keyId,
    createKey: decision.createKey,
    bucketKey: decision.bucketKey,
    ...(decision.extraContext ? { extraContext: decision.extraContext } : {}),
  }
}

/**
 * Before a write that re-wraps an existing data key (CopyObject encrypted → encrypted): the
 * destination key exists — created now if it is one made on first use; if the writer named
 * it and it does not exist, S3SSE_KMS_NAMED_KEY_NOT_FOUND (the client's mistake, not a loss).
 */
export async function ensureWriteKey(e: EncryptionRequest): Promise<void> {
  if (e.createKey) {
    await kmsCall('CreateKey', () => e.kms.ensureKey(e.keyId))
    return
  }
  try {
    await kmsCall('DescribeKey', () => e.kms.describeKey(e.keyId))
  } catch (err) {
    if (isS3sseError(err, 'S3SSE_KMS_KEY_NOT_FOUND')) {
      throw new S3sseError('S3SSE_KMS_NAMED_KEY_NOT_FOUND', `the KMS key ${e.keyId} named for this write does not exist`, { cause: err })
    }
    throw err
  }
}

/** The stored form of a write's encryption (what its responses report). */
export function storedEncryption(e: EncryptionRequest | null): StoredEncryption | undefined {
  return e ? { algorithm: e.algorithm, keyId: e.keyId, bucketKey: e.bucketKey } : undefined
}

/** How a stored object is encrypted, from its manifest. */
export function manifestEncryption(m: Manifest): StoredEncryption | undefined {
  const e = m.encryption
  return e ? { algorithm: e.algorithm, keyId: e.keyId, bucketKey: e.bucketKey } : undefined
}

/** The KMS access the object layer needs to read or extend what was written. */
export function kmsAccess(ctx: RequestContext): KmsAccess {
  return ctx.state.kms === undefined ? {} : { kms: ctx.state.kms }
}

const isKms = (e: StoredEncryption | BucketEncryption | EncryptionRequest | null | undefined) => e?.algorithm === 'aws:kms'

/** The source object of a copy, if the request names one that exists in a bucket the caller may read. */
function copySourceEncryption(ctx: RequestContext): StoredEncryption | undefined {
  const raw = header(ctx, 'x-amz-copy-source')
  if (raw === undefined) return undefined
  try {
    const src = parseCopySource(raw)
    const bucket = ctx.state.meta.getBucket(src.bucket)
    if (!bucket || !canAccess(ctx.user, bucket)) return undefined
    return ctx.state.meta.getObject(src.bucket, src.key)?.encryption
  } catch {
    return undefined
  }
}

/**
 * Whether a request uploads or downloads data of an SSE-KMS object: written into one
 * (the decision for its bucket and headers), part of an encrypted upload, or read or copied
 * from one. Looks only at metadata the caller is authorised to see: a bucket they may not
 * use counts as carrying nothing, so its handler answers AccessDenied and no rule here tells
 * an outsider whether an object exists or is encrypted. Other errors (no such bucket, bad
 * headers) are left to the handler, which reports them properly.
 */
export function carriesKmsData(ctx: RequestContext, op: Operation): boolean {
  const meta = ctx.state.meta
  const bucket = meta.getBucket(ctx.bucket)
  if (!bucket || !canAccess(ctx.user, bucket)) return false
  const writeIsKms = () => {
    try {
      return isKms(encryptionFor(ctx, bucket))
    } catch {
      return false
    }
  }
  const uploadIsKms = () => {
    const upload = meta.getUpload(ctx.query.get('uploadId') ?? '')
    return upload?.bucket === bucket.name && isKms(upload.encryption)
  }
  switch (op) {
    case 'PutObject':
    case 'CreateMultipartUpload':
      return writeIsKms()
    case 'CopyObject':
      return writeIsKms() || isKms(copySourceEncryption(ctx))
    case 'UploadPart':
      return uploadIsKms()
    case 'UploadPartCopy':
      return uploadIsKms() || isKms(copySourceEncryption(ctx))
    case 'GetObject':
      return isKms(meta.getObject(bucket.name, ctx.key)?.encryption)
    default:
      return false
  }
}

/**
 * Refuses a request that moves SSE-KMS data over plain HTTP or without SigV4 (400, S3's
 * messages). Called only after the request is authenticated (ctx.user set).
 */
export function enforceTransport(ctx: RequestContext, op: Operation): void {
  checkTransport({ carriesKmsData: carriesKmsData(ctx, op), secure: ctx.secure, sigV4: ctx.signatureVersion === 4 })
}
