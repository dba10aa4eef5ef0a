/**
 * Object tagging: GetObjectTagging, PutObjectTagging, DeleteObjectTagging (S3 API reference).
 * The rules and XML are src/s3/tagging.ts; the tags live in the object's row, and changing
 * them changes nothing else about the object (not its ETag, not Last-Modified).
 */
import { s3Error } from '../../s3/errors.js'
import { validateKey } from '../../s3/objects.js'
import { parseTagging, renderTagging, type TagSet } from '../../s3/tagging.js'
import { sendEmpty, sendXml, type RequestContext } from '../http.js'
import { readXmlBody, requireBucket, requireObject } from './common.js'

function checkVersion(ctx: RequestContext): void {
  const v = ctx.query.get('versionId')
  if (v !== undefined && v !== 'null') throw s3Error('NoSuchVersion')
}

export async function getObjectTagging(ctx: RequestContext): Promise<void> {
  const bucket = await requireBucket(ctx)
  validateKey(ctx.key)
  checkVersion(ctx)
  const obj = await requireObject(ctx, bucket.name, ctx.key)
  sendXml(ctx, 200, renderTagging(obj.tags ?? []), { 'x-amz-version-id': 'null' })
}

/** Replaces the tags of the object the request names; the object is looked up before any body is read. */
async function setTags(ctx: RequestContext, tags: () => Promise<TagSet>): Promise<void> {
  const bucket = await requireBucket(ctx)
  validateKey(ctx.key)
  checkVersion(ctx)
  await requireObject(ctx, bucket.name, ctx.key)
  if (!(await ctx.state.meta.setObjectTags(bucket.name, ctx.key, await tags()))) throw s3Error('NoSuchKey')
}

export async function putObjectTagging(ctx: RequestContext): Promise<void> {
  // The body's digests (Content-MD5, checksums) are verified as for any XML body.
  await setTags(ctx, async () => parseTagging(await readXmlBody(ctx)))
  sendEmpty(ctx, 200, { 'x-amz-version-id': 'null' })
}

export async function deleteObjectTagging(ctx: RequestContext): Promise<void> {
  await setTags(ctx, async () => [])
  sendEmpty(ctx, 204, { 'x-amz-version-id': 'null' })
}
