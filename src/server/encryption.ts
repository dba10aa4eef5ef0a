/**
 * Where a write decides whether to encrypt: every write handler (PutObject, CopyObject,
 * PostObject, CreateMultipartUpload) calls `encryptionFor` once and passes the result to
 * the object layer (UploadPart and UploadPartCopy inherit their upload's). The rule is
 * `decideWriteEncryption` in src/s3/sse.ts; the bucket-default-encryption issue connects
 * it here (bucket default from the bucket's settings, request SSE headers, the KMS).
 * Until then every object is stored as plaintext.
 */
import type { BucketRow } from './db.js'
import type { RequestContext } from './http.js'
import type { EncryptionRequest, KmsAccess } from './store.js'

export function encryptionFor(_ctx: RequestContext, _bucket: BucketRow): EncryptionRequest | null {
  return null
}

/** Response headers that report how a stored object is encrypted (none for plaintext). */
export { sseResponseHeaders } from '../s3/sse.js'

/** The KMS access the object layer needs to read or extend what was written. */
export function kmsAccess(ctx: RequestContext): KmsAccess {
  return ctx.state.kms === undefined ? {} : { kms: ctx.state.kms }
}
