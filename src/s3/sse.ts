/**
 * Server-side encryption semantics, as pure decisions the handlers call (DESIGN.md, "The
 * behaviour it must have"; S3 API reference: PutBucketEncryption, "Specifying server-side
 * encryption with AWS KMS (SSE-KMS)", "Using SSE-S3").
 *
 * Two modes:
 * - `oss` (default, the product brief): only bucket default encryption with aws:kms under
 *   the bucket's service key; request SSE headers change nothing.
 * - `aws` (Amazon S3): AES256 and aws:kms with named keys, request headers override the
 *   bucket default.
 *
 * Errors are S3sseError whose code is the S3 error code (the server's one error table maps
 * them to status and XML).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { XMLBuilder } from 'fast-xml-parser'
import { elements, malformed, optionalText, parseConfigDocument, single, text } from './config-xml.js'
import { S3sseError } from '../errors.js'
import { parseKeyRef } from '../keys/kms.js'

export type ServerMode = 'oss' | 'aws'
export type SseAlgorithm = 'aws:kms' | 'AES256'

export const SSE_ALGORITHMS: readonly SseAlgorithm[] = ['aws:kms', 'AES256']
/** How a stored object can be encrypted: the SSE algorithms, or SSE-C (a customer-provided key, aws mode). */
export type StoredAlgorithm = SseAlgorithm | 'SSE-C'
/** The key id SSE-C objects record (there is no KMS key). */
export const SSE_C_KEY_ID = 'sse-c'

/** A bucket's default-encryption setting (one rule, as S3 allows). */
export interface BucketEncryption {
  algorithm: SseAlgorithm
  /** aws mode only: the KMS key (id, ARN or alias) named in the configuration. */
  kmsMasterKeyId?: string
  bucketKeyEnabled: boolean
}

/** The encryption a write gets. null from the decision means: stored as plaintext. */
export interface EncryptionDecision {
  algorithm: StoredAlgorithm
  /** SSE-C: the request's customer key (checked: AES256, 32 bytes, matching MD5). */
  customerKey?: CustomerKey
  /** KMS key id or alias the data key comes from. */
  keyId: string
  /**
   * aws mode, aws:kms: the key as the request or the bucket configuration named it (NAME,
   * alias/NAME, key id or ARN), which responses report; `alias/aws/s3` when none was named.
   */
  keyName?: string
  /** Create the key under this alias on first use (service keys, aws/s3, the SSE-S3 key). */
  createKey: boolean
  bucketKey: boolean
  /** aws mode: x-amz-server-side-encryption-context, added to the {bucket, key} context. */
  extraContext?: Record<string, string>
}

/** What a stored object says about its encryption (from its manifest). */
export interface StoredEncryption {
  algorithm: StoredAlgorithm
  keyId: string
  /** How the write named its KMS key (EncryptionDecision.keyName); reported instead of keyId. */
  keyName?: string
  bucketKey?: boolean
}

const XMLNS = 'http://s3.amazonaws.com/doc/2006-03-01/'
const err = (code: string, message: string) => new S3sseError(code, message)

// ---------------------------------------------------------------- key names

/** The KMS alias of a bucket's service key in oss mode (created on its first encrypted write). */
export function serviceKeyAlias(bucket: string): string {
  return `s3-sse/bucket/${bucket}`
}

/** aws mode: the key aws:kms uses when no key is named (Amazon's "aws/s3" managed key). */
export const AWS_MANAGED_KEY_ALIAS = 'aws/s3'
/** aws mode: the server-managed key behind SSE-S3 (AES256). */
export const SSE_S3_KEY_ALIAS = 's3-sse/sse-s3'

/**
 * A KMS key reference as clients write it — a key id, `alias/name`, or the ARN of either —
 * reduced to what the KMS looks up: the key id, or the alias name (src/keys/kms.ts, parseKeyRef).
 */
export function kmsKeyRef(value: string): string {
  const ref = parseKeyRef(value.trim())
  return 'keyId' in ref ? ref.keyId : 'alias' in ref ? ref.alias.slice('alias/'.length) : ref.name
}

