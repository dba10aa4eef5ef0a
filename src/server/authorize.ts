/**
 * Who may do what to a bucket: the owner and root by identity, anyone else only when the
 * bucket's policy allows it; an explicit Deny in the policy overrides both (IAM evaluation
 * logic; the rules are pure, in src/s3/policy.ts). Root can always read, replace and delete
 * a bucket's policy, so a policy that denies everyone can still be undone.
 *
 * The condition keys a request offers: aws:SecureTransport, aws:SourceIp, aws:username,
 * s3:x-amz-server-side-encryption and …-aws-kms-key-id (the request's headers — or, for
 * UploadPart, UploadPartCopy and CompleteMultipartUpload, which carry none, what the upload
 * was created with, so "deny PutObject unless aws:kms" covers every step of a multipart
 * upload), …-customer-algorithm, s3:x-amz-content-sha256, s3:signatureversion,
 * s3:authType, and s3:prefix / s3:delimiter / s3:max-keys on listings.
 */
import { s3Error } from '../s3/errors.js'
import { evaluatePolicy, OPERATION_ACTIONS, parseBucketPolicy, resourceArn, type BucketPolicy, type PolicyRequest } from '../s3/policy.js'
import { canAccess } from './auth/index.js'
import type { User } from './credentials.js'
import type { RequestContext } from './http.js'
import type { BucketRow } from './meta/index.js'

type HeaderSource = Record<string, string | string[] | undefined>

/** What a request asks of a bucket: an IAM action on the bucket or on one key. */
export interface Access {
  action: string
  /** The object key; '' or undefined for the bucket itself. */
  key?: string
  /** Where the request's SSE headers are (a PostObject's form fields); default: its headers. */
  headers?: HeaderSource
}

const POLICY_ACTIONS = new Set(['s3:GetBucketPolicy', 's3:PutBucketPolicy', 's3:DeleteBucketPolicy'])
const UPLOAD_OPERATIONS = new Set(['UploadPart', 'UploadPartCopy', 'CompleteMultipartUpload'])

/** Parsed policies by their text: a bucket's policy is parsed once, not on every request. */
const parsed = new Map<string, BucketPolicy>()

/** The bucket's policy, if it has one (validated when it was put). */
export function bucketPolicy(bucket: BucketRow): BucketPolicy | undefined {
  const text = bucket.settings.policy
  if (typeof text !== 'string') return undefined
  let p = parsed.get(text)
  if (!p) {
    // Principals were checked when the policy was put; a user removed since just matches nobody.
    p = parseBucketPolicy(text, { bucket: bucket.name, isUser: () => true })
    if (parsed.size > 1000) parsed.clear()
    parsed.set(text, p)
  }
  return p
}

function one(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v.join(',') : v
}

/** The access an operation needs by default: its action, on the request's key or bucket. */
export function defaultAccess(ctx: RequestContext): Access | undefined {
  const entry = ctx.op === undefined ? undefined : OPERATION_ACTIONS[ctx.op]
  if (!entry) return undefined
  return { action: entry.action, key: entry.on === 'object' ? ctx.key : undefined }
}

async function conditionContext(ctx: RequestContext, access: Access): Promise<PolicyRequest['context']> {
  const h = access.headers ?? ctx.req.headers
  let sse = one(h['x-amz-server-side-encryption'])
  let kmsKey = one(h['x-amz-server-side-encryption-aws-kms-key-id'])
  if (ctx.op !== undefined && UPLOAD_OPERATIONS.has(ctx.op) && access.action === 's3:PutObject') {
    const upload = await ctx.state.meta.getUpload(ctx.query.get('uploadId') ?? '')
    if (upload && upload.bucket === ctx.bucket && upload.key === ctx.key) {
      sse = upload.encryption?.algorithm
      kmsKey = upload.encryption?.keyName ?? upload.encryption?.keyId
    }
  }
  const authorization = one(ctx.req.headers.authorization)
  return {
    'aws:securetransport': ctx.secure ? 'true' : 'false',
    'aws:sourceip': ctx.req.socket.remoteAddress,
    'aws:username': ctx.user?.name,
    'aws:currenttime': new Date().toISOString(),
    's3:x-amz-server-side-encryption': sse,
    's3:x-amz-server-side-encryption-aws-kms-key-id': kmsKey,
    's3:x-amz-server-side-encryption-customer-algorithm': one(h['x-amz-server-side-encryption-customer-algorithm']),
    's3:x-amz-content-sha256': one(ctx.req.headers['x-amz-content-sha256']),
    's3:signatureversion': ctx.signatureVersion === 2 ? 'AWS' : 'AWS4-HMAC-SHA256',
    's3:authtype': ctx.op === 'PostObject' ? 'POST' : authorization !== undefined ? 'REST-HEADER' : 'REST-QUERY-STRING',
    ...(access.key ? {} : { 's3:prefix': ctx.query.get('prefix'), 's3:delimiter': ctx.query.get('delimiter'), 's3:max-keys': ctx.query.get('max-keys') }),
  }
}

/** The owner (by user id) or root. */
function isOwnerOrRoot(user: User | undefined, bucket: BucketRow): boolean {
  return canAccess(user, bucket)
}

/**
 * Whether the bucket's policy grants the user anything at all (an Allow statement naming
 * them or everyone): such a user may learn what the transport rule looks at (whether data
 * is encrypted); anyone else is told AccessDenied before anything stored is looked at.
 */
export function policyGrants(bucket: BucketRow, user: User | undefined): boolean {
  const policy = user ? bucketPolicy(bucket) : undefined
  return policy !== undefined && policy.statements.some((s) => s.effect === 'Allow' && (s.principal.anyone || s.principal.users.includes(user!.name)))
}

/**
 * AccessDenied unless the caller may have `access` to `bucket`. Without a policy this is the
 * owner-or-root rule; with one, its Deny and Allow statements decide as above.
 */
export async function authorize(ctx: RequestContext, bucket: BucketRow, access: Access | undefined): Promise<void> {
  const user = ctx.user
  const policy = bucketPolicy(bucket)
  if (!policy || !access || !user) {
    if (!isOwnerOrRoot(user, bucket)) throw s3Error('AccessDenied')
    return
  }
  const decision = evaluatePolicy(policy, {
    user: user.name,
    action: access.action,
    resource: resourceArn(bucket.name, access.key),
    context: await conditionContext(ctx, access),
  })
  if (decision === 'Deny' && !(user.root === true && POLICY_ACTIONS.has(access.action))) throw s3Error('AccessDenied')
  if (isOwnerOrRoot(user, bucket) || decision === 'Allow') return
  throw s3Error('AccessDenied')
}
