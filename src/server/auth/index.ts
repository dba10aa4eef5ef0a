/**
 * Who is calling: SigV4 in the Authorization header or a presigned URL — and in aws mode
 * SigV2 too, as Amazon S3 accepts it (PostObject authenticates from its form instead) —
 * and whether that user may touch a bucket.
 */
import { s3Error } from '../../s3/errors.js'
import type { User } from '../credentials.js'
import type { BucketRow } from '../db.js'
import { header, type RequestContext } from '../http.js'
import { lookupUser, type ServerState } from '../state.js'
import { virtualHostedBucket } from '../router.js'
import { isSigV2Request, verifyHeaderV2, verifyPresignedV2 } from './sigv2.js'
import { verifyHeaderSignature, verifyPresigned, type VerifyOptions } from './sigv4.js'

export function verifyOptions(state: ServerState): VerifyOptions {
  return {
    region: state.config.region,
    lookup: (accessKey) => {
      const u = lookupUser(state, accessKey)
      return u ? { accessKey: u.accessKey, secretKey: u.secretKey } : undefined
    },
  }
}

export async function authenticate(ctx: RequestContext): Promise<void> {
  if (ctx.state.config.mode === 'aws' && isSigV2Request(ctx.req.headers, ctx.query)) return authenticateV2(ctx)
  const signed = { method: ctx.method, rawPath: ctx.rawPath, query: ctx.queryPairs, headers: ctx.req.headers, now: Date.now() }
  const authorization = header(ctx, 'authorization')
  const opts = verifyOptions(ctx.state)
  let verified
  if (authorization !== undefined) verified = await verifyHeaderSignature(signed, authorization, opts)
  else if (ctx.query.has('X-Amz-Signature') || ctx.query.has('X-Amz-Algorithm')) verified = await verifyPresigned(signed, opts)
  else throw s3Error('AccessDenied', 'Anonymous access is not allowed; sign the request with AWS Signature Version 4.')
  ctx.user = lookupUser(ctx.state, verified.accessKey)
  ctx.payload = verified.payload
  ctx.presigned = verified.presigned
}

/**
 * SigV2 (aws mode). The request is marked as not SigV4, so the transport rule still refuses
 * it when it moves SSE-KMS data. A presigned URL's x-amz-* parameters stand for headers.
 */
async function authenticateV2(ctx: RequestContext): Promise<void> {
  const url = ctx.req.url ?? '/'
  const q = url.indexOf('?')
  const signed = {
    method: ctx.method,
    rawPath: ctx.rawPath,
    rawQuery: q < 0 ? '' : url.slice(q + 1),
    headers: ctx.req.headers,
    virtualHostBucket: virtualHostedBucket(ctx.req.headers.host, ctx.state.config.domains),
    now: Date.now(),
  }
  const authorization = header(ctx, 'authorization')
  const opts = verifyOptions(ctx.state)
  const verified = authorization !== undefined ? await verifyHeaderV2(signed, authorization, opts) : await verifyPresignedV2(signed, opts)
  for (const [name, value] of Object.entries(verified.queryHeaders)) ctx.req.headers[name] ??= value
  ctx.user = lookupUser(ctx.state, verified.accessKey)
  ctx.payload = { kind: 'unsigned' }
  ctx.presigned = verified.presigned
  ctx.sigV2 = true
}

/** A user sees and touches only the buckets they own; root administers all of them. */
export function canAccess(user: User | undefined, bucket: BucketRow): boolean {
  return user !== undefined && (user.root === true || bucket.owner === user.name)
}