/**
 * How responses name a KMS key (x-amz-server-side-encryption-aws-kms-key-id): the way the
 * request or the bucket configuration named it — NAME, alias/NAME, key id or ARN, as given
 * (as Ceph RGW and MinIO answer) — never an internal id the client did not use. With no key
 * named, the AWS managed key under its alias.
 */
export function kmsKeyName(named: string | undefined): string {
  if (named === undefined || named.trim() === '') return `alias/${AWS_MANAGED_KEY_ALIAS}`
  return named.trim()
}

// ---------------------------------------------------------------- the configuration XML

/**
 * Parses a PutBucketEncryption body and checks it against the schema and the mode.
 * Schema errors → MalformedXML; a value the mode does not allow → InvalidArgument; both
 * with a message that says which element.
 */
export function parseBucketEncryption(xml: string, mode: ServerMode): BucketEncryption {
  const where = 'ServerSideEncryptionConfiguration'
  const root = elements(parseConfigDocument(xml, where), where, ['Rule'])
  const rules = root.Rule ?? []
  if (rules.length === 0) throw malformed('ServerSideEncryptionConfiguration needs one Rule')
  if (rules.length > 1) throw malformed(`ServerSideEncryptionConfiguration takes exactly one Rule, not ${rules.length}`)
  const rule = elements(rules[0], 'Rule', ['ApplyServerSideEncryptionByDefault', 'BucketKeyEnabled'])
  const apply = elements(single(rule, 'ApplyServerSideEncryptionByDefault', 'Rule', true),
    'ApplyServerSideEncryptionByDefault', ['SSEAlgorithm', 'KMSMasterKeyID'])
  const algorithm = text(single(apply, 'SSEAlgorithm', 'ApplyServerSideEncryptionByDefault', true), 'SSEAlgorithm')
  if (!isSseAlgorithm(algorithm)) {
    throw malformed(`SSEAlgorithm "${algorithm}" is not one of ${SSE_ALGORITHMS.join(', ')}`)
  }
  const keyText = optionalText(apply, 'KMSMasterKeyID', 'ApplyServerSideEncryptionByDefault')
  const bucketKeyText = optionalText(rule, 'BucketKeyEnabled', 'Rule')
  if (bucketKeyText !== undefined && bucketKeyText !== 'true' && bucketKeyText !== 'false') {
    throw malformed(`BucketKeyEnabled must be true or false, not "${bucketKeyText}"`)
  }
  return makeBucketEncryption({ algorithm, kmsMasterKeyId: keyText, bucketKeyEnabled: bucketKeyText === 'true' }, mode)
}

export function isSseAlgorithm(v: unknown): v is SseAlgorithm {
  return (SSE_ALGORITHMS as readonly unknown[]).includes(v)
}

/**
 * A configuration from its fields — the XML's, or the web console's — checked against the
 * mode: the one place both paths get their rules from.
 */
export function makeBucketEncryption(
  fields: { algorithm: SseAlgorithm; kmsMasterKeyId?: string; bucketKeyEnabled: boolean },
  mode: ServerMode,
): BucketEncryption {
  const config: BucketEncryption = { algorithm: fields.algorithm, bucketKeyEnabled: fields.bucketKeyEnabled }
  if (fields.kmsMasterKeyId !== undefined) {
    if (fields.kmsMasterKeyId.trim() === '') throw err('InvalidArgument', 'KMSMasterKeyID must not be empty')
    config.kmsMasterKeyId = fields.kmsMasterKeyId
  }
  checkModeAllows(config, mode)
  return config
}

