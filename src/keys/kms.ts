import { S3sseError, isS3sseError } from '../errors.js'
import type { EncryptionContext } from './context.js'

export type { EncryptionContext } from './context.js'

/** A fresh data key: use `plaintext`, store only `wrapped`. Zero `plaintext` when done. */
export interface DataKey {
  plaintext: Uint8Array
  wrapped: Uint8Array
  keyId: string
  keyVersion: number
}

export interface KeyInfo {
  keyId: string
  alias?: string
  /** Every alias, when the key has more than one (the first is `alias`). */
  aliases?: string[]
  description?: string
  createdAt: string
  enabled: boolean
  /** Number of master-key versions; versions are numbered 1..versions. */
  versions: number
  /** The version new data keys are wrapped under. */
  current: number
}

/**
 * What s3-sse needs from a key management service. Any KMS can sit behind it (the embedded
 * one in ./embedded.ts, or an adapter to an external service).
 *
 * The encryption context is bound to every wrapped blob: decrypting under any other
 * context fails with S3SSE_KMS_CONTEXT_MISMATCH. Other failures are typed too:
 * S3SSE_KMS_KEY_NOT_FOUND, S3SSE_KMS_KEY_DISABLED, S3SSE_KMS_BAD_CIPHERTEXT (the blob is
 * malformed or was altered), S3SSE_KMS_UNAVAILABLE (the service could not be reached).
 * `keyIdOrAlias` accepts a key id, `alias/NAME`, a bare alias NAME, or an AWS-style ARN.
 */
export interface Kms {
  createKey(opts?: { alias?: string; description?: string }): Promise<KeyInfo>
  describeKey(keyIdOrAlias: string): Promise<KeyInfo>
  listKeys(): Promise<KeyInfo[]>
  generateDataKey(keyIdOrAlias: string, context: EncryptionContext): Promise<DataKey>
  decrypt(wrapped: Uint8Array, context: EncryptionContext): Promise<Uint8Array>
  /**
   * Wraps a key the caller already has. Added to the contract for `rewrap` of objects
   * written under a bucket key: their data key is derived, so it can only be wrapped on its
   * own by encrypting it (AWS KMS Encrypt).
   */
  encrypt(keyIdOrAlias: string, plaintext: Uint8Array, context: EncryptionContext): Promise<{ wrapped: Uint8Array; keyId: string; keyVersion: number }>
  /** Moves a blob to another context and to the current version of `newKeyId` (default: its own key). */
  reEncrypt(wrapped: Uint8Array, context: EncryptionContext, newContext: EncryptionContext, newKeyId?: string): Promise<{ wrapped: Uint8Array; keyId: string; keyVersion: number }>
  rotateKey(keyIdOrAlias: string): Promise<KeyInfo>
  /** The key with this alias, created on first use (the bucket service key). */
  ensureKey(alias: string): Promise<KeyInfo>
}

/**
 * A KMS that hands out short-lived bucket keys (./cache.ts). The object layer derives each
 * object's data key from one with HKDF and a per-object nonce, so a run of writes to one
 * bucket costs one KMS call instead of one each.
 */
export interface BucketKeySource {
  bucketKey(keyIdOrAlias: string, context: EncryptionContext): Promise<DataKey>
}

export function hasBucketKeys(kms: Kms): kms is Kms & BucketKeySource {
  return typeof (kms as Partial<BucketKeySource>).bucketKey === 'function'
}

/** The method names of Kms, for wrappers that count or forward calls. */
export const KMS_METHODS = ['createKey', 'describeKey', 'listKeys', 'generateDataKey', 'decrypt', 'encrypt', 'reEncrypt', 'rotateKey', 'ensureKey'] as const
export type KmsMethod = typeof KMS_METHODS[number]

/**
 * Runs a KMS call; anything it throws that is not already a typed s3-sse error (a network
 * error from an external KMS, a bug in an adapter) becomes S3SSE_KMS_UNAVAILABLE, so callers
 * see one code for "the KMS did not answer" whatever sits behind the interface.
 */
export async function kmsCall<T>(what: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call()
  } catch (e) {
    if (isS3sseError(e)) throw e
    throw new S3sseError('S3SSE_KMS_UNAVAILABLE', `the KMS failed during ${what}`, { cause: e })
  }
}
