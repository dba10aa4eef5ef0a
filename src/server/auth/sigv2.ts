/**
 * AWS Signature Version 2 for S3 (S3 Developer Guide, "Signing and authenticating REST
 * requests", "Query string request authentication alternative", "Browser-based uploads
 * using POST (AWS signature version 2)"): the `Authorization: AWS key:signature` header,
 * presigned URLs with AWSAccessKeyId / Expires / Signature, and the POST policy signature.
 * The signature is base64(HMAC-SHA1(secret, StringToSign)) with
 *
 *   StringToSign = Verb \n Content-MD5 \n Content-Type \n Date-or-Expires \n
 *                  CanonicalizedAmzHeaders CanonicalizedResource
 *
 * Only the server's aws mode accepts it, as Amazon S3 does; requests that move SSE-KMS
 * data are refused afterwards by the transport rule, which wants SigV4.
 */
import { createHmac, timingSafeEqual } from 'node:crypto'
import type { IncomingHttpHeaders } from 'node:http'
import { s3Error } from '../../s3/errors.js'
import { MAX_SKEW_MS, type Principal, type VerifyOptions } from './sigv4.js'

/**
 * Query parameters that belong to the CanonicalizedResource (the S3 guide's subresources
 * and response overrides, and the ones the SDKs add for newer subresources: botocore's
 * HmacV1Auth list, which includes s3cmd's).
 */
export const SIGV2_SUBRESOURCES = new Set([
  'accelerate', 'acl', 'analytics', 'cors', 'defaultObjectAcl', 'delete', 'inventory', 'lifecycle', 'location',
  'logging', 'metrics', 'notification', 'object-lock', 'partNumber', 'policy', 'replication', 'requestPayment',
  'response-cache-control', 'response-content-disposition', 'response-content-encoding', 'response-content-language',
  'response-content-type', 'response-expires', 'restore', 'select', 'select-type', 'storageClass', 'tagging', 'torrent',
  'uploadId', 'uploads', 'versionId', 'versioning', 'versions', 'website',
])

export interface SignedV2Request {
  method: string
  /** The path as received, still percent-encoded (for virtual-hosted style, without the bucket). */
  rawPath: string
  /** The query string as received (without '?'). */
  rawQuery: string
  headers: IncomingHttpHeaders
  /** The bucket named by the Host header (virtual-hosted style), if any. */
  virtualHostBucket?: string
  now: number
}

export interface VerifiedV2 {
  accessKey: string
  presigned: boolean
  /** Presigned: x-amz-* query parameters, which stand for headers of the same name. */
  queryHeaders: Record<string, string>
}

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name]
  return Array.isArray(v) ? v.join(',') : v
}

interface RawParam {
  name: string
  value: string | undefined
}

function rawParams(rawQuery: string): RawParam[] {
  const out: RawParam[] = []
  for (const part of rawQuery.split('&')) {
    if (part === '') continue
    const eq = part.indexOf('=')
    try {
      const name = decodeURIComponent(eq < 0 ? part : part.slice(0, eq))
      out.push({ name, value: eq < 0 ? undefined : decodeURIComponent(part.slice(eq + 1).replace(/\+/g, '%20')) })
    } catch {
      throw s3Error('InvalidArgument', 'The query string is not valid percent-encoded UTF-8.')
    }
  }
  return out
}

/**
 * CanonicalizedResource: the bucket (for virtual-hosted style), the path as sent, then the
 * subresources sorted by name with their decoded values (`uploads` has none).
 */
export function canonicalResourceV2(req: Pick<SignedV2Request, 'rawPath' | 'rawQuery' | 'virtualHostBucket'>): string {
  let resource = (req.virtualHostBucket !== undefined ? `/${req.virtualHostBucket}` : '') + req.rawPath
  const sub = rawParams(req.rawQuery)
    .filter((p) => SIGV2_SUBRESOURCES.has(p.name))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  if (sub.length > 0) resource += '?' + sub.map((p) => (p.value === undefined || p.value === '' ? p.name : `${p.name}=${p.value}`)).join('&')
  return resource
}

/** CanonicalizedAmzHeaders: x-amz-* names lower-cased and sorted, `name:value\n` each. */
function canonicalAmzHeaders(amz: Map<string, string[]>): string {
  return [...amz.keys()]
    .sort()
    .map((name) => `${name}:${amz.get(name)!.map((v) => v.trim().replace(/\s*\n\s*/g, ' ')).join(',')}\n`)
    .join('')
}

export function stringToSignV2(method: string, contentMd5: string, contentType: string, date: string, amz: Map<string, string[]>, resource: string): string {
  return `${method}\n${contentMd5}\n${contentType}\n${date}\n${canonicalAmzHeaders(amz)}${resource}`
}

export function signV2(secret: string, stringToSign: string): string {
  return createHmac('sha1', secret).update(stringToSign, 'utf8').digest('base64')
}

function equal(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8')
  const y = Buffer.from(b, 'utf8')
  return x.length === y.length && timingSafeEqual(x, y)
}