/** The mode's rules on a configuration; InvalidArgument saying what is not allowed. */
export function checkModeAllows(config: BucketEncryption, mode: ServerMode): void {
  if (config.kmsMasterKeyId !== undefined && config.algorithm !== 'aws:kms') {
    throw err('InvalidArgument', 'KMSMasterKeyID is only allowed when SSEAlgorithm is aws:kms')
  }
  if (mode === 'oss') {
    if (config.algorithm !== 'aws:kms') {
      throw err('InvalidArgument', `SSEAlgorithm ${config.algorithm} is not supported: bucket default encryption uses aws:kms with the bucket's service key`)
    }
    if (config.kmsMasterKeyId !== undefined) {
      throw err('InvalidArgument', 'KMSMasterKeyID is not supported: customer master keys are not offered; the bucket\'s service key is used')
    }
  }
}

const builder = new XMLBuilder({ ignoreAttributes: false, suppressEmptyNode: true })

/** GetBucketEncryption body. */
export function renderBucketEncryption(config: BucketEncryption): string {
  const apply: Record<string, string> = { SSEAlgorithm: config.algorithm }
  if (config.kmsMasterKeyId !== undefined) apply.KMSMasterKeyID = config.kmsMasterKeyId
  return builder.build({
    '?xml': { '@_version': '1.0', '@_encoding': 'UTF-8' },
    ServerSideEncryptionConfiguration: {
      '@_xmlns': XMLNS,
      Rule: { ApplyServerSideEncryptionByDefault: apply, BucketKeyEnabled: String(config.bucketKeyEnabled) },
    },
  }) as string
}

/** GetBucketEncryption when nothing is set (S3: 404). */
export function encryptionNotFound(): S3sseError {
  return err('ServerSideEncryptionConfigurationNotFoundError', 'The server side encryption configuration was not found')
}

// ---------------------------------------------------------------- request headers

/** The SSE request headers of a write, as sent. */
export interface SseRequestHeaders {
  sse?: string
  kmsKeyId?: string
  context?: string
  bucketKeyEnabled?: string
  customerAlgorithm?: string
  customerKey?: string
  customerKeyMd5?: string
}

type HeaderBag = Record<string, string | string[] | undefined>

function header(h: HeaderBag, name: string): string | undefined {
  const v = h[name]
  return Array.isArray(v) ? v.join(',') : v
}

/** Picks the SSE headers out of a request's (lower-case) headers. */
export function sseRequestHeaders(h: HeaderBag): SseRequestHeaders {
  return {
    sse: header(h, 'x-amz-server-side-encryption'),
    kmsKeyId: header(h, 'x-amz-server-side-encryption-aws-kms-key-id'),
    context: header(h, 'x-amz-server-side-encryption-context'),
    bucketKeyEnabled: header(h, 'x-amz-server-side-encryption-bucket-key-enabled'),
    customerAlgorithm: header(h, 'x-amz-server-side-encryption-customer-algorithm'),
    customerKey: header(h, 'x-amz-server-side-encryption-customer-key'),
    customerKeyMd5: header(h, 'x-amz-server-side-encryption-customer-key-md5'),
  }
}

/** x-amz-server-side-encryption-context: base64 of a JSON object of strings. */
export function parseEncryptionContext(value: string): Record<string, string> {
  const bad = () => err('InvalidArgument', 'x-amz-server-side-encryption-context must be base64 of a JSON object whose values are strings')
  const v = value.trim()
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(v)) throw bad()
  let parsed: unknown
  try {
    parsed = JSON.parse(Buffer.from(v, 'base64').toString('utf8'))
  } catch {
    throw bad()
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw bad()
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(parsed)) {
    if (typeof v !== 'string') throw bad()
    out[k] = v
  }
  return out
}

export type WriteOperation = 'PutObject' | 'CopyObject' | 'PostObject' | 'CreateMultipartUpload'

export interface WriteEncryptionInput {
  mode: ServerMode
  bucket: string
  /** The destination bucket's default encryption at the time of the request. */
  bucketDefault: BucketEncryption | null
  headers: SseRequestHeaders
}

/**
 * The encryption a write gets (PutObject, CopyObject, PostObject, CreateMultipartUpload;
 * UploadPart and UploadPartCopy inherit their upload's). null: stored as plaintext.
 */
