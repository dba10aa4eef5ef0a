/**
 * Who is calling: SigV4 in the Authorization header or a presigned URL — and in aws mode
 * SigV2 too, as Amazon S3 accepts it (./sigv2.ts) — (PostObject authenticates from its form
 * instead), and whether that user may touch a bucket.
 *
 * The order of a request's checks is fixed (server.ts): the signature scheme is read from
 * the request alone, the request is authenticated, then authorised, and only then are the
 * rules that depend on stored objects applied (HTTPS and SigV4 for encrypted data). A
 * scheme without a verifier is refused here, the same way for every bucket and key, so an
 * unauthenticated caller learns nothing about what is stored.
 */
import { s3Error } from '../../s3/errors.js'
import type { User } from '../credentials.js'
import type { BucketRow } from '../meta/index.js'
import { header, type RequestContext } from '../http.js'
import { lookupUser, type ServerState } from '../state.js'
import { virtualHostedBucket } from '../router.js'
import { verifyHeaderV2, verifyPresignedV2 } from './sigv2.js'
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

/** How a request says it is signed, from its headers and query alone. */
export type SignatureScheme = 'v4-header' | 'v4-query' | 'v2-header' | 'v2-query' | 'none'

export function signatureScheme(ctx: RequestContext): SignatureScheme {
  const authorization = header(ctx, 'authorization')
  if (authorization !== undefined) return /^AWS [^\s:]+:/.test(authorization) ? 'v2-header' : 'v4-header'
  if (ctx.query.has('X-Amz-Signature') || ctx.query.has('X-Amz-Algorithm')) return 'v4-query'
  if (ctx.query.has('AWSAccessKeyId') && ctx.query.has('Signature')) return 'v2-query'
  return 'none'
}

/** oss mode has no Signature Version 2: refused alike for every request, before anything is looked up. */
function unsupportedScheme(): Error {
  return s3Error('InvalidRequest', 'The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.')
}

/** Sets ctx.user, ctx.signatureVersion, ctx.payload and ctx.presigned, or throws the S3 error. */
export async function authenticate(ctx: RequestContext): Promise<void> {
  const signed = { method: ctx.method, rawPath: ctx.rawPath, query: ctx.queryPairs, headers: ctx.req.headers, now: Date.now() }
  const opts = verifyOptions(ctx.state)
  let verified
  switch (signatureScheme(ctx)) {
    case 'v4-header':
      verified = await verifyHeaderSignature(signed, header(ctx, 'authorization')!, opts)
      break
    case 'v4-query':
      verified = await verifyPresigned(signed, opts)
      break
    case 'v2-header':
    case 'v2-query':
      // aws mode verifies SigV2 (signatureVersion 2); the transport rule after authorisation
      // then refuses it for encrypted data with S3's message. oss mode takes SigV4 only.
      if (ctx.state.config.mode !== 'aws') throw unsupportedScheme()
      return authenticateV2(ctx)
    case 'none':
      throw s3Error('AccessDenied', 'Anonymous access is not allowed; sign the request with AWS Signature Version 4.')
  }
  ctx.user = await lookupUser(ctx.state, verified.accessKey)
  ctx.signatureVersion = 4
  ctx.payload = verified.payload
  ctx.presigned = verified.presigned
}

/**
 * SigV2 (aws mode). A presigned URL's x-amz-* parameters stand for headers.
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
  ctx.user = await lookupUser(ctx.state, verified.accessKey)
  ctx.signatureVersion = 2
  ctx.payload = { kind: 'unsigned' }
  ctx.presigned = verified.presigned
}

/**
 * A user sees and touches only the buckets they own — by id, never by name, so a user made
 * later under a removed user's name owns nothing of theirs; root administers all of them.
 */
export function canAccess(user: User | undefined, bucket: BucketRow): boolean {
  return user !== undefined && (user.root === true || bucket.owner === user.id)
}
