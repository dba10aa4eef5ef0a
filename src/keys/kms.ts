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
 * What the server and the object layer need from a key management service on the data path.
 * Any KMS may implement only this; the three of s3-sse (embedded.ts, aws.ts, pkcs11.ts) also
 * implement KmsAdmin.
 *
 * The encryption context is bound to every wrapped blob: decrypting under any other
 * context fails with S3SSE_KMS_CONTEXT_MISMATCH (or S3SSE_KMS_BAD_CIPHERTEXT from a KMS that
 * cannot tell the two apart, as AWS KMS cannot). Other failures are typed too:
 * S3SSE_KMS_KEY_NOT_FOUND, S3SSE_KMS_KEY_DISABLED, S3SSE_KMS_BAD_CIPHERTEXT (the blob is
 * malformed or was altered), S3SSE_KMS_UNAVAILABLE (the service could not be reached, or
 * throttled past the retries), S3SSE_KMS_ACCESS_DENIED (it refused our credentials),
 * S3SSE_KMS_INVALID_STATE (e.g. a key pending deletion).
 * `keyIdOrAlias` accepts a key id, `alias/NAME`, a bare alias NAME, or an AWS-style ARN
 * (parseKeyRef below reads all of them).
 */
export interface Kms {
  generateDataKey(keyIdOrAlias: string, context: EncryptionContext): Promise<DataKey>
  decrypt(wrapped: Uint8Array, context: EncryptionContext): Promise<Uint8Array>
  /**
   * Wraps a key the caller already has (AWS KMS Encrypt): `rewrap` of an object written under
   * a bucket key needs it, since that object's data key is derived and has no blob of its own.
   */
  encrypt(keyIdOrAlias: string, plaintext: Uint8Array, context: EncryptionContext): Promise<{ wrapped: Uint8Array; keyId: string; keyVersion: number }>
  /** Moves a blob to another context and to the current version of `newKeyId` (default: its own key). */
  reEncrypt(wrapped: Uint8Array, context: EncryptionContext, newContext: EncryptionContext, newKeyId?: string): Promise<{ wrapped: Uint8Array; keyId: string; keyVersion: number }>
  /** The key with this alias, created on first use (a bucket's service key). */
  ensureKey(alias: string): Promise<KeyInfo>
  /** A key's state (aws mode checks a named key exists and is enabled before storing it). */
  describeKey(keyIdOrAlias: string): Promise<KeyInfo>
}

/**
 * The administrative surface of a KMS that has one (the embedded KMS): what `s3-sse kms` and
 * the web console's key listing use. The server never needs it to store or read objects.
 */
export interface KmsAdmin extends Kms {
  createKey(opts?: { alias?: string; description?: string }): Promise<KeyInfo>
  listKeys(): Promise<KeyInfo[]>
  rotateKey(keyIdOrAlias: string): Promise<KeyInfo>
  /** A disabled key neither wraps nor unwraps (S3SSE_KMS_KEY_DISABLED) until enabled again. */
  disableKey(keyIdOrAlias: string): Promise<KeyInfo>
  enableKey(keyIdOrAlias: string): Promise<KeyInfo>
  /** One more alias for a key; an alias names one key only (S3SSE_KMS_ALIAS_EXISTS). */
  createAlias(alias: string, keyIdOrAlias: string): Promise<KeyInfo>
  /** Releases what the KMS holds (sessions, connections, key material in memory). */
  close(): Promise<void>
}

/** The methods of KmsAdmin beyond Kms. */
export const KMS_ADMIN_METHODS = ['createKey', 'listKeys', 'rotateKey', 'disableKey', 'enableKey', 'createAlias', 'close'] as const

export function isKmsAdmin(kms: Kms): kms is KmsAdmin {
  const k = kms as Partial<KmsAdmin>
  return KMS_ADMIN_METHODS.every((m) => typeof k[m] === 'function')
}

/**
 * A key reference as clients and configurations write it — a key id, `alias/NAME`, a bare
 * alias NAME, or the ARN of a key or an alias (`arn:PARTITION:kms:REGION:ACCOUNT:key/ID`,
 * `…:alias/NAME`) — as what a KMS looks up: `{ keyId }` or `{ alias: 'alias/NAME' }`.
 * A bare name is `{ name }`: a key id, or else an alias of that name (KMS Decrypt semantics).
 */
export type KeyRef = { keyId: string } | { alias: string } | { name: string }

export function parseKeyRef(value: string): KeyRef {
  let v = value
  const arn = /^arn:[^:]+:kms:[^:]*:[^:]*:((?:key|alias)\/.+)$/.exec(v)
  if (arn) v = arn[1]
  if (v.startsWith('key/')) return { keyId: v.slice('key/'.length) }
  if (v.startsWith('alias/')) return { alias: v }
  return { name: v }
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

/** The method names of Kms (the data path), for wrappers that count or forward calls. */
export const KMS_METHODS = ['describeKey', 'generateDataKey', 'decrypt', 'encrypt', 'reEncrypt', 'ensureKey'] as const
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

/**
 * The KMS with every method of the interface (data path and admin) run through kmsCall, so
 * whatever calls it — the object layer, a handler, the web console — gets a typed error,
 * never a raw one (EISDIR from an unreadable keyring file, a socket error from an external
 * KMS). The server wraps the KMS it is given in this once: no call can reach it unguarded.
 */
export function guardedKms<K extends Kms>(kms: K): K {
  const guarded = new Set<string>([...KMS_METHODS, ...KMS_ADMIN_METHODS])
  return new Proxy(kms, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target) as unknown
      if (typeof prop !== 'string' || !guarded.has(prop) || typeof value !== 'function') return value
      return (...args: unknown[]) => kmsCall(prop, () => (value as (...a: unknown[]) => Promise<unknown>).apply(target, args))
    },
  })
}
