/**
 * AWS Signature Version 4 verification for S3 (S3 API reference, "Authenticating
 * Requests (AWS Signature Version 4)"): the Authorization header, presigned URLs and the
 * seed of streaming (aws-chunked) uploads. The canonical pieces and the signing key come
 * from @smithy/signature-v4, the SDKs' own signer; verification recomputes the signature
 * and compares in constant time.
 */
import { createHash, createHmac, timingSafeEqual, type Hash, type Hmac } from 'node:crypto'
import type { IncomingHttpHeaders } from 'node:http'
import { createScope, getCanonicalHeaders, getCanonicalQuery, getSigningKey } from '@smithy/signature-v4'
import type { HttpRequest, SourceData } from '@smithy/types'
import { s3Error } from '../../s3/errors.js'
import type { ChunkVerifier, PayloadMode } from '../payload.js'

export const ALGORITHM = 'AWS4-HMAC-SHA256'
export const UNSIGNED_PAYLOAD = 'UNSIGNED-PAYLOAD'
export const STREAMING_SIGNED = 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD'
export const STREAMING_SIGNED_TRAILER = 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER'
export const STREAMING_UNSIGNED_TRAILER = 'STREAMING-UNSIGNED-PAYLOAD-TRAILER'
export const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'
/** Largest allowed clock difference (S3: 15 minutes). */
export const MAX_SKEW_MS = 15 * 60 * 1000
/** Longest presigned URL lifetime (S3: 7 days). */
export const MAX_PRESIGNED_EXPIRES = 604800

export interface Principal {
  accessKey: string
  secretKey: string
}


export interface VerifiedRequest {
  accessKey: string
  payload: PayloadMode
  presigned: boolean
}

export interface SignedRequest {
  method: string
  /** The path exactly as received (still percent-encoded). */
  rawPath: string
  /** Decoded query parameters in order of appearance. */
  query: Array<[string, string]>
  headers: IncomingHttpHeaders
  now: number
}

/** node:crypto behind the hash shape smithy's key derivation (and its signer) expects. */
export class NodeSha256 {
  private readonly h: Hash | Hmac
  constructor(secret?: SourceData) {
    this.h = secret === undefined ? createHash('sha256') : createHmac('sha256', toBuffer(secret))
  }
  update(data: SourceData): void {
    this.h.update(toBuffer(data))
  }
  async digest(): Promise<Uint8Array> {
    return this.h.digest()
  }
  reset(): void {
    throw new Error('reset is not supported')
  }
}

function toBuffer(data: SourceData): Buffer {
  if (typeof data === 'string') return Buffer.from(data, 'utf8')
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength)
  return Buffer.from(data)
}

export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex')
}

function hmacHex(key: Uint8Array, data: string): string {
  return createHmac('sha256', key).update(data, 'utf8').digest('hex')
}

/** Constant-time comparison of two hex signatures (a length difference is not secret). */
export function signaturesEqual(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8')
  const y = Buffer.from(b, 'utf8')
  return x.length === y.length && timingSafeEqual(x, y)
}

/**
 * Canonical URI for S3: the path as the client encoded it, each byte outside the
 * unreserved set percent-encoded once (S3 does not normalise or double-encode paths).
 * Existing escapes are kept (upper-cased), so a correctly encoded path is unchanged.
 */
export function canonicalUri(rawPath: string): string {
  let out = ''
  for (let i = 0; i < rawPath.length; i++) {
    const c = rawPath[i]
    if (c === '%' && /^[0-9A-Fa-f]{2}$/.test(rawPath.slice(i + 1, i + 3))) {
      out += '%' + rawPath.slice(i + 1, i + 3).toUpperCase()
      i += 2
    } else if (/[A-Za-z0-9\-._~/]/.test(c)) {
      out += c
    } else {
      const cp = rawPath.codePointAt(i)!
      const ch = String.fromCodePoint(cp)
      for (const byte of Buffer.from(ch, 'utf8')) out += '%' + byte.toString(16).toUpperCase().padStart(2, '0')
      i += ch.length - 1
    }
  }
  return out || '/'
}

interface Credential {
  accessKey: string
  date: string
  region: string
  service: string
  scope: string
}