export function decideWriteEncryption(input: WriteEncryptionInput): EncryptionDecision | null {
  const { mode, bucket, bucketDefault, headers } = input
  if (mode === 'oss') {
    // The brief: only bucket-level encryption is effective; request headers change nothing.
    if (!bucketDefault) return null
    return { algorithm: 'aws:kms', keyId: serviceKeyAlias(bucket), createKey: true, bucketKey: bucketDefault.bucketKeyEnabled }
  }

  const h = headers
  if (h.customerAlgorithm !== undefined || h.customerKey !== undefined || h.customerKeyMd5 !== undefined) {
    if (h.sse !== undefined || h.kmsKeyId !== undefined || h.context !== undefined) {
      throw err('InvalidArgument', 'Server Side Encryption with Customer provided key is incompatible with the encryption method specified')
    }
    // SSE-C: the customer's key, checked as S3 checks it, overrides any bucket default.
    const customerKey = customerKeyFrom(h)!
    return { algorithm: 'SSE-C', keyId: SSE_C_KEY_ID, createKey: false, bucketKey: false, customerKey }
  }
  if (h.sse !== undefined && !(SSE_ALGORITHMS as readonly string[]).includes(h.sse)) {
    throw err('InvalidArgument', `The encryption method specified is not supported: x-amz-server-side-encryption must be AES256 or aws:kms, not "${h.sse}"`)
  }
  if (h.sse !== 'aws:kms') {
    if (h.kmsKeyId !== undefined) {
      throw err('InvalidArgument', 'Server Side Encryption with AWS KMS managed key requires HTTP header x-amz-server-side-encryption : aws:kms (x-amz-server-side-encryption-aws-kms-key-id was given)')
    }
    if (h.context !== undefined) {
      throw err('InvalidArgument', 'Server Side Encryption with AWS KMS managed key requires HTTP header x-amz-server-side-encryption : aws:kms (x-amz-server-side-encryption-context was given)')
    }
  }
  let bucketKeyHeader: boolean | undefined
  if (h.bucketKeyEnabled !== undefined) {
    const v = h.bucketKeyEnabled.trim().toLowerCase()
    if (v !== 'true' && v !== 'false') throw err('InvalidArgument', 'x-amz-server-side-encryption-bucket-key-enabled must be true or false')
    bucketKeyHeader = v === 'true'
  }

  const algorithm: SseAlgorithm | undefined = (h.sse as SseAlgorithm | undefined) ?? bucketDefault?.algorithm
  if (!algorithm) {
    if (bucketKeyHeader !== undefined) {
      throw err('InvalidArgument', 'x-amz-server-side-encryption-bucket-key-enabled needs x-amz-server-side-encryption')
    }
    return null
  }
  const fromDefault = h.sse === undefined || h.sse === bucketDefault?.algorithm
  const bucketKey = bucketKeyHeader ?? (fromDefault ? bucketDefault?.bucketKeyEnabled ?? false : false)
  if (algorithm === 'AES256') {
    return { algorithm, keyId: SSE_S3_KEY_ALIAS, createKey: true, bucketKey }
  }
  const named = h.kmsKeyId ?? (fromDefault ? bucketDefault?.kmsMasterKeyId : undefined)
  const decision: EncryptionDecision = named !== undefined
    ? { algorithm, keyId: kmsKeyRef(named), keyName: kmsKeyName(named), createKey: false, bucketKey }
    : { algorithm, keyId: AWS_MANAGED_KEY_ALIAS, keyName: kmsKeyName(undefined), createKey: true, bucketKey }
  if (h.context !== undefined) decision.extraContext = parseEncryptionContext(h.context)
  return decision
}

/**
 * GetObject and HeadObject in aws mode: S3 refuses SSE-KMS/SSE-S3 request headers on reads
 * (they only make sense on writes); SSE-C headers are the key of an SSE-C object, returned
 * checked (checkCustomerKeyForObject decides whether the object wants them). oss mode
 * ignores them all, as it ignores them on writes.
 */
