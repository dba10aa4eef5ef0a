/**
 * Listing rules shared by ListObjects, ListObjectsV2, ListObjectVersions and
 * ListMultipartUploads (S3 API reference): prefix filter, delimiter roll-up into
 * CommonPrefixes, max-keys counting both kinds, markers. No storage here: the caller supplies
 * the sorted rows (a MetaStore query, which may be async).
 */
import { s3Error } from './errors.js'

/**
 * Rows whose key starts with `prefix` and sorts after `after` (exclusive; '' = from the
 * start), in ascending UTF-8 byte order, at most `limit` of them.
 */
export type ListSource<T> = (after: string, prefix: string, limit: number) => T[] | Promise<T[]>

export interface ListRequest {
  prefix: string
  delimiter: string
  maxKeys: number
  /** Exclusive lower bound (marker, start-after or the decoded continuation token). */
  after: string
}

export interface ListPage<T> {
  contents: T[]
  commonPrefixes: string[]
  isTruncated: boolean
  /** The last key or common prefix returned (S3's NextMarker). */
  nextMarker?: string
  /** Where the next page resumes: past the last key, or past every key under the last prefix. */
  resumeAfter?: string
}

/** A string that sorts after every key that starts with `prefix` (U+10FFFF is the largest code point). */
export function pastPrefix(prefix: string): string {
  return prefix + '\u{10FFFF}'
}

const BATCH = 1000

export async function listPage<T extends { key: string }>(source: ListSource<T>, req: ListRequest): Promise<ListPage<T>> {
  const { prefix, delimiter, maxKeys } = req
  const contents: T[] = []
  const commonPrefixes: string[] = []
  let cursor = req.after
  // A marker that is itself a common prefix (a NextMarker we handed out) resumes past it.
  if (delimiter !== '' && cursor.startsWith(prefix) && cursor.endsWith(delimiter)) {
    const rest = cursor.slice(prefix.length)
    if (rest.indexOf(delimiter) === rest.length - delimiter.length) cursor = pastPrefix(cursor)
  }
  let count = 0
  let lastPrefix: string | undefined
  let nextMarker: string | undefined
  let resumeAfter: string | undefined
  for (;;) {
    const rows = await source(cursor, prefix, BATCH)
    if (rows.length === 0) return { contents, commonPrefixes, isTruncated: false, nextMarker, resumeAfter }
    let skipped = false
    for (const row of rows) {
      const rest = row.key.slice(prefix.length)
      const cut = delimiter === '' ? -1 : rest.indexOf(delimiter)
      if (cut >= 0) {
        const common = prefix + rest.slice(0, cut + delimiter.length)
        if (common === lastPrefix) {
          cursor = row.key
          continue
        }
        if (count >= maxKeys) return { contents, commonPrefixes, isTruncated: true, nextMarker, resumeAfter }
        commonPrefixes.push(common)
        count++
        lastPrefix = common
        nextMarker = common
        resumeAfter = pastPrefix(common)
        // Skip every other key under this prefix with one new query.
        cursor = resumeAfter
        skipped = true
        break
      }
      if (count >= maxKeys) return { contents, commonPrefixes, isTruncated: true, nextMarker, resumeAfter }
      contents.push(row)
      count++
      nextMarker = row.key
      resumeAfter = row.key
      cursor = row.key
    }
    if (!skipped && rows.length < BATCH) {
      return { contents, commonPrefixes, isTruncated: false, nextMarker, resumeAfter }
    }
  }
}

/** max-keys / max-uploads / max-parts: 0..1000, default 1000 (S3 caps at 1000). */
export function parseMaxKeys(value: string | undefined, name = 'max-keys'): number {
  if (value === undefined || value === '') return 1000
  if (!/^\d+$/.test(value)) throw s3Error('InvalidArgument', `Provided ${name} not an integer or within integer range`)
  return Math.min(Number(value), 1000)
}

/** ListObjectsV2 continuation tokens: opaque to clients, the resume point inside. */
export function encodeContinuationToken(after: string): string {
  return Buffer.from(after, 'utf8').toString('base64url')
}

export function decodeContinuationToken(token: string): string {
  if (!/^[A-Za-z0-9_-]*$/.test(token)) throw s3Error('InvalidArgument', 'The continuation token provided is incorrect')
  return Buffer.from(token, 'base64url').toString('utf8')
}
