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
import type { EncryptionRequest } from '../object/index.js'
import { s3Error } from '../s3/errors.js'
import {
  AWS_MANAGED_KEY_ALIAS,
  checkTransport,
  decideWriteEncryption,
  kmsKeyRef,
  sseRequestHeaders,
  SSE_C_MESSAGES,
  type BucketEncryption,
  type CustomerKey,
  type EncryptionDecision,
  type StoredEncryption,
} from '../s3/sse.js'
import { parseCopySource } from '../s3/objects.js'
import type { BucketRow } from './meta/index.js'
import type { Operation } from './router.js'
import type { KmsAccess } from './sealed.js'
import type { ServerState } from './state.js'

export { sseResponseHeaders, storedEncryption } from '../s3/sse.js'

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
  await state.meta.updateBucketSettings(bucket.name, (settings) => {
    if (config) settings.encryption = config
    else delete settings.encryption
  })
}

/**
 * The encryption of a write into `bucket`, from the bucket's setting now and (aws mode) the
 * request's SSE headers — or a PostObject's form fields, given as `headers`.
 */
export function encryptionFor(state: ServerState, bucket: BucketRow, headers: HeaderSource): WriteEncryption | null {
  const decision = decideWriteEncryption({
    mode: state.config.mode,
    bucket: bucket.name,
    bucketDefault: bucketEncryption(bucket),
    headers: sseRequestHeaders(headers),
  })
  return encryptionRequest(state, decision)
}

/**
 * What the object layer needs to carry out an encryption decision (null: plaintext), and how
 * the write named its KMS key (`keyName`, which responses report; the object layer ignores it).
 */
export type WriteEncryption = EncryptionRequest & { keyName?: string; customer?: CustomerKey }

export function encryptionRequest(state: ServerState, decision: EncryptionDecision | null): WriteEncryption | null {
  if (!decision) return null
  return {
    ...(decision.keyName !== undefined ? { keyName: decision.keyName } : {}),
    ...(decision.customerKey ? { customer: decision.customerKey, customerKey: decision.customerKey.key } : {}),
    algorithm: decision.algorithm,
    kms: state.kms,
    keyId: decision.keyId,
    createKey: decision.createKey,
    bucketKey: decision.bucketKey,
    ...(decision.extraContext ? { extraContext: decision.extraContext } : {}),
  }
}

/**
 * Before a write that re-wraps an existing data key (CopyObject encrypted → encrypted) under
 * a key the writer named: that key must exist, or the write fails with
 * S3SSE_KMS_NAMED_KEY_NOT_FOUND (the client's mistake, S3's 400 KMS.NotFoundException) —
 * not as a stored object whose key is lost. Keys made on first use need no check.
 */
export async function checkNamedKey(e: EncryptionRequest): Promise<void> {
  if (e.createKey) return
  try {
    await kmsCall('DescribeKey', () => e.kms.describeKey(e.keyId))
  } catch (err) {
    if (isS3sseError(err, 'S3SSE_KMS_KEY_NOT_FOUND')) {
      throw new S3sseError('S3SSE_KMS_NAMED_KEY_NOT_FOUND', `the KMS key ${e.keyId} named for this write does not exist`, { cause: err })
    }
    throw err
  }
}

/** The KMS access the object layer needs to read or extend what was written. */
export function kmsAccess(state: ServerState): KmsAccess {
  return { kms: state.kms }
}

const isKms = (e: StoredEncryption | BucketEncryption | EncryptionRequest | null | undefined) => e?.algorithm === 'aws:kms'

/** What the transport rule looks at in a request: its operation, names and headers. */
export interface TransportRequest {
  op: Operation
  bucket: string
  key: string
  uploadId?: string
  headers: HeaderSource
  /**
   * Whether the authenticated caller may use a bucket. The rule looks only at buckets they
   * may: anything else counts as carrying nothing, so the handler answers AccessDenied and an
   * outsider never learns whether an object exists or is encrypted.
   */
  mayUse: (bucket: BucketRow) => boolean
}

function one(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v.join(',') : v
}

/** The source object of a copy, if the request names one that exists in a bucket the caller may use. */
async function copySourceEncryption(state: ServerState, raw: string | undefined, mayUse: (bucket: BucketRow) => boolean): Promise<StoredEncryption | undefined> {
  if (raw === undefined) return undefined
  let src
  try {
    src = parseCopySource(raw)
  } catch {
    return undefined
  }
  const bucket = await state.meta.getBucket(src.bucket)
  if (!bucket || !mayUse(bucket)) return undefined
  return (await state.meta.getObject(src.bucket, src.key))?.encryption
}

/**
 * Whether a request uploads or downloads data of an SSE-KMS object: written into one
 * (the decision for its bucket and headers), part of an encrypted upload, or read or copied
 * from one. Looks only at metadata the caller is authorised to see (req.mayUse); errors (no
 * such bucket, bad headers) are left to the handler, which reports them properly.
 */
export async function carriesKmsData(state: ServerState, req: TransportRequest): Promise<boolean> {
  const meta = state.meta
  const bucket = await meta.getBucket(req.bucket)
  if (!bucket || !req.mayUse(bucket)) return false
  const writeIsKms = () => {
    try {
      return isKms(encryptionFor(state, bucket, req.headers))
    } catch {
      return false
    }
  }
  const uploadIsKms = async () => {
    const upload = await meta.getUpload(req.uploadId ?? '')
    return upload?.bucket === bucket.name && isKms(upload.encryption)
  }
  const copySource = () => copySourceEncryption(state, one(req.headers['x-amz-copy-source']), req.mayUse)
  switch (req.op) {
    case 'PutObject':
    case 'CreateMultipartUpload':
      return writeIsKms()
    case 'CopyObject':
      return writeIsKms() || isKms(await copySource())
    case 'UploadPart':
      return uploadIsKms()
    case 'UploadPartCopy':
      return (await uploadIsKms()) || isKms(await copySource())
    case 'GetObject':
      return isKms((await meta.getObject(bucket.name, req.key))?.encryption)
    default:
      return false
  }
}

/**
 * Refuses a request that moves SSE-KMS data over plain HTTP or without SigV4 (400, S3's
 * messages). Called only once the request is authenticated (server.ts), with `sigV4` the
 * version it was authenticated with.
 */
export async function enforceTransport(state: ServerState, req: TransportRequest, how: { secure: boolean; sigV4: boolean }): Promise<void> {
  checkTransport({ carriesKmsData: await carriesKmsData(state, req), secure: how.secure, sigV4: how.sigV4 })
  // A customer key (SSE-C, aws mode) travels only over TLS, for the object or a copy's source.
  if (!how.secure && state.config.mode === 'aws') {
    const names = Object.keys(req.headers)
    if (names.some((n) => n.startsWith('x-amz-server-side-encryption-customer-') || n.startsWith('x-amz-copy-source-server-side-encryption-customer-'))) {
      throw s3Error('InvalidRequest', SSE_C_MESSAGES.insecure)
    }
  }
}
