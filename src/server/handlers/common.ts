import { s3Error } from '../../s3/errors.js'
import { validateBucketName, type ObjectView } from '../../s3/objects.js'
import { canAccess } from '../auth/index.js'
import { WriteBody } from '../body.js'
import type { BucketRow, ObjectRow } from '../db.js'
import { readSmallBody, type RequestContext } from '../http.js'

/** The bucket a request names, if it exists and the caller may use it. */
export function requireBucket(ctx: RequestContext, name = ctx.bucket): BucketRow {
  validateBucketName(name)
  const bucket = ctx.state.meta.getBucket(name)
  if (!bucket) throw s3Error('NoSuchBucket')
  if (!canAccess(ctx.user, bucket)) throw s3Error('AccessDenied')
  return bucket
}

export function requireObject(ctx: RequestContext, bucket: string, key: string): ObjectRow {
  const obj = ctx.state.meta.getObject(bucket, key)
  if (!obj) throw s3Error('NoSuchKey')
  return obj
}

export function viewOf(obj: ObjectRow): ObjectView {
  return {
    size: obj.size,
    etag: obj.etag,
    lastModified: obj.lastModified,
    headers: obj.headers,
    meta: obj.meta,
    checksum: obj.checksum,
    partsCount: obj.partsCount,
    encryption: obj.encryption,
  }
}

/** A small XML request body, with the same digest checks as object data (Content-MD5, checksums, sha256). */
export async function readXmlBody(ctx: RequestContext): Promise<string> {
  const body = new WriteBody(ctx)
  const bytes = await readSmallBody(body.stream())
  await body.verify()
  return bytes.toString('utf8')
}

export function ownerXml(name: string): { ID: string; DisplayName: string } {
  return { ID: name, DisplayName: name }
}

/** ISO date with milliseconds as S3 XML carries it. */
export function isoDate(ms: number): string {
  return new Date(ms).toISOString()
}