function parseCredential(value: string, where: 'header' | 'query'): Credential {
  const parts = value.split('/')
  const bad = (msg: string) =>
    where === 'header' ? s3Error('AuthorizationHeaderMalformed', msg) : s3Error('AuthorizationQueryParametersError', msg)
  if (parts.length !== 5) throw bad('The credential is mal-formed; expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".')
  const [accessKey, date, region, service, terminator] = parts
  if (!/^\d{8}$/.test(date)) throw bad('The credential date is invalid.')
  if (terminator !== 'aws4_request') throw bad('The credential terminator must be "aws4_request".')
  return { accessKey, date, region, service, scope: createScope(date, region, service) }
}

/** `20130524T000000Z` → epoch ms. */
function parseAmzDate(value: string | undefined): number | undefined {
  if (value === undefined) return undefined
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(value)
  if (!m) return undefined
  return Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6])
}

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name]
  return Array.isArray(v) ? v.join(',') : v
}

function queryValue(query: Array<[string, string]>, name: string): string | undefined {
  return query.find(([k]) => k === name)?.[1]
}

function canonicalRequest(
  req: SignedRequest,
  signedHeaders: string[],
  payloadHash: string,
  skipQuery?: string,
): string {
  const query = Object.create(null) as Record<string, string | string[]>
  for (const [k, v] of req.query) {
    if (k === skipQuery) continue
    const prev = query[k]
    query[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v]
  }
  const headers = Object.create(null) as Record<string, string>
  for (const name of signedHeaders) {
    const v = header(req.headers, name)
    if (v === undefined) throw s3Error('SignatureDoesNotMatch', `Signed header "${name}" is missing from the request.`)
    headers[name] = v
  }
  const http = { method: req.method, path: req.rawPath, query, headers } as unknown as HttpRequest
  const canonicalHeaders = getCanonicalHeaders(http, undefined, new Set(signedHeaders))
  const headerLines = signedHeaders.map((n) => `${n}:${canonicalHeaders[n]}\n`).join('')
  return [req.method, canonicalUri(req.rawPath), getCanonicalQuery(http), headerLines, signedHeaders.join(';'), payloadHash].join('\n')
}

function stringToSign(amzDate: string, scope: string, canonical: string): string {
  return `${ALGORITHM}\n${amzDate}\n${scope}\n${sha256Hex(canonical)}`
}

export interface VerifyOptions {
  region: string
  /** The service clients sign for: `s3` (the default), or `kms` for `s3-sse kms serve`. */
  service?: string
  lookup: (accessKey: string) => Promise<Principal | undefined> | Principal | undefined
}

function checkScope(cred: Credential, amzDate: string, opts: VerifyOptions, where: 'header' | 'query'): void {
  const bad = (msg: string) =>
    where === 'header' ? s3Error('AuthorizationHeaderMalformed', msg) : s3Error('AuthorizationQueryParametersError', msg)
  const service = opts.service ?? 's3'
  if (cred.service !== service) throw bad(`The credential service "${cred.service}" is wrong; expecting "${service}".`)
  if (cred.region !== opts.region) throw bad(`The authorization header is malformed; the region '${cred.region}' is wrong; expecting '${opts.region}'`)
  if (amzDate.slice(0, 8) !== cred.date) throw bad('Invalid credential date. Date is not the same as X-Amz-Date.')
}

async function signingKey(principal: Principal, cred: Credential): Promise<Uint8Array> {
  return getSigningKey(
    NodeSha256,
    { accessKeyId: principal.accessKey, secretAccessKey: principal.secretKey },
    cred.date,
    cred.region,
    cred.service,
  )
}

function parseAuthorization(value: string): { credential: string; signedHeaders: string[]; signature: string } {
  if (!value.startsWith(ALGORITHM + ' ')) {
    throw s3Error('InvalidRequest', 'The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.')
  }
  const fields: Record<string, string> = {}
  for (const part of value.slice(ALGORITHM.length + 1).split(',')) {
    const eq = part.indexOf('=')
    if (eq < 0) continue
    fields[part.slice(0, eq).trim()] = part.slice(eq + 1).trim()
  }
  const { Credential: credential, SignedHeaders: signed, Signature: signature } = fields
  if (!credential || !signed || !signature) {
    throw s3Error('AuthorizationHeaderMalformed', 'The authorization header is malformed; it must contain Credential, SignedHeaders and Signature.')
  }
  return { credential, signedHeaders: signed.split(';').map((h) => h.trim().toLowerCase()), signature }
}

