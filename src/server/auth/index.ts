/**
 * Who is calling: SigV4 in the Authorization header or a presigned URL (PostObject
 * authenticates from its form instead), and whether that user may touch a bucket.
 */
import { s3Error } from '../../s3/errors.js'
import type { User } from '../credentials.js'
import type { BucketRow } from '../meta/index.js'
import { header, type RequestContext } from '../http.js'
import { lookupUser, type ServerState } from '../state.js'
import { verifyHeaderSignature, verifyPresigned, type VerifyOptions } from './sigv4.js'

export function verifyOptions(state: ServerState): VerifyOptions {
  return {
    region: state.config.region,
    lookup: async (accessKey) => {
      const u = await lookupUser(state, accessKey)
      return u ? { accessKey: u.accessKey, secretKey: u.secretKey } : undefined
    },
  }
}

export async function authenticate(ctx: RequestContext): Promise<void> {
  const signed = { method: ctx.method, rawPath: ctx.rawPath, query: ctx.queryPairs, headers: ctx.req.headers, now: Date.now() }
  const authorization = header(ctx, 'authorization')
  const opts = verifyOptions(ctx.state)
  let verified
  if (authorization !== undefined) verified = await verifyHeaderSignature(signed, authorization, opts)
  else if (ctx.query.has('X-Amz-Signature') || ctx.query.has('X-Amz-Algorithm')) verified = await verifyPresigned(signed, opts)
  else throw s3Error('AccessDenied', 'Anonymous access is not allowed; sign the request with AWS Signature Version 4.')
  ctx.user = await lookupUser(ctx.state, verified.accessKey)
  ctx.payload = verified.payload
  ctx.presigned = verified.presigned
}

/** A user sees and touches only the buckets they own; root administers all of them. */
export function canAccess(user: User | undefined, bucket: BucketRow): boolean {
  return user !== undefined && (user.root === true || bucket.owner === user.name)
}

/**
 * Signature Version 2 (`Authorization: AWS key:sig`, or `AWSAccessKeyId`/`Signature` in the
 * query), which this server does not accept (see refuseSigV2 in ../encryption.ts).
 */
export function isSigV2(ctx: RequestContext): boolean {
  const authorization = header(ctx, 'authorization')
  if (authorization !== undefined) return /^AWS [^\s:]+:/.test(authorization)
  return ctx.query.has('AWSAccessKeyId') && ctx.query.has('Signature')
}
