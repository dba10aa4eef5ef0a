/**
 * Bucket policies: PutBucketPolicy, GetBucketPolicy, DeleteBucketPolicy (S3 API reference).
 * The grammar and evaluation are src/s3/policy.ts; the policy is kept, as given, in the
 * bucket's settings and enforced for every request by src/server/authorize.ts.
 */
import { s3Error } from '../../s3/errors.js'
import { MAX_POLICY_BYTES, parseBucketPolicy } from '../../s3/policy.js'
import { sendEmpty, startBody, type RequestContext } from '../http.js'
import type { ServerState } from '../state.js'
import type { BucketRow } from '../meta/index.js'
import { readXmlBody, requireBucket } from './common.js'

/** Checks a policy document for a bucket and stores it (PutBucketPolicy and the web console). */
export async function setBucketPolicy(state: ServerState, bucket: BucketRow, text: string | null): Promise<void> {
  if (text !== null) {
    const users = new Map<string, boolean>()
    for (const name of collectNames(text)) users.set(name, name === state.root.name || (await state.meta.lookupUserByName(name)) !== undefined)
    parseBucketPolicy(text, { bucket: bucket.name, isUser: (n) => users.get(n) === true })
  }
  await state.meta.updateBucketSettings(bucket.name, (settings) => {
    if (text === null) delete settings.policy
    else settings.policy = text
  })
}

/** The user names a policy's principals might mention (looked up before the synchronous parse). */
function collectNames(text: string): string[] {
  const names = new Set<string>()
  try {
    const visit = (v: unknown): void => {
      if (typeof v === 'string') names.add(v.replace(/^arn:aws:iam::[^:]*:user\//, ''))
      else if (Array.isArray(v)) v.forEach(visit)
      else if (v && typeof v === 'object') Object.values(v).forEach(visit)
    }
    const doc = JSON.parse(text) as { Statement?: unknown }
    const statements = Array.isArray(doc.Statement) ? doc.Statement : [doc.Statement]
    for (const s of statements) if (s && typeof s === 'object') visit((s as { Principal?: unknown }).Principal)
  } catch {
    // parseBucketPolicy reports what is wrong with the document.
  }
  return [...names].slice(0, 100)
}

export async function putBucketPolicy(ctx: RequestContext): Promise<void> {
  const bucket = await requireBucket(ctx)
  const body = await readXmlBody(ctx)
  if (Buffer.byteLength(body) > MAX_POLICY_BYTES) throw s3Error('MalformedPolicy', 'Policies must be at most 20 KB')
  await setBucketPolicy(ctx.state, bucket, body)
  sendEmpty(ctx, 204)
}

export async function getBucketPolicy(ctx: RequestContext): Promise<void> {
  const bucket = await requireBucket(ctx)
  const text = bucket.settings.policy
  if (typeof text !== 'string') throw s3Error('NoSuchBucketPolicy')
  const body = Buffer.from(text, 'utf8')
  startBody(ctx, 200, { 'content-type': 'application/json', 'content-length': String(body.length) })
  ctx.res.end(ctx.method === 'HEAD' ? undefined : body)
}

export async function deleteBucketPolicy(ctx: RequestContext): Promise<void> {
  const bucket = await requireBucket(ctx)
  await setBucketPolicy(ctx.state, bucket, null)
  sendEmpty(ctx, 204)
}