async function lookupPrincipal(opts: VerifyOptions, accessKey: string): Promise<Principal> {
  const principal = await opts.lookup(accessKey)
  if (!principal) throw s3Error('InvalidAccessKeyId')
  return principal
}

/** Verifies the Authorization header form. */
export async function verifyHeaderSignature(req: SignedRequest, authorization: string, opts: VerifyOptions): Promise<VerifiedRequest> {
  const auth = parseAuthorization(authorization)
  const cred = parseCredential(auth.credential, 'header')
  const amzDate = header(req.headers, 'x-amz-date')
  let when = parseAmzDate(amzDate)
  let dateForSigning = amzDate
  if (amzDate === undefined) {
    // SigV4 allows the Date header instead; the string to sign still uses the ISO basic form.
    const date = header(req.headers, 'date')
    const t = date === undefined ? NaN : Date.parse(date)
    if (Number.isNaN(t)) throw s3Error('AccessDenied', 'AWS authentication requires a valid Date or x-amz-date header')
    when = t
    dateForSigning = new Date(t).toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '')
  }
  if (when === undefined || dateForSigning === undefined) {
    throw s3Error('AccessDenied', 'AWS authentication requires a valid Date or x-amz-date header')
  }
  if (Math.abs(req.now - when) > MAX_SKEW_MS) throw s3Error('RequestTimeTooSkewed')
  checkScope(cred, dateForSigning, opts, 'header')
  if (!auth.signedHeaders.includes('host')) throw s3Error('AccessDenied', 'The host header must be signed.')
  const principal = await lookupPrincipal(opts, cred.accessKey)

  const payloadHash = header(req.headers, 'x-amz-content-sha256')
  if (payloadHash === undefined) {
    throw s3Error('InvalidRequest', 'Missing required header for this request: x-amz-content-sha256')
  }
  let payload: PayloadMode
  if (payloadHash === UNSIGNED_PAYLOAD) payload = { kind: 'unsigned' }
  else if (payloadHash === STREAMING_UNSIGNED_TRAILER) payload = { kind: 'streaming-unsigned-trailer' }
  else if (payloadHash === STREAMING_SIGNED || payloadHash === STREAMING_SIGNED_TRAILER) {
    payload = { kind: 'streaming-signed', trailer: payloadHash === STREAMING_SIGNED_TRAILER, signer: undefined as unknown as ChunkSigner }
  } else if (/^[0-9a-f]{64}$/.test(payloadHash)) payload = { kind: 'sha256', hash: payloadHash }
  else if (payloadHash.startsWith('STREAMING-')) {
    throw s3Error('NotImplemented', `The payload signing mode ${payloadHash} is not implemented.`)
  } else {
    throw s3Error('InvalidArgument', 'x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-… or a valid sha256 value.')
  }

  const key = await signingKey(principal, cred)
  const canonical = canonicalRequest(req, auth.signedHeaders, payloadHash)
  const expected = hmacHex(key, stringToSign(dateForSigning, cred.scope, canonical))
  if (!signaturesEqual(expected, auth.signature)) throw s3Error('SignatureDoesNotMatch')
  if (payload.kind === 'streaming-signed') {
    payload.signer = new ChunkSigner(key, dateForSigning, cred.scope, auth.signature)
  }
  return { accessKey: principal.accessKey, payload, presigned: false }
}

