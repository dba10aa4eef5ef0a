/**
 * Bucket default encryption: PutBucketEncryption, GetBucketEncryption,
 * DeleteBucketEncryption (S3 API reference). Only the bucket's owner (or root) reaches
 * them: requireBucket refuses everyone else with AccessDenied.
 */
import { s3Error } from '../../s3/errors.js'
import { encryptionNotFound, parseBucketEncryption, renderBucketEncryption } from '../../s3/sse.js'
import { bucketEncryption, setBucketEncryption } from '../encryption.js'
import { header, sendEmpty, sendXml, type RequestContext } from '../http.js'
import { readXmlBody, requireBucket } from './common.js'

/** S3 requires an integrity check on this body: Content-MD5 or a checksum. */
function requireBodyDigest(ctx: RequestContext): void {
  const h = ctx.req.headers
  const hasChecksum = Object.keys(h).some((n) => n.startsWith('x-amz-checksum-') && n !== 'x-amz-checksum-mode')
  const trailer = (header(ctx, 'x-amz-trailer') ?? '').toLowerCase().startsWith('x-amz-checksum-')
  if (h['content-md5'] === undefined && !hasChecksum && !trailer) {
    throw s3Error('InvalidRequest', 'Missing required header for this request: Content-MD5 (or an x-amz-checksum-* header).')
  }
}

export async function putBucketEncryption(ctx: RequestContext): Promise<void> {
  const bucket = requireBucket(ctx)
  requireBodyDigest(ctx)
  const config = parseBucketEncryption(await readXmlBody(ctx), ctx.state.config.mode)
  await setBucketEncryption(ctx.state, bucket, config)
  sendEmpty(ctx, 200)
}

export async function getBucketEncryption(ctx: RequestContext): Promise<void> {
  const config = bucketEncryption(requireBucket(ctx))
  if (!config) throw encryptionNotFound()
  sendXml(ctx, 200, renderBucketEncryption(config))
}

export async function deleteBucketEncryption(ctx: RequestContext): Promise<void> {
  await setBucketEncryption(ctx.state, requireBucket(ctx), null)
  sendEmpty(ctx, 204)
}
