/**
 * S3 errors: the one table that maps an error to the HTTP status, S3 code and message a
 * client expects (S3 API reference, "Error responses" / "List of error codes").
 *
 * S3 request errors are thrown as `S3sseError` whose `code` is the S3 code itself
 * (`NoSuchKey`, `InvalidRange`, ...): that is the stable code. Errors of the lower layers
 * keep their `S3SSE_*` codes and are mapped here too, so a handler never picks a status.
 */
import { S3sseError } from '../errors.js'

export type S3ErrorCode =
  | 'AccessDenied'
  | 'AuthorizationHeaderMalformed'
  | 'AuthorizationQueryParametersError'
  | 'BadDigest'
  | 'BadRequest'
  | 'BucketAlreadyExists'
  | 'BucketAlreadyOwnedByYou'
  | 'BucketNotEmpty'
  | 'EntityTooLarge'
  | 'EntityTooSmall'
  | 'ExpiredToken'
  | 'IncompleteBody'
  | 'InternalError'
  | 'InvalidAccessKeyId'
  | 'InvalidArgument'
  | 'InvalidBucketName'
  | 'InvalidChunkSizeError'
  | 'InvalidDigest'
  | 'InvalidEncryptionAlgorithmError'
  | 'InvalidLocationConstraint'
  | 'InvalidObjectState'
  | 'InvalidPart'
  | 'InvalidPartOrder'
  | 'InvalidPolicyDocument'
  | 'InvalidRange'
  | 'InvalidRequest'
  | 'InvalidStorageClass'
  | 'InvalidTag'
  | 'KeyTooLongError'
  | 'KMS.DisabledException'
  | 'KMS.KMSInvalidStateException'
  | 'KMS.NotFoundException'
  | 'MalformedPolicy'
  | 'MalformedPOSTRequest'
  | 'MalformedXML'
  | 'MaxMessageLengthExceeded'
  | 'MaxPostPreDataLengthExceededError'
  | 'MetadataTooLarge'
  | 'MethodNotAllowed'
  | 'MissingContentLength'
  | 'MissingSecurityHeader'
  | 'NoSuchBucket'
  | 'NoSuchBucketPolicy'
  | 'NoSuchKey'
  | 'NoSuchUpload'
  | 'NoSuchVersion'
  | 'NotImplemented'
  | 'NotModified'
  | 'PreconditionFailed'
  | 'ReplicationConfigurationNotFoundError'
  | 'RequestTimeTooSkewed'
  | 'RequestTimeout'
  | 'ServerSideEncryptionConfigurationNotFoundError'
  | 'ServiceUnavailable'
  | 'SignatureDoesNotMatch'
  | 'XAmzContentSHA256Mismatch'

interface ErrorEntry {
  status: number
  message: string
}

