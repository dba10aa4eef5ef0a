export { canonicalContext, type EncryptionContext } from './context.js'
export {
  guardedKms, hasBucketKeys, isKmsAdmin, kmsCall, parseKeyRef, KMS_METHODS, KMS_ADMIN_METHODS,
  type Kms, type KmsAdmin, type KmsMethod, type KeyRef, type DataKey, type KeyInfo, type BucketKeySource,
} from './kms.js'
export { EmbeddedKms, openEmbeddedKms, normaliseAlias } from './embedded.js'
export { CachedKms, cachedKms, CountingKms, countingKms, KeyLru, type KeyCacheOptions } from './cache.js'
export { wrapDataKey, unwrapDataKey, parseWrapped, WRAP_FORMAT } from './wrap.js'
export { kmsPaths, ROOT_KEY_ENV, type KmsPaths } from './keyring.js'
