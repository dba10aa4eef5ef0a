/**
 * Bucket replication: PutBucketReplication, GetBucketReplication, DeleteBucketReplication
 * (S3 API reference). Only the source bucket's owner (or root) reaches them: requireBucket
 * refuses everyone else with AccessDenied. The replicating itself is src/server/replication.ts.
 */
import { s3Error } from '../../s3/errors.js'
import {
  parseReplicationConfiguration,
  renderReplicationConfiguration,
  replicationNotFound,
  type ReplicationConfiguration,
} from '../../s3/replication.js'
import { canAccess } from '../auth/index.js'
import type { BucketRow } from '../meta/index.js'
import { sendEmpty, sendXml, type RequestContext } from '../http.js'
import { readXmlBody, requireBodyDigest, requireBucket } from './common.js'

function storedReplication(bucket: BucketRow): ReplicationConfiguration | undefined {
  return bucket.settings.replication as ReplicationConfiguration | undefined
}

export async function putBucketReplication(ctx: RequestContext): Promise<void> {
  const bucket = await requireBucket(ctx)
  requireBodyDigest(ctx)
  const config = parseReplicationConfiguration(await readXmlBody(ctx), bucket.name)
  // Destinations are buckets on this server that the caller may write; replicas go only to
  // the owner each destination has now (checked again before every replica is written).
  for (const rule of config.rules) {
    const name = rule.destination.bucket
    const dest = await ctx.state.meta.getBucket(name)
    if (!dest) throw s3Error('InvalidRequest', `Destination bucket must exist: rule "${rule.id}" names ${name}, which is not a bucket on this server.`)
    if (!canAccess(ctx.user, dest)) throw s3Error('AccessDenied', `Rule "${rule.id}": you do not own the destination bucket ${name}.`)
    rule.destination.owner = dest.owner
  }
  const stored = await ctx.state.meta.updateBucketSettings(bucket.name, (settings) => {
    settings.replication = config
  })
  if (!stored) throw s3Error('NoSuchBucket')
  sendEmpty(ctx, 200)
}

export async function getBucketReplication(ctx: RequestContext): Promise<void> {
  const config = storedReplication(await requireBucket(ctx))
  if (!config) throw replicationNotFound()
  sendXml(ctx, 200, renderReplicationConfiguration(config))
}

/** Writes already queued are still replicated: they were accepted under the configuration. */
export async function deleteBucketReplication(ctx: RequestContext): Promise<void> {
  const bucket = await requireBucket(ctx)
  await ctx.state.meta.updateBucketSettings(bucket.name, (settings) => {
    delete settings.replication
  })
  sendEmpty(ctx, 204)
}