/** Status and default message per S3 code (S3 API reference, "List of error codes"). */
export const S3_ERRORS: Record<S3ErrorCode, ErrorEntry> = {
  AccessDenied: { status: 403, message: 'Access Denied' },
  AuthorizationHeaderMalformed: { status: 400, message: 'The authorization header is malformed.' },
  AuthorizationQueryParametersError: { status: 400, message: 'Error parsing the X-Amz-Credential parameter.' },
  BadDigest: { status: 400, message: 'The Content-MD5 or checksum you specified did not match what we received.' },
  BadRequest: { status: 400, message: 'Bad Request' },
  BucketAlreadyExists: { status: 409, message: 'The requested bucket name is not available.' },
  BucketAlreadyOwnedByYou: {
    status: 409,
    message: 'Your previous request to create the named bucket succeeded and you already own it.',
  },
  BucketNotEmpty: { status: 409, message: 'The bucket you tried to delete is not empty.' },
  EntityTooLarge: { status: 400, message: 'Your proposed upload exceeds the maximum allowed object size.' },
  EntityTooSmall: { status: 400, message: 'Your proposed upload is smaller than the minimum allowed object size.' },
  ExpiredToken: { status: 400, message: 'The provided token has expired.' },
  IncompleteBody: { status: 400, message: 'You did not provide the number of bytes specified by the Content-Length HTTP header.' },
  InternalError: { status: 500, message: 'We encountered an internal error. Please try again.' },
  InvalidAccessKeyId: {
    status: 403,
    message: 'The AWS Access Key Id you provided does not exist in our records.',
  },
  InvalidArgument: { status: 400, message: 'Invalid Argument' },
  InvalidBucketName: { status: 400, message: 'The specified bucket is not valid.' },
  InvalidChunkSizeError: { status: 403, message: 'Only the last chunk is allowed to have a size less than 8192 bytes' },
  InvalidDigest: { status: 400, message: 'The Content-MD5 or checksum you specified is not valid.' },
  InvalidEncryptionAlgorithmError: { status: 400, message: 'The Encryption request you specified is not valid. Supported value: AES256.' },
  InvalidLocationConstraint: { status: 400, message: 'The specified location constraint is not valid.' },
  InvalidObjectState: { status: 403, message: 'The operation is not valid for the current state of the object.' },
  InvalidPart: {
    status: 400,
    message:
      'One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part\'s entity tag.',
  },
  InvalidPartOrder: { status: 400, message: 'The list of parts was not in ascending order. Parts must be ordered by part number.' },
  InvalidPolicyDocument: { status: 400, message: 'The content of the form does not meet the conditions specified in the policy document.' },
  InvalidRange: { status: 416, message: 'The requested range is not satisfiable' },
  InvalidRequest: { status: 400, message: 'Invalid Request' },
  InvalidStorageClass: { status: 400, message: 'The storage class you specified is not valid.' },
  InvalidTag: { status: 400, message: 'The tag provided was not a valid tag.' },
  KeyTooLongError: { status: 400, message: 'Your key is too long.' },
  // What Amazon S3 answers when its KMS call fails (the KMS exception's name after "KMS.").
  'KMS.DisabledException': { status: 400, message: 'The KMS key is disabled.' },
  'KMS.KMSInvalidStateException': { status: 400, message: 'The KMS key is not in a state that allows this request.' },
  // 400 as S3 answers a write that names a key that does not exist (the client's mistake).
  'KMS.NotFoundException': { status: 400, message: 'Invalid keyId: the KMS key does not exist.' },
  MalformedPolicy: { status: 400, message: 'Policies must be valid JSON and the first byte must be \'{\'' },
  MalformedPOSTRequest: { status: 400, message: 'The body of your POST request is not well-formed multipart/form-data.' },
  MalformedXML: {
    status: 400,
    message: 'The XML you provided was not well-formed or did not validate against our published schema.',
  },
  MaxMessageLengthExceeded: { status: 400, message: 'Your request was too big.' },
  MaxPostPreDataLengthExceededError: { status: 400, message: 'Your POST request fields preceding the upload file were too large.' },
  MetadataTooLarge: { status: 400, message: 'Your metadata headers exceed the maximum allowed metadata size.' },
  MethodNotAllowed: { status: 405, message: 'The specified method is not allowed against this resource.' },
  MissingContentLength: { status: 411, message: 'You must provide the Content-Length HTTP header.' },
  MissingSecurityHeader: { status: 400, message: 'Your request is missing a required header.' },
  NoSuchBucket: { status: 404, message: 'The specified bucket does not exist' },
  NoSuchBucketPolicy: { status: 404, message: 'The bucket policy does not exist' },
  NoSuchKey: { status: 404, message: 'The specified key does not exist.' },
  NoSuchUpload: {
    status: 404,
    message:
      'The specified multipart upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.',
  },
  NoSuchVersion: { status: 404, message: 'The specified version does not exist.' },
  NotImplemented: { status: 501, message: 'A header or query you provided implies functionality that is not implemented.' },
  NotModified: { status: 304, message: 'Not Modified' },
  PreconditionFailed: { status: 412, message: 'At least one of the pre-conditions you specified did not hold' },
  ReplicationConfigurationNotFoundError: { status: 404, message: 'The replication configuration was not found' },
  RequestTimeTooSkewed: {
    status: 403,
    message: 'The difference between the request time and the server\'s time is too large.',
  },
  RequestTimeout: {
    status: 400,
    message: 'Your socket connection to the server was not read from or written to within the timeout period.',
  },
  ServerSideEncryptionConfigurationNotFoundError: { status: 404, message: 'The server side encryption configuration was not found' },
  ServiceUnavailable: { status: 503, message: 'Please reduce your request rate.' },
  SignatureDoesNotMatch: {
    status: 403,
    message:
      'The request signature we calculated does not match the signature you provided. Check your key and signing method.',
  },
  XAmzContentSHA256Mismatch: {
    status: 400,
    message: 'The provided \'x-amz-content-sha256\' header does not match what was computed.',
  },
}

