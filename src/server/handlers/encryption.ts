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
import { sendEmpty, sendXml, type RequestContext } from '../http.js'
import { readXmlBody, requireBodyDigest, requireBucket } from './common.js'

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
