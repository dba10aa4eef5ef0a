/**
 * SSE-C: an object's data key from a customer-provided key (docs/FORMAT.md section 7.6).
 * The customer key is never stored: an object keeps a random salt and a salted keyed digest
 * of the key, enough to recognise the key on a later request and nothing more.
 *
 *   DEK   = HKDF-SHA256(IKM = customer key, salt = S, info = "s3-sse v1 sse-c data key", L = 32)
 *   check = HKDF-SHA256(IKM = customer key, salt = S, info = "s3-sse v1 sse-c key check", L = 32)
 *
 * with S 32 random bytes per object (or per multipart upload). Everything after the DEK —
 * stream keys, packages, the manifest MAC — is as for any encrypted object.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto'
import { KEY_SIZE } from '../crypto/constants.js'
import { hkdfSha256 } from '../crypto/kdf.js'
import { S3sseError } from '../errors.js'

export const CUSTOMER_KEY_SALT_SIZE = 32
export const CUSTOMER_KEY_CHECK_SIZE = 32

const DATA_KEY_INFO = Buffer.from('s3-sse v1 sse-c data key', 'latin1')
const CHECK_INFO = Buffer.from('s3-sse v1 sse-c key check', 'latin1')

/** What an SSE-C object stores about its key. */
export interface CustomerKeyRecord {
  /** CUSTOMER_KEY_SALT_SIZE random bytes. */
  salt: Uint8Array
  /** CUSTOMER_KEY_CHECK_SIZE bytes: recognises the key, reveals nothing usable about it. */
  check: Uint8Array
}

function checkKey(customerKey: Uint8Array): void {
  if (!(customerKey instanceof Uint8Array) || customerKey.length !== KEY_SIZE) {
    throw new S3sseError('S3SSE_BAD_KEY_SIZE', `a customer key is KEY_SIZE (${KEY_SIZE}) bytes`)
  }
}

function checkRecord(r: CustomerKeyRecord): void {
  if (!(r?.salt instanceof Uint8Array) || r.salt.length !== CUSTOMER_KEY_SALT_SIZE) {
    throw new S3sseError('S3SSE_BAD_MANIFEST', `a customer key record has a ${CUSTOMER_KEY_SALT_SIZE}-byte salt`)
  }
  if (!(r.check instanceof Uint8Array) || r.check.length !== CUSTOMER_KEY_CHECK_SIZE) {
    throw new S3sseError('S3SSE_BAD_MANIFEST', `a customer key record has a ${CUSTOMER_KEY_CHECK_SIZE}-byte check`)
  }
}

function derive(customerKey: Uint8Array, salt: Uint8Array): { dataKey: Uint8Array; check: Uint8Array } {
  return {
    dataKey: hkdfSha256(customerKey, salt, DATA_KEY_INFO, KEY_SIZE),
    check: hkdfSha256(customerKey, salt, CHECK_INFO, CUSTOMER_KEY_CHECK_SIZE),
  }
}

/** A new object's data key under a customer key, and the record to store with it. */
export function newCustomerDataKey(customerKey: Uint8Array): { dataKey: Uint8Array; record: CustomerKeyRecord } {
  checkKey(customerKey)
  const salt = new Uint8Array(randomBytes(CUSTOMER_KEY_SALT_SIZE))
  const { dataKey, check } = derive(customerKey, salt)
  return { dataKey, record: { salt, check } }
}

/**
 * The data key of a stored SSE-C object from the key a request gives; a different key is
 * S3SSE_CUSTOMER_KEY_MISMATCH (the S3 layer answers 403 AccessDenied), decided in constant
 * time before any key material is released.
 */
export function customerDataKey(customerKey: Uint8Array, record: CustomerKeyRecord): Uint8Array {
  checkKey(customerKey)
  checkRecord(record)
  const { dataKey, check } = derive(customerKey, record.salt)
  if (!timingSafeEqual(check, record.check)) {
    dataKey.fill(0)
    throw new S3sseError('S3SSE_CUSTOMER_KEY_MISMATCH', 'the customer-provided key is not the one the object was written with')
  }
  return dataKey
}