/** Lower-layer codes (crypto, object, keys) and what a client is told about them. */
const INTERNAL_CODES: Record<string, { s3: S3ErrorCode; message?: string; status?: number }> = {
  S3SSE_AUTH_FAILED: { s3: 'InternalError', message: 'Stored object failed its integrity check.' },
  S3SSE_TRUNCATED: { s3: 'InternalError', message: 'Stored object is truncated.' },
  S3SSE_TRAILING_DATA: { s3: 'InternalError', message: 'Stored object has trailing data.' },
  S3SSE_BAD_MANIFEST: { s3: 'InternalError', message: 'Stored object manifest is invalid.' },
  S3SSE_MANIFEST_AUTH_FAILED: { s3: 'InternalError', message: 'Stored object manifest failed its integrity check.' },
  S3SSE_PART_AUTH_FAILED: { s3: 'InvalidPart', message: 'A stored part record failed its integrity check.' },
  S3SSE_BAD_UPLOAD: { s3: 'InternalError', message: 'Stored multipart upload state is invalid.' },
  S3SSE_BAD_PART_ORDER: { s3: 'InvalidPartOrder' },
  S3SSE_KMS_BAD_CIPHERTEXT: { s3: 'InternalError', message: 'A wrapped data key failed to decrypt.' },
  S3SSE_KMS_KEYRING_WRONG_ROOT_KEY: { s3: 'ServiceUnavailable', message: 'The key management service is unavailable.' },
  S3SSE_KMS_KEYRING_DAMAGED: { s3: 'ServiceUnavailable', message: 'The key management service is unavailable.' },
  S3SSE_BAD_RANGE: { s3: 'InvalidRange' },
  S3SSE_KMS_UNAVAILABLE: { s3: 'ServiceUnavailable', message: 'The key management service is unavailable.' },
  // A KMS that refuses or does not answer, as Amazon S3 reports it: throttling and outages
  // (retried first, by the adapter) are 503; the key's own state is the KMS exception.
  // A stored object's key missing from the KMS is a server-side loss (a keyring restored from
  // an older backup, a key deleted in an external KMS), not the client's fault: 500, and the
  // log line names the key. A write naming a missing key is S3SSE_KMS_NAMED_KEY_NOT_FOUND.
  S3SSE_KMS_KEY_NOT_FOUND: { s3: 'KMS.NotFoundException', status: 500, message: 'The KMS key that protects this object\'s data key does not exist in the key management service.' },
  S3SSE_KMS_NAMED_KEY_NOT_FOUND: { s3: 'KMS.NotFoundException' },
  S3SSE_KMS_KEY_DISABLED: { s3: 'KMS.DisabledException' },
  S3SSE_KMS_INVALID_STATE: { s3: 'KMS.KMSInvalidStateException' },
  S3SSE_KMS_ACCESS_DENIED: { s3: 'AccessDenied', message: 'The key management service refused the request.' },
  S3SSE_KMS_CONTEXT_MISMATCH: { s3: 'AccessDenied', message: 'The KMS encryption context does not match.' },
  // SSE-C: the key given is not the one the object was written with; or none was given.
  S3SSE_CUSTOMER_KEY_MISMATCH: { s3: 'AccessDenied' },
  S3SSE_CUSTOMER_KEY_MISSING: { s3: 'InvalidRequest', message: 'The object was stored using a form of Server Side Encryption. The correct parameters must be provided to retrieve the object.' },
  S3SSE_BACKEND_UNAVAILABLE: { s3: 'InternalError', message: 'No crypto backend is available.' },
  S3SSE_CRYPTO_FAILURE: { s3: 'InternalError' },
  // The stores (BlobStore, MetaStore). A full or failing disk is a service that cannot take
  // the request now (503, which clients retry), not a fault in the request.
  S3SSE_STORAGE_FULL: { s3: 'ServiceUnavailable', message: 'The server has no space left to store this data.' },
  S3SSE_STORAGE_IO: { s3: 'ServiceUnavailable', message: 'The object storage failed to read or write; try again later.' },
  S3SSE_STORAGE_UNAVAILABLE: { s3: 'ServiceUnavailable', message: 'The object storage is not answering or is throttling requests; try again later.' },
  S3SSE_META_UNAVAILABLE: { s3: 'ServiceUnavailable', message: 'The metadata store is unavailable; try again later.' },
  S3SSE_BLOB_NOT_FOUND: { s3: 'InternalError', message: 'The stored data of this object is missing.' },
}

/** Throws-ready S3 request error; `code` is the S3 error code. */
export function s3Error(code: S3ErrorCode, message?: string, cause?: unknown): S3sseError {
  return new S3sseError(code, message ?? S3_ERRORS[code].message, cause === undefined ? undefined : { cause })
}

export function isS3ErrorCode(code: string): code is S3ErrorCode {
  return Object.prototype.hasOwnProperty.call(S3_ERRORS, code)
}

export interface S3ErrorResponse {
  status: number
  code: S3ErrorCode
  message: string
  /** True when the error is ours, not the client's (logged with its cause). */
  internal: boolean
}

/** Maps anything thrown while serving a request to the S3 error a client receives. */
export function toS3Error(err: unknown): S3ErrorResponse {
  if (err instanceof S3sseError) {
    if (isS3ErrorCode(err.code)) {
      return { status: S3_ERRORS[err.code].status, code: err.code, message: err.message, internal: false }
    }
    const mapped = INTERNAL_CODES[err.code]
    if (mapped) {
      const entry = S3_ERRORS[mapped.s3]
      return {
        status: mapped.status ?? entry.status,
        code: mapped.s3,
        message: mapped.message ?? entry.message,
        internal: (mapped.status ?? entry.status) >= 500,
      }
    }
  }
  return { status: 500, code: 'InternalError', message: S3_ERRORS.InternalError.message, internal: true }
}
