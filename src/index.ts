// s3-sse public API. Later layers (keys, objects, S3 semantics, server) add their exports here.
export { S3sseError, isS3sseError, type S3sseErrorCode } from './errors.js'
export {
  PACKAGE_SIZE,
  TAG_SIZE,
  KEY_SIZE,
  NONCE_PREFIX_SIZE,
  NONCE_SIZE,
  SALT_SIZE,
  MAX_PACKAGE_NUMBER,
  MAX_PACKAGE_SIZE,
} from './crypto/constants.js'
export { type Backend, type BackendName, type AsyncOptions } from './crypto/backend.js'
export { sealedLength, openedLength, packagesForPlaintext, packagesForCiphertext } from './crypto/packages.js'
export {
  loadBackend,
  loadNativeBackend,
  backendReport,
  describeBackendReport,
  printBackendReport,
  BACKEND_ORDER,
  type BackendReport,
  type LoadFailure,
} from './crypto/loader.js'
export { NATIVE_ENGINE_ORDER } from './crypto/backends/native.js'
export type { CpuFeatures, NativeBackend, NativeEngineName, NativeEngineReport, IpsecMbStatus, RawGcm } from './crypto/backends/native.js'
export type { WasmBackend } from './crypto/backends/wasm-core.js'
export { deriveStreamKey, newSalt, hkdfSha256, streamInfo, FORMAT_VERSION, type StreamKey } from './crypto/kdf.js'
export {
  sealStream,
  openStream,
  createSealTransform,
  createOpenTransform,
  type StreamOptions,
} from './crypto/stream.js'
export {
  streamPackageCount,
  sealedStreamSize,
  plainStreamSize,
  packageSpan,
  type PackageSpan,
} from './crypto/offsets.js'
export {
  canonicalContext,
  hasBucketKeys,
  isKmsAdmin,
  parseKeyRef,
  EmbeddedKms,
  openEmbeddedKms,
  CachedKms,
  cachedKms,
  CountingKms,
  countingKms,
  wrapDataKey,
  unwrapDataKey,
  parseWrapped,
  kmsPaths,
  ROOT_KEY_ENV,
  type EncryptionContext,
  type Kms,
  type KmsAdmin,
  type KeyRef,
  type KmsMethod,
  type DataKey,
  type KeyInfo,
  type BucketKeySource,
  type KeyCacheOptions,
} from './keys/index.js'
export {
  encodeManifest,
  decodeManifest,
  validateManifest,
  sealObject,
  startUpload,
  sealPart,
  completeUpload,
  copyPartRange,
  rewrap,
  openObject,
  openRange,
  resolveRange,
  verifyManifest,
  type Manifest,
  type ManifestPart,
  type ManifestEncryption,
  type ObjectContext,
  type Algorithm,
  type EncryptionRequest,
  type ReadStored,
  type OpenOptions,
  type SealedOutput,
  type UploadState,
  type PartRecord,
} from './object/index.js'
