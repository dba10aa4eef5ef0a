/**
 * Where a write decides whether to encrypt: every write handler (PutObject, CopyObject,
 * PostObject, CreateMultipartUpload) calls `encryptionFor` once and passes the result to
 * the object layer. The rule itself lives in src/s3/encryption.ts; this adds the KMS.
 */
import { decideEncryption } from '../s3/encryption.js'
import type { BucketRow } from './db.js'
import type { RequestContext } from './http.js'
import type { EncryptionRequest } from './store.js'

export function encryptionFor(ctx: RequestContext, bucket: BucketRow): EncryptionRequest | null {
  const decision = decideEncryption({
    bucket: bucket.name,
    bucketSettings: bucket.settings,
    headers: ctx.req.headers,
    mode: ctx.state.config.mode,
  })
  if (decision === null) return null
  return { ...decision, kms: ctx.state.kms }
}

/** The KMS access the object layer needs to read or extend what was written. */
export function kmsAccess(ctx: RequestContext): { kms?: unknown } {
  return ctx.state.kms === undefined ? {} : { kms: ctx.state.kms }
}