async function principalFor(opts: VerifyOptions, accessKey: string): Promise<Principal> {
  const p = await opts.lookup(accessKey)
  if (!p) throw s3Error('InvalidAccessKeyId')
  return p
}

function amzHeadersOf(headers: IncomingHttpHeaders): Map<string, string[]> {
  const amz = new Map<string, string[]>()
  for (const [name, value] of Object.entries(headers)) {
    if (!name.startsWith('x-amz-') || value === undefined) continue
    amz.set(name, Array.isArray(value) ? value : [value])
  }
  return amz
}

/** Whether a request is signed with SigV2 (header or query string). */
export function isSigV2Request(headers: IncomingHttpHeaders, query: Map<string, string>): boolean {
  const authorization = header(headers, 'authorization')
  if (authorization !== undefined) return /^AWS [^\s:]+:/.test(authorization)
  return query.has('AWSAccessKeyId') && query.has('Signature')
}

/** Verifies `Authorization: AWS AccessKeyId:Signature`, with the request date within 15 minutes. */
export async function verifyHeaderV2(req: SignedV2Request, authorization: string, opts: VerifyOptions): Promise<VerifiedV2> {
  const m = /^AWS ([^\s:]+):(\S+)$/.exec(authorization.trim())
  if (!m) throw s3Error('AuthorizationHeaderMalformed', 'The authorization header is malformed; expecting "AWS AccessKeyId:Signature".')
  const [, accessKey, signature] = m
  // With x-amz-date the Date line of the string to sign is empty (the header is signed among the x-amz-* ones).
  const amzDate = header(req.headers, 'x-amz-date')
  const date = header(req.headers, 'date')
  const when = Date.parse(amzDate ?? date ?? '')
  if (Number.isNaN(when)) throw s3Error('AccessDenied', 'AWS authentication requires a valid Date or x-amz-date header')
  if (Math.abs(req.now - when) > MAX_SKEW_MS) throw s3Error('RequestTimeTooSkewed')
  const principal = await principalFor(opts, accessKey)
  const toSign = stringToSignV2(
    req.method,
    header(req.headers, 'content-md5')?.trim() ?? '',
    header(req.headers, 'content-type')?.trim() ?? '',
    amzDate !== undefined ? '' : (date ?? '').trim(),
    amzHeadersOf(req.headers),
    canonicalResourceV2(req),
  )
  if (!equal(signV2(principal.secretKey, toSign), signature)) throw s3Error('SignatureDoesNotMatch')
  return { accessKey: principal.accessKey, presigned: false, queryHeaders: {} }
}

/**
 * Verifies a presigned URL (AWSAccessKeyId, Expires in epoch seconds, Signature). x-amz-*,
 * Content-Type and Content-MD5 may come as query parameters instead of headers, as botocore
 * puts them; they are signed like headers.
 */
export async function verifyPresignedV2(req: SignedV2Request, opts: VerifyOptions): Promise<VerifiedV2> {
  const params = rawParams(req.rawQuery)
  const get = (name: string) => params.find((p) => p.name === name)?.value
  const accessKey = get('AWSAccessKeyId')
  const signature = get('Signature')
  const expires = get('Expires')
  if (!accessKey || !signature || expires === undefined) {
    throw s3Error('AccessDenied', 'Query-string authentication requires the Signature, Expires and AWSAccessKeyId parameters')
  }
  if (!/^\d+$/.test(expires)) throw s3Error('AccessDenied', 'Invalid date (should be seconds since epoch): ' + expires.slice(0, 40))
  if (req.now > Number(expires) * 1000) throw s3Error('AccessDenied', 'Request has expired')
  const principal = await principalFor(opts, accessKey)
  const amz = amzHeadersOf(req.headers)
  const queryHeaders: Record<string, string> = {}
  for (const p of params) {
    const name = p.name.toLowerCase()
    if (!name.startsWith('x-amz-') || p.value === undefined) continue
    queryHeaders[name] = p.value
    amz.set(name, [...(amz.get(name) ?? []), p.value])
  }
  const fromQuery = (name: string) => params.find((p) => p.name.toLowerCase() === name)?.value
  const toSign = stringToSignV2(
    req.method,
    (header(req.headers, 'content-md5') ?? fromQuery('content-md5') ?? '').trim(),
    (header(req.headers, 'content-type') ?? fromQuery('content-type') ?? '').trim(),
    expires,
    amz,
    canonicalResourceV2(req),
  )
  if (!equal(signV2(principal.secretKey, toSign), signature)) throw s3Error('SignatureDoesNotMatch')
  return { accessKey: principal.accessKey, presigned: true, queryHeaders }
}

/** The POST policy with SigV2: signature = base64(HMAC-SHA1(secret, base64 policy)). */
export async function verifyPostPolicyV2(policyBase64: string, accessKey: string, signature: string, opts: VerifyOptions): Promise<string> {
  const principal = await principalFor(opts, accessKey)
  if (!equal(signV2(principal.secretKey, policyBase64), signature)) throw s3Error('SignatureDoesNotMatch')
  return principal.accessKey
}