export function checkReadHeaders(mode: ServerMode, h: HeaderBag): CustomerKey | undefined {
  if (mode !== 'aws') return undefined
  const s = sseRequestHeaders(h)
  if (s.sse !== undefined || s.kmsKeyId !== undefined || s.context !== undefined || s.bucketKeyEnabled !== undefined) {
    throw err('InvalidArgument', 'x-amz-server-side-encryption headers are not allowed on GET and HEAD requests: an encrypted object is decrypted without them')
  }
  return parseCustomerKey(h)
}

// ---------------------------------------------------------------- transport

export const INSECURE_TRANSPORT_MESSAGE =
  'Requests specifying Server Side Encryption with AWS KMS managed keys must be made over a secure connection.'
export const NOT_SIGV4_MESSAGE =
  'Requests specifying Server Side Encryption with AWS KMS managed keys require AWS Signature Version 4.'

export interface TransportFacts {
  /** The request uploads or downloads data of an SSE-KMS object (before or after it). */
  carriesKmsData: boolean
  /** Arrived over TLS. */
  secure: boolean
  /** Authenticated with Signature Version 4 (header, presigned URL or POST policy). */
  sigV4: boolean
}

/**
 * The brief: uploads and downloads of encrypted data only over HTTPS and signed with SigV4.
 * Everything else keeps working over HTTP.
 */
export function checkTransport(t: TransportFacts): void {
  if (!t.carriesKmsData) return
  if (!t.secure) throw err('InvalidArgument', INSECURE_TRANSPORT_MESSAGE)
  if (!t.sigV4) throw err('InvalidArgument', NOT_SIGV4_MESSAGE)
}

// ---------------------------------------------------------------- responses

/**
 * Operations that report an object's encryption in their response headers (the brief's
 * list; S3 returns the same set).
 */
export type ReportingOperation =
  | 'PutObject' | 'CopyObject' | 'PostObject' | 'CreateMultipartUpload' | 'UploadPart'
  | 'UploadPartCopy' | 'CompleteMultipartUpload' | 'GetObject' | 'HeadObject'

/**
 * The stored form of how an object or upload is encrypted (what its responses report), from
 * the encryption a write asked for or the header of a manifest: the one place either becomes it.
 */
export function storedEncryption(
  e: { algorithm: StoredAlgorithm; keyId: string; bucketKey?: boolean; keyName?: string } | null | undefined,
  keyName: string | undefined = e?.keyName,
): StoredEncryption | undefined {
  if (!e) return undefined
  const out: StoredEncryption = { algorithm: e.algorithm, keyId: e.keyId, bucketKey: e.bucketKey }
  // Only an SSE-KMS key has a name to report (x-amz-server-side-encryption-aws-kms-key-id).
  if (keyName !== undefined && e.algorithm === 'aws:kms') out.keyName = keyName
  return out
}

/**
 * Response headers that say how an object is encrypted; none for a plaintext object.
 * aws mode also names the KMS key and reports bucket keys, as S3 does.
 */
export function sseResponseHeaders(mode: ServerMode, enc: StoredEncryption | null | undefined): Record<string, string> {
  // SSE-C objects answer with the customer headers of the request instead (customerKeyResponseHeaders).
  if (!enc || enc.algorithm === 'SSE-C') return {}
  const out: Record<string, string> = { 'x-amz-server-side-encryption': enc.algorithm }
  if (mode === 'aws') {
    if (enc.algorithm === 'aws:kms') out['x-amz-server-side-encryption-aws-kms-key-id'] = enc.keyName ?? enc.keyId
    if (enc.bucketKey) out['x-amz-server-side-encryption-bucket-key-enabled'] = 'true'
  }
  return out
}

// ---------------------------------------------------------------- SSE-C (customer-provided keys)

/** SSE-C's one algorithm and key size (S3 User Guide, "Using server-side encryption with customer-provided keys"). */
export const SSE_C_ALGORITHM = 'AES256'
export const CUSTOMER_KEY_SIZE = 32

/** A customer key as a request gives it. The key itself is never stored, logged or echoed. */
export interface CustomerKey {
  algorithm: typeof SSE_C_ALGORITHM
  /** CUSTOMER_KEY_SIZE bytes. */
  key: Buffer
  /** base64 MD5 of the key, as sent (responses echo it). */
  keyMd5: string
}

