/**
 * The one error class of s3-sse. Every layer (native addon, WASM, TypeScript) throws it
 * with a stable `code`; the S3 layer maps codes to S3 error XML in one table.
 *
 * Messages never carry key material, credentials or plaintext.
 */
export type S3sseErrorCode =
  // sizes and arguments (crypto core)
  | 'S3SSE_BAD_KEY_SIZE'
  | 'S3SSE_BAD_NONCE_SIZE'
  | 'S3SSE_BAD_PACKAGE_SIZE'
  | 'S3SSE_BAD_PACKAGE_NUMBER'
  | 'S3SSE_PACKAGE_OVERFLOW'
  | 'S3SSE_BAD_OUTPUT_SIZE'
  | 'S3SSE_BAD_ARGUMENT'
  | 'S3SSE_BAD_SALT_SIZE'
  // integrity
  | 'S3SSE_AUTH_FAILED'
  | 'S3SSE_TRUNCATED'
  | 'S3SSE_TRAILING_DATA'
  | 'S3SSE_BAD_RANGE'
  // backends
  | 'S3SSE_BACKEND_UNAVAILABLE'
  | 'S3SSE_CRYPTO_FAILURE'
  // keys (src/keys/)
  | 'S3SSE_KMS_KEY_NOT_FOUND'
  /** A write named a KMS key (aws mode) that does not exist: the caller's mistake. */
  | 'S3SSE_KMS_NAMED_KEY_NOT_FOUND'
  | 'S3SSE_KMS_KEY_DISABLED'
  | 'S3SSE_KMS_UNAVAILABLE'
  | 'S3SSE_KMS_CONTEXT_MISMATCH'
  | 'S3SSE_KMS_BAD_CIPHERTEXT'
  | 'S3SSE_KMS_ALIAS_EXISTS'
  | 'S3SSE_KMS_ACCESS_DENIED'
  | 'S3SSE_KMS_INVALID_STATE'
  | 'S3SSE_KMS_KEYRING_WRONG_ROOT_KEY'
  | 'S3SSE_KMS_KEYRING_DAMAGED'
  | 'S3SSE_KMS_KEYRING_MISSING'
  | 'S3SSE_KMS_ROOT_KEY_MISSING'
  | 'S3SSE_KMS_ROOT_KEY_INVALID'
  // objects (src/object/)
  | 'S3SSE_BAD_MANIFEST'
  | 'S3SSE_MANIFEST_AUTH_FAILED'
  | 'S3SSE_BAD_UPLOAD'
  | 'S3SSE_PART_AUTH_FAILED'
  | 'S3SSE_BAD_PART_ORDER'
  | 'S3SSE_CUSTOMER_KEY_MISMATCH'
  | 'S3SSE_CUSTOMER_KEY_MISSING'
  // the server's stores (src/server/store/, src/server/meta/): each maps its own failures to these
  | 'S3SSE_BLOB_NOT_FOUND'
  | 'S3SSE_STORAGE_FULL'
  | 'S3SSE_STORAGE_IO'
  | 'S3SSE_STORAGE_UNAVAILABLE'
  | 'S3SSE_META_UNAVAILABLE'
  // server (src/server/); its S3 request errors use the S3 code itself (NoSuchKey, …)
  | 'S3SSE_BAD_CREDENTIALS'
  | 'S3SSE_USER_EXISTS'
  | 'S3SSE_NO_SUCH_USER'
  /** `s3-sse user remove` of a user who still owns buckets. */
  | 'S3SSE_USER_HAS_BUCKETS'
  // web console (src/server/console/); its API answers with these mapped to short codes
  | 'S3SSE_CONSOLE_LOGIN_FAILED'
  | 'S3SSE_CONSOLE_NO_SESSION'
  | 'S3SSE_CONSOLE_THROTTLED'
  | 'S3SSE_CONSOLE_HTTPS_ONLY'
  | 'S3SSE_CONSOLE_FORBIDDEN'
  | 'S3SSE_CONSOLE_BAD_REQUEST'
  | 'S3SSE_CONSOLE_NOT_FOUND'
  | 'S3SSE_CONSOLE_METHOD'
  // jobs and the admin API (src/server/jobs/, src/server/admin/)
  | 'S3SSE_JOB_BAD_REQUEST'
  | 'S3SSE_JOB_NOT_FOUND'
  | 'S3SSE_JOB_STATE'
  | 'S3SSE_ADMIN_HTTPS_ONLY'
  | 'S3SSE_ADMIN_NOT_FOUND'
  | 'S3SSE_ADMIN_METHOD'
  | (string & {})

export class S3sseError extends Error {
  readonly code: S3sseErrorCode
  /** Absolute package number, for integrity errors that concern one package. */
  packageNumber?: number

  constructor(code: S3sseErrorCode, message: string, extra?: { packageNumber?: number; cause?: unknown }) {
    super(message, extra?.cause !== undefined ? { cause: extra.cause } : undefined)
    this.name = 'S3sseError'
    this.code = code
    if (extra?.packageNumber !== undefined) this.packageNumber = extra.packageNumber
  }
}

export function isS3sseError(e: unknown, code?: S3sseErrorCode): e is S3sseError {
  return e instanceof S3sseError && (code === undefined || e.code === code)
}
