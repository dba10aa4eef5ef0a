/**
 * Range and conditional request rules (RFC 9110 §13–14 as S3 applies them; S3 API
 * reference, GetObject / HeadObject / CopyObject). Pure: headers in, decision out.
 */
import { resolveRange } from '../object/open.js'
import { s3Error } from './errors.js'

export interface ByteRange {
  start: number
  /** Inclusive. */
  end: number
}

/**
 * `Range: bytes=a-b | a- | -n` against an object of `size` bytes: the header's syntax here, the
 * offsets by the object layer's resolveRange (RFC 9110 §14.1.2), the one place they are worked out.
 * Returns null when the header is absent or not a single byte range (S3 then serves the
 * whole object); throws InvalidRange (416) when it is a valid range that cannot be met.
 */
export function parseRange(header: string | undefined, size: number): ByteRange | null {
  if (header === undefined) return null
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header)
  if (!m) return null
  const [, a, b] = m
  if (a === '' && b === '') return null
  // Offsets past 2^53 are past any object: clamp them so they stay exact integers.
  const num = (s: string) => Math.min(Number(s), Number.MAX_SAFE_INTEGER)
  if (a !== '' && b !== '' && num(b) < num(a)) return null // syntactically invalid: ignored (RFC 9110 §14.1.1)
  const spec = a === '' ? { suffix: num(b) } : b === '' ? { start: num(a) } : { start: num(a), end: num(b) }
  const range = resolveRange(size, spec)
  if (!range) throw s3Error('InvalidRange')
  return range
}

export function contentRange(range: ByteRange, size: number): string {
  return `bytes ${range.start}-${range.end}/${size}`
}

/** Strips quotes and a weak marker so ETags compare by value. */
export function normalizeEtag(etag: string): string {
  let e = etag.trim()
  if (e.startsWith('W/')) e = e.slice(2)
  if (e.length >= 2 && e.startsWith('"') && e.endsWith('"')) e = e.slice(1, -1)
  return e
}

export function quoteEtag(etag: string): string {
  return `"${normalizeEtag(etag)}"`
}

function etagMatches(header: string, etag: string): boolean {
  const want = normalizeEtag(etag)
  return header.split(',').some((candidate) => {
    const c = candidate.trim()
    return c === '*' || normalizeEtag(c) === want
  })
}

function parseHttpDate(value: string | undefined): number | undefined {
  if (value === undefined) return undefined
  const t = Date.parse(value)
  return Number.isNaN(t) ? undefined : t
}

export interface Preconditions {
  ifMatch?: string
  ifNoneMatch?: string
  ifModifiedSince?: string
  ifUnmodifiedSince?: string
}

export type ConditionOutcome = 'proceed' | 'not-modified' | 'failed'

/**
 * Evaluates the four conditional headers against an object, the way S3 combines them:
 * If-Match true wins over a false If-Unmodified-Since, and If-None-Match false wins over
 * a true If-Modified-Since (S3 API reference, GetObject "conditional requests").
 * Dates compare at whole seconds, the resolution of HTTP dates.
 */
export function evaluatePreconditions(c: Preconditions, etag: string, lastModifiedMs: number): ConditionOutcome {
  const modifiedSec = Math.floor(lastModifiedMs / 1000)
  if (c.ifMatch !== undefined) {
    if (!etagMatches(c.ifMatch, etag)) return 'failed'
  } else {
    const since = parseHttpDate(c.ifUnmodifiedSince)
    if (since !== undefined && modifiedSec > Math.floor(since / 1000)) return 'failed'
  }
  if (c.ifNoneMatch !== undefined) {
    if (etagMatches(c.ifNoneMatch, etag)) return 'not-modified'
  } else {
    const since = parseHttpDate(c.ifModifiedSince)
    if (since !== undefined && modifiedSec <= Math.floor(since / 1000)) return 'not-modified'
  }
  return 'proceed'
}

/** GetObject / HeadObject: 412 PreconditionFailed or 304 Not Modified. */
export function checkReadPreconditions(c: Preconditions, etag: string, lastModifiedMs: number): void {
  const outcome = evaluatePreconditions(c, etag, lastModifiedMs)
  if (outcome === 'failed') throw s3Error('PreconditionFailed')
  if (outcome === 'not-modified') throw s3Error('NotModified')
}

/**
 * Conditional writes (S3 User Guide, "Conditional writes"; PutObject, CopyObject and
 * CompleteMultipartUpload): `If-None-Match: *` writes only if no object has the key, else 412;
 * `If-Match: ETag` (a list, quoted or not, or `*`) only if the current object has that ETag,
 * else 412 — or 404 NoSuchKey when there is none. S3 takes no ETag in If-None-Match on a
 * write (501). The check runs against the object a write would replace, before the body is
 * read and again inside the commit; undefined when the request sets no condition.
 */
export function writePrecondition(h: { ifMatch?: string; ifNoneMatch?: string }): ((existing: { etag: string; lastModified: number } | undefined) => void) | undefined {
  const { ifMatch, ifNoneMatch } = h
  if (ifNoneMatch === undefined && ifMatch === undefined) return undefined
  if (ifNoneMatch !== undefined && ifNoneMatch.trim() !== '*') {
    throw s3Error('NotImplemented', 'If-None-Match on a write takes only "*": write only if no object has the key.')
  }
  return (existing) => {
    if (ifNoneMatch !== undefined && existing) throw s3Error('PreconditionFailed')
    if (ifMatch !== undefined) {
      if (!existing) throw s3Error('NoSuchKey')
      if (!etagMatches(ifMatch, existing.etag)) throw s3Error('PreconditionFailed')
    }
  }
}

/** CopyObject / UploadPartCopy `x-amz-copy-source-if-*`: every failure is 412. */
export function checkCopySourcePreconditions(c: Preconditions, etag: string, lastModifiedMs: number): void {
  if (evaluatePreconditions(c, etag, lastModifiedMs) !== 'proceed') throw s3Error('PreconditionFailed')
}

/**
 * `x-amz-copy-source-range: bytes=a-b` (UploadPartCopy): both ends required and inside
 * the source; anything else is InvalidArgument / InvalidRange as S3 answers.
 */
export function parseCopySourceRange(header: string | undefined, size: number): ByteRange | null {
  if (header === undefined) return null
  const m = /^bytes=(\d+)-(\d+)$/.exec(header.trim())
  if (!m) throw s3Error('InvalidArgument', 'The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy')
  const start = Number(m[1])
  const end = Number(m[2])
  if (end < start) throw s3Error('InvalidArgument', 'The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy')
  if (end >= size) throw s3Error('InvalidRange', `Range specified is not valid for source object of size: ${size}`)
  return { start, end }
}
