/**
 * Object and bucket rules of S3 that do not depend on HTTP: names, stored headers and
 * user metadata, the response headers of an object, ETags, multipart limits.
 */
import { createHash, randomBytes } from 'node:crypto'
import { s3Error } from './errors.js'
import type { ChecksumAlgorithm, ChecksumType } from './checksums.js'
import { checksumHeader } from './checksums.js'
import { contentRange, type ByteRange } from './conditions.js'
import { sseResponseHeaders, type ServerMode, type StoredEncryption } from './sse.js'

/** S3 limits (S3 User Guide, "Uploading and copying objects using multipart upload"). */
export const MAX_KEY_BYTES = 1024
export const MIN_PART_SIZE = 5 * 1024 * 1024
export const MAX_PART_SIZE = 5 * 1024 * 1024 * 1024
export const MAX_PART_NUMBER = 10000
export const MAX_SINGLE_PUT = 5 * 1024 * 1024 * 1024
/** User-defined metadata: 2 KB of names and values (S3 User Guide, "Object metadata"). */
export const MAX_USER_METADATA = 2048

/** Bucket naming rules (S3 User Guide, "General purpose bucket naming rules"). */
export function validateBucketName(name: string): void {
  const ok =
    name.length >= 3 &&
    name.length <= 63 &&
    /^[a-z0-9][a-z0-9.-]*[a-z0-9]$/.test(name) &&
    !name.includes('..') &&
    !/^\d+\.\d+\.\d+\.\d+$/.test(name) &&
    !name.startsWith('xn--') &&
    !name.startsWith('sthree-') &&
    !name.endsWith('-s3alias') &&
    !name.endsWith('--ol-s3')
  if (!ok) throw s3Error('InvalidBucketName', 'The specified bucket is not valid.')
}

/** Keys are any UTF-8 up to 1024 bytes; storage never uses them as paths. */
export function validateKey(key: string): void {
  if (key === '') throw s3Error('InvalidArgument', 'Object key must not be empty.')
  if (Buffer.byteLength(key, 'utf8') > MAX_KEY_BYTES) throw s3Error('KeyTooLongError')
  if (key.includes('\u0000')) throw s3Error('InvalidArgument', 'Object key must not contain NUL.')
}

/** Standard headers stored with an object and returned on GET/HEAD. */
export const STORED_HEADERS = [
  'content-type',
  'content-encoding',
  'content-disposition',
  'content-language',
  'cache-control',
  'expires',
  'x-amz-website-redirect-location',
] as const

export interface StoredHeaders {
  /** Standard headers by lowercase name. */
  headers: Record<string, string>
  /** User metadata, lowercase names without the `x-amz-meta-` prefix. */
  meta: Record<string, string>
}

type HeaderSource = Record<string, string | string[] | undefined>

function one(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v.join(',') : v
}

/**
 * The headers of a write request that are stored with the object. `aws-chunked` is a
 * transfer detail of the request, not an encoding of the object (S3 API reference,
 * "Signature Calculations for the Authorization Header: Transferring Payload in Multiple Chunks").
 */
export function storedHeadersFrom(source: HeaderSource, prefix = ''): StoredHeaders {
  const headers: Record<string, string> = {}
  for (const name of STORED_HEADERS) {
    let v = one(source[prefix + name])
    if (v === undefined) continue
    if (name === 'content-encoding') {
      v = v
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s !== '' && s.toLowerCase() !== 'aws-chunked')
        .join(',')
      if (v === '') continue
    }
    if (!isHeaderValue(v)) throw s3Error('InvalidArgument', `The value of ${name} cannot be sent as an HTTP header.`)
    headers[name] = v
  }
  const meta: Record<string, string> = {}
  let metaSize = 0
  for (const [name, value] of Object.entries(source)) {
    const lower = name.toLowerCase()
    if (!lower.startsWith(prefix + 'x-amz-meta-')) continue
    const v = one(value) ?? ''
    const metaName = lower.slice(prefix.length + 'x-amz-meta-'.length)
    // From a POST form, names and values are free text: stored only if they can be returned.
    if (!/^[!#$%&'*+.^_`|~0-9a-z-]+$/.test(metaName) || !isHeaderValue(v)) {
      throw s3Error('InvalidArgument', `The metadata x-amz-meta-${metaName} cannot be sent as an HTTP header.`)
    }
    meta[metaName] = v
    metaSize += Buffer.byteLength(metaName) + Buffer.byteLength(v)
  }
  if (metaSize > MAX_USER_METADATA) throw s3Error('MetadataTooLarge')
  return { headers, meta }
}

/** What an object says about its replication (x-amz-replication-status). */
export type ReplicationStatus = 'PENDING' | 'COMPLETED' | 'FAILED' | 'REPLICA'

/** What GET/HEAD know about an object; the server's record maps onto it. */
export interface ObjectView {
  size: number
  /** Unquoted ETag. */
  etag: string
  lastModified: number
  headers: Record<string, string>
  meta: Record<string, string>
  checksum?: { algorithm: ChecksumAlgorithm; type: ChecksumType; value: string }
  partsCount?: number
  /** Set for an object stored encrypted (from its manifest). */
  encryption?: StoredEncryption
  /** Set for an object written under a replication rule, and for a replica. */
  replicationStatus?: ReplicationStatus
}