/** Verifies a presigned URL (query-string authentication), including its expiry. */
export async function verifyPresigned(req: SignedRequest, opts: VerifyOptions): Promise<VerifiedRequest> {
  const q = (name: string) => queryValue(req.query, name)
  if (q('X-Amz-Algorithm') !== ALGORITHM) {
    throw s3Error('AuthorizationQueryParametersError', 'X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"')
  }
  const credential = q('X-Amz-Credential')
  const amzDate = q('X-Amz-Date')
  const expires = q('X-Amz-Expires')
  const signedHeaders = q('X-Amz-SignedHeaders')
  const signature = q('X-Amz-Signature')
  if (!credential || !amzDate || !expires || !signedHeaders || !signature) {
    throw s3Error(
      'AuthorizationQueryParametersError',
      'Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.',
    )
  }
  const cred = parseCredential(credential, 'query')
  const when = parseAmzDate(amzDate)
  if (when === undefined) throw s3Error('AuthorizationQueryParametersError', 'X-Amz-Date must be in the ISO8601 Long Format "yyyyMMdd\'T\'HHmmss\'Z\'"')
  if (!/^\d+$/.test(expires)) throw s3Error('AuthorizationQueryParametersError', 'X-Amz-Expires should be a number')
  const seconds = Number(expires)
  if (seconds < 1 || seconds > MAX_PRESIGNED_EXPIRES) {
    throw s3Error('AuthorizationQueryParametersError', 'X-Amz-Expires must be between 1 and 604800 seconds')
  }
  checkScope(cred, amzDate, opts, 'query')
  if (when - req.now > MAX_SKEW_MS) throw s3Error('AccessDenied', 'Request is not valid yet')
  if (req.now > when + seconds * 1000) throw s3Error('AccessDenied', 'Request has expired')
  const headerList = signedHeaders.split(';').map((h) => h.trim().toLowerCase())
  if (!headerList.includes('host')) throw s3Error('AccessDenied', 'The host header must be signed.')
  const principal = await lookupPrincipal(opts, cred.accessKey)

  // Presigned URLs sign UNSIGNED-PAYLOAD unless the URL itself names a hash.
  const payloadHash = q('X-Amz-Content-Sha256') ?? UNSIGNED_PAYLOAD
  const key = await signingKey(principal, cred)
  const canonical = canonicalRequest(req, headerList, payloadHash, 'X-Amz-Signature')
  const expected = hmacHex(key, stringToSign(amzDate, cred.scope, canonical))
  if (!signaturesEqual(expected, signature)) throw s3Error('SignatureDoesNotMatch')
  const payload: PayloadMode = /^[0-9a-f]{64}$/.test(payloadHash) ? { kind: 'sha256', hash: payloadHash } : { kind: 'unsigned' }
  return { accessKey: principal.accessKey, payload, presigned: true }
}

/**
 * Verifies the chain of chunk signatures of a STREAMING-AWS4-HMAC-SHA256-PAYLOAD body:
 * each chunk signs its data hash and the previous signature, starting from the seed
 * (S3 API reference, "Signature calculation: transfer payload in multiple chunks").
 */
export class ChunkSigner implements ChunkVerifier {
  private previous: string
  constructor(
    private readonly key: Uint8Array,
    private readonly amzDate: string,
    private readonly scope: string,
    seed: string,
  ) {
    this.previous = seed
  }

  verifyChunk(dataSha256Hex: string, signature: string): boolean {
    const toSign = `${ALGORITHM}-PAYLOAD\n${this.amzDate}\n${this.scope}\n${this.previous}\n${EMPTY_SHA256}\n${dataSha256Hex}`
    const expected = hmacHex(this.key, toSign)
    if (!signaturesEqual(expected, signature)) return false
    this.previous = signature
    return true
  }

  /** The trailer signature covers the trailing header lines, `name:value\n` each. */
  verifyTrailer(canonicalTrailer: string, signature: string): boolean {
    const toSign = `${ALGORITHM}-TRAILER\n${this.amzDate}\n${this.scope}\n${this.previous}\n${sha256Hex(canonicalTrailer)}`
    return signaturesEqual(hmacHex(this.key, toSign), signature)
  }
}

/** Signs a POST policy check: the signature is HMAC(signing key, base64 policy) (S3 API reference, "Browser-Based Uploads Using POST"). */
export async function verifyPostPolicySignature(
  policyBase64: string,
  credential: string,
  amzDate: string,
  signature: string,
  opts: VerifyOptions,
): Promise<string> {
  const cred = parseCredential(credential, 'query')
  checkScope(cred, amzDate, opts, 'query')
  const principal = await lookupPrincipal(opts, cred.accessKey)
  const key = await signingKey(principal, cred)
  if (!signaturesEqual(hmacHex(key, policyBase64), signature)) throw s3Error('SignatureDoesNotMatch')
  return principal.accessKey
}