export const SSE_C_MESSAGES = {
  algorithm: 'Requests specifying Server Side Encryption with Customer provided keys must provide a valid encryption algorithm.',
  badAlgorithm: 'The Encryption request you specified is not valid. Supported value: AES256.',
  key: 'Requests specifying Server Side Encryption with Customer provided keys must provide an appropriate secret key.',
  badKey: 'The secret key was invalid for the specified algorithm.',
  md5: 'Requests specifying Server Side Encryption with Customer provided keys must provide the client calculated MD5 of the secret key.',
  badMd5: 'The calculated MD5 hash of the key did not match the hash that was provided.',
  insecure: 'Requests specifying Server Side Encryption with Customer provided keys must be made over a secure connection.',
  missing: 'The object was stored using a form of Server Side Encryption. The correct parameters must be provided to retrieve the object.',
  notApplicable: 'The encryption parameters are not applicable to this object.',
} as const

function strictBase64(v: string): Buffer | undefined {
  const t = v.trim()
  if (!/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(t)) return undefined
  return Buffer.from(t, 'base64')
}

/**
 * The customer key of a request, checked the way S3 checks it — algorithm AES256 only, a
 * base64 key of exactly 32 bytes, the key's MD5 given and matching — or undefined when the
 * request names none. `source` reads the copy-source variant
 * (x-amz-copy-source-server-side-encryption-customer-*) of CopyObject and UploadPartCopy.
 */
export function parseCustomerKey(h: HeaderBag, source: 'object' | 'copy-source' = 'object'): CustomerKey | undefined {
  const prefix = source === 'object' ? 'x-amz-server-side-encryption-customer-' : 'x-amz-copy-source-server-side-encryption-customer-'
  return customerKeyFrom({
    customerAlgorithm: header(h, prefix + 'algorithm'),
    customerKey: header(h, prefix + 'key'),
    customerKeyMd5: header(h, prefix + 'key-md5'),
  })
}

function customerKeyFrom(h: Pick<SseRequestHeaders, 'customerAlgorithm' | 'customerKey' | 'customerKeyMd5'>): CustomerKey | undefined {
  if (h.customerAlgorithm === undefined && h.customerKey === undefined && h.customerKeyMd5 === undefined) return undefined
  if (h.customerAlgorithm === undefined) throw err('InvalidArgument', SSE_C_MESSAGES.algorithm)
  if (h.customerAlgorithm.trim() !== SSE_C_ALGORITHM) throw err('InvalidEncryptionAlgorithmError', SSE_C_MESSAGES.badAlgorithm)
  if (h.customerKey === undefined || h.customerKey.trim() === '') throw err('InvalidArgument', SSE_C_MESSAGES.key)
  const key = strictBase64(h.customerKey)
  if (!key || key.length !== CUSTOMER_KEY_SIZE) throw err('InvalidArgument', SSE_C_MESSAGES.badKey)
  if (h.customerKeyMd5 === undefined || h.customerKeyMd5.trim() === '') throw err('InvalidArgument', SSE_C_MESSAGES.md5)
  const given = strictBase64(h.customerKeyMd5)
  const actual = createHash('md5').update(key).digest()
  if (!given || given.length !== actual.length || !timingSafeEqual(given, actual)) throw err('InvalidArgument', SSE_C_MESSAGES.badMd5)
  return { algorithm: SSE_C_ALGORITHM, key, keyMd5: h.customerKeyMd5.trim() }
}

/** SSE-C keys travel only over TLS (S3 refuses them over HTTP). */
export function checkCustomerKeyTransport(given: CustomerKey | undefined, secure: boolean): void {
  if (given && !secure) throw err('InvalidRequest', SSE_C_MESSAGES.insecure)
}

/**
 * Reading (GET, HEAD, partNumber and ranged GETs) or copying from an object: an SSE-C object
 * needs its key; SSE-C headers on any other object are refused. Whether the key is the right
 * one is the object layer's check (a wrong key is 403 AccessDenied).
 */