/** `response-*` query parameters of a GET that override stored headers (S3 API reference, GetObject). */
export const RESPONSE_OVERRIDES: Record<string, string> = {
  'response-content-type': 'content-type',
  'response-content-language': 'content-language',
  'response-expires': 'expires',
  'response-cache-control': 'cache-control',
  'response-content-disposition': 'content-disposition',
  'response-content-encoding': 'content-encoding',
}

/**
 * The one place that decides the response headers of GetObject / HeadObject.
 * The stored checksum is returned only when asked (`x-amz-checksum-mode: ENABLED`) and
 * only for the whole object: a range has no checksum of its own.
 */
export function objectResponseHeaders(
  obj: ObjectView,
  opts: { mode: ServerMode; range?: ByteRange | null; checksumMode?: boolean; overrides?: Record<string, string> },
): Record<string, string> {
  const h: Record<string, string> = {
    'last-modified': new Date(obj.lastModified).toUTCString(),
    etag: `"${obj.etag}"`,
    'accept-ranges': 'bytes',
    'content-type': 'binary/octet-stream',
  }
  for (const [name, value] of Object.entries(obj.headers)) h[name] = value
  for (const [name, value] of Object.entries(obj.meta)) h[`x-amz-meta-${name}`] = value
  Object.assign(h, sseResponseHeaders(opts.mode, obj.encryption))
  if (obj.partsCount !== undefined && obj.partsCount > 1) h['x-amz-mp-parts-count'] = String(obj.partsCount)
  if (obj.replicationStatus) h['x-amz-replication-status'] = obj.replicationStatus
  if (opts.range) {
    h['content-range'] = contentRange(opts.range, obj.size)
    h['content-length'] = String(opts.range.end - opts.range.start + 1)
  } else {
    h['content-length'] = String(obj.size)
    if (opts.checksumMode && obj.checksum) {
      h[checksumHeader(obj.checksum.algorithm)] = obj.checksum.value
      h['x-amz-checksum-type'] = obj.checksum.type
    }
  }
  for (const [name, value] of Object.entries(opts.overrides ?? {})) h[name] = value
  return h
}

/**
 * Picks the `response-*` overrides out of a query. A value is decoded from the query, so it
 * may hold what no header can carry (control characters, CR LF, non-ASCII): 400, never a
 * response that fails half-built. Only printable ASCII, space and tab pass (RFC 9110
 * field-vchar without obs-text, which clients would read as Latin-1).
 */
export function responseOverrides(query: URLSearchParams | Map<string, string>): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [param, header] of Object.entries(RESPONSE_OVERRIDES)) {
    const v = query.get(param)
    if (v === undefined || v === null) continue
    if (!/^[\t\x20-\x7e]*$/.test(v)) throw s3Error('InvalidArgument', `The value of ${param} cannot be sent as an HTTP header (printable ASCII only).`)
    out[header] = v
  }
  return out
}

/** What an HTTP field value may hold (RFC 9110 §5.5: field-vchar, obs-text, SP, HTAB). */
export function isHeaderValue(v: string): boolean {
  return /^[\t\x20-\x7e\x80-\xff]*$/.test(v)
}

/** ETag of a multipart object: MD5 of the parts' binary MD5s, then `-N`. */
export function multipartEtag(partEtags: string[]): string {
  const md5 = createHash('md5')
  for (const e of partEtags) md5.update(Buffer.from(e, 'hex'))
  return `${md5.digest('hex')}-${partEtags.length}`
}

/**
 * A new multipart upload id: 32 base64url characters (192 random bits) that never begin
 * with '-', which command-line clients would read as an option (`aws s3api … --upload-id
 * -x…`, `s3cmd abortmp`). A draw that would is drawn again, so ids stay uniform over the
 * rest.
 */
export function newUploadId(): string {
  for (;;) {
    const id = randomBytes(24).toString('base64url')
    if (id[0] !== '-') return id
  }
}

export function parsePartNumber(value: string | undefined): number {
  if (value === undefined || !/^\d+$/.test(value)) {
    throw s3Error('InvalidArgument', 'Part number must be an integer between 1 and 10000, inclusive')
  }
  const n = Number(value)
  if (n < 1 || n > MAX_PART_NUMBER) {
    throw s3Error('InvalidArgument', 'Part number must be an integer between 1 and 10000, inclusive')
  }
  return n
}

/** The `x-amz-copy-source` header: `[/]bucket/key[?versionId=…]`, URL-encoded. */
export function parseCopySource(value: string): { bucket: string; key: string; versionId?: string } {
  let v = value
  let versionId: string | undefined
  const q = v.indexOf('?')
  if (q >= 0) {
    const params = new URLSearchParams(v.slice(q + 1))
    versionId = params.get('versionId') ?? undefined
    v = v.slice(0, q)
  }
  let decoded: string
  try {
    decoded = decodeURIComponent(v)
  } catch {
    throw s3Error('InvalidArgument', 'Invalid copy source encoding.')
  }
  if (decoded.startsWith('/')) decoded = decoded.slice(1)
  const slash = decoded.indexOf('/')
  if (slash <= 0 || slash === decoded.length - 1) {
    throw s3Error('InvalidArgument', 'Copy Source must mention the source bucket and key: sourcebucket/sourcekey')
  }
  return { bucket: decoded.slice(0, slash), key: decoded.slice(slash + 1), versionId }
}
