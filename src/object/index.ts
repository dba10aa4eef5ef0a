/**
 * The object layer: objects, byte ranges and multipart uploads over the stream format
 * (docs/FORMAT.md, "Manifest"), for encrypted and plaintext objects alike, storage-agnostic:
 * stored bytes come in through a `ReadStored` and go out as a sealed stream.
 *
 * - Manifest.encryption carries `keyNonce` for bucket-key objects (the per-object HKDF salt of
 *   the data key); its `context` is the object's whole context { bucket, key, ...extra }.
 * - rewrap moves a data key to another object name and/or key version without touching the
 *   data (one KMS call: ReEncrypt, or Encrypt for a bucket-key object's derived key).
 * - verifyManifest(m, opts) checks a manifest (context, KMS, MAC) without reading data, so a
 *   server can answer an error before it sends headers; open* do the same check on their
 *   first next(). verifyObject(m, opts, read) checks every stored byte (the scrub job): each
 *   damaged part with its first bad package, no plaintext released.
 * - copyPartRange's srcRange is inclusive ({start, end} as resolveRange returns it).
 *
 * Every KMS call happens before the returned promise resolves (sealObject, startUpload,
 * sealPart, completeUpload, copyPartRange, rewrap): a KMS failure (S3SSE_KMS_UNAVAILABLE) is a
 * rejected promise and nothing has been written. Wrap the KMS in a CachedKms (src/keys/cache.ts)
 * once per process to make bucket keys and repeated decrypts cheap.
 */
export {
  encodeManifest, decodeManifest, validateManifest,
  MANIFEST_VERSION, MAX_PARTS,
  type Manifest, type ManifestPart, type ManifestEncryption, type ObjectContext, type Algorithm,
} from './manifest.js'
export { type EncryptionRequest } from './keys.js'
export { newCustomerDataKey, customerDataKey, CUSTOMER_KEY_SALT_SIZE, CUSTOMER_KEY_CHECK_SIZE, type CustomerKeyRecord } from './customer-key.js'
export { openObject, openRange, resolveRange, verifyManifest, verifyObject, isDamage, type Damage, type ReadStored, type OpenOptions } from './open.js'
export {
  sealObject, startUpload, sealPart, completeUpload, copyPartRange, rewrap,
  type SealedOutput, type UploadState, type PartRecord,
} from './seal.js'
