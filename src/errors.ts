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
  // later layers add theirs here (keys, objects, server)
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