export function checkCustomerKeyForObject(storedWithCustomerKey: boolean, given: CustomerKey | undefined): void {
  if (storedWithCustomerKey && !given) throw err('InvalidRequest', SSE_C_MESSAGES.missing)
  if (!storedWithCustomerKey && given) throw err('InvalidRequest', SSE_C_MESSAGES.notApplicable)
}

/** Response headers of an SSE-C request: the algorithm and the MD5 the client sent. */
export function customerKeyResponseHeaders(given: CustomerKey | undefined): Record<string, string> {
  if (!given) return {}
  return {
    'x-amz-server-side-encryption-customer-algorithm': given.algorithm,
    'x-amz-server-side-encryption-customer-key-md5': given.keyMd5,
  }
}

// ---------------------------------------------------------------- ETags (issue 12 item 4)

/** How an object's data is protected, for its ETag. */
export type EtagProtection = 'plain' | SseAlgorithm | 'SSE-C'

/**
 * The ETag of a new object or part.
 *
 * - plain and SSE-S3 (AES256): the MD5 of the plaintext, as Amazon S3 gives it — clients
 *   (s3cmd, rclone) compare it with their own MD5.
 * - SSE-KMS and SSE-C: an opaque random value that says nothing about the plaintext (S3:
 *   such ETags are "not an MD5 digest of the object data"). A whole object's has the
 *   multipart shape `hex-N`, N its part count (1 for a single PUT): rclone takes a 32-hex
 *   ETag for an MD5 (`^[0-9a-f]{32}$`) and fails "md5 hash differ" / "corrupted on
 *   transfer", and s3cmd sync re-sends every file whose listed ETag differs from its MD5,
 *   but both skip an ETag with a '-' (rclone then uses its X-Amz-Meta-Md5chksum, s3cmd the
 *   md5 in its x-amz-meta-s3cmd-attrs — digests the client chose to store). A part's ETag
 *   stays 32 hex: CompleteMultipartUpload combines them, and s3cmd skips its part check
 *   when the response says aws:kms.
 */
export function etagOf(what: 'object' | 'part', protection: EtagProtection, plainMd5Hex?: string): string {
  if (protection === 'plain' || protection === 'AES256') {
    if (plainMd5Hex === undefined || !/^[0-9a-f]{32}$/.test(plainMd5Hex)) throw new Error(`a ${protection} ${what} needs the MD5 of its plaintext for its ETag`)
    return plainMd5Hex
  }
  const opaque = randomBytes(16).toString('hex')
  return what === 'object' ? `${opaque}-1` : opaque
}

/** The protection of a write or a stored object, for its ETag. */
export function etagProtection(e: { algorithm: StoredAlgorithm } | null | undefined): EtagProtection {
  return e ? e.algorithm : 'plain'
}

/** Whether an ETag under this protection is the plaintext's MD5 (so the server must hash the body). */
export function etagIsPlainMd5(p: EtagProtection): boolean {
  return p === 'plain' || p === 'AES256'
}

/**
 * The ETag of a copy. When the sealed bytes are kept (an encrypted → encrypted copy whose
 * data key is re-wrapped) the copy has the same content and keeps the source's ETag, as an
 * S3 copy of a single-part object does; otherwise the new object's own (etagOf).
 */
export function copyEtag(sourceEtag: string, keepsSealedBytes: boolean, fresh: () => string): string {
  return keepsSealedBytes ? sourceEtag : fresh()
}

/**
 * The ETag of a plaintext object sealed in place (the encrypt job; S3's copy of an object onto
 * itself with encryption): an encrypted object's opaque value in etagOf's shape, keeping a
 * multipart `-N` (`-1` for a single part, so it never passes for an MD5).
 */
export function resealedEtag(plainEtag: string): string {
  const parts = /-\d+$/.exec(plainEtag)?.[0] ?? '-1'
  return randomBytes(16).toString('hex') + parts
}
