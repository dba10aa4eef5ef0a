/**
 * Bucket default encryption: PutBucketEncryption, GetBucketEncryption,
 * DeleteBucketEncryption (S3 API reference). Only the bucket's owner (or root) reaches
 * them: requireBucket refuses everyone else with AccessDenied.
 */
import { isS3sseError } from '../../errors.js'
import { s3Error } from '../../s3/errors.js'
import {
  AWS_MANAGED_KEY_ALIAS,
  encryptionNotFound,
  kmsKeyRef,
  parseBucketEncryption,
  renderBucketEncryption,
} from '../../s3/sse.js'
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
  if (config.kmsMasterKeyId !== undefined) {
    // aws mode: a named key must exist now, not fail every write later.
    const ref = kmsKeyRef(config.kmsMasterKeyId)
    if (ref !== AWS_MANAGED_KEY_ALIAS) {
      try {
        const info = await ctx.state.kms!.describeKey(ref)
        if (!info.enabled) throw s3Error('InvalidArgument', `The KMS key ${config.kmsMasterKeyId} is disabled.`)
      } catch (err) {
        if (isS3sseError(err, 'S3SSE_KMS_KEY_NOT_FOUND')) {
          throw s3Error('InvalidArgument', `The KMS key ${config.kmsMasterKeyId} named by KMSMasterKeyID does not exist.`)
        }
        throw err
      }
    }
  }
  setBucketEncryption(ctx, bucket, config)
  sendEmpty(ctx, 200)
}

export async function getBucketEncryption(ctx: RequestContext): Promise<void> {
  const config = bucketEncryption(requireBucket(ctx))
  if (!config) throw encryptionNotFound()
  sendXml(ctx, 200, renderBucketEncryption(config))
}

export async function deleteBucketEncryption(ctx: RequestContext): Promise<void> {
  setBucketEncryption(ctx, requireBucket(ctx), null)
  sendEmpty(ctx, 204)
}
