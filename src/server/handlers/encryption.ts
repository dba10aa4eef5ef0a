/**
 * Bucket default encryption: PutBucketEncryption, GetBucketEncryption,
 * DeleteBucketEncryption (S3 API reference). The bucket's owner (or root) reaches them, and
 * whoever its bucket policy allows s3:Get/PutEncryptionConfiguration; requireBucket refuses
 * everyone else with AccessDenied.
 */
import { s3Error } from '../../s3/errors.js'
import { encryptionNotFound, parseBucketEncryption, renderBucketEncryption } from '../../s3/sse.js'
import { bucketEncryption, setBucketEncryption } from '../encryption.js'
import { sendEmpty, sendXml, type RequestContext } from '../http.js'
import { readXmlBody, requireBodyDigest, requireBucket } from './common.js'

export async function putBucketEncryption(ctx: RequestContext): Promise<void> {
  const bucket = await requireBucket(ctx)
  requireBodyDigest(ctx)
  const config = parseBucketEncryption(await readXmlBody(ctx), ctx.state.config.mode)
  await setBucketEncryption(ctx.state, bucket, config)
  sendEmpty(ctx, 200)
}

export async function getBucketEncryption(ctx: RequestContext): Promise<void> {
  const config = bucketEncryption(await requireBucket(ctx))
  if (!config) throw encryptionNotFound()
  sendXml(ctx, 200, renderBucketEncryption(config))
}

export async function deleteBucketEncryption(ctx: RequestContext): Promise<void> {
  await setBucketEncryption(ctx.state, await requireBucket(ctx), null)
  sendEmpty(ctx, 204)
}
