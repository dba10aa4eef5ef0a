import { hkdfSync, randomBytes } from 'node:crypto'
import { S3sseError } from '../errors.js'
import { KEY_SIZE, NONCE_PREFIX_SIZE, SALT_SIZE } from './constants.js'

/** Format version named in every derivation (docs/FORMAT.md, "Stream keys"). */
export const FORMAT_VERSION = 1

const STREAM_INFO = 's3-sse v1 stream'

/** The key and nonce prefix of one stream. Call `wipe()` when the stream is done. */
export interface StreamKey {
  readonly key: Uint8Array
  readonly noncePrefix: Uint8Array
  wipe(): void
}

/** HKDF-SHA256 (RFC 5869): extract with `salt`, expand with `info` to `length` bytes. */
export function hkdfSha256(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  return new Uint8Array(hkdfSync('sha256', ikm, salt, info, length))
}

/** info = "s3-sse v1 stream" ‖ 0x00 ‖ uint32_be(partNumber). */
export function streamInfo(partNumber: number): Uint8Array {
  const label = Buffer.from(STREAM_INFO, 'latin1')
  const info = new Uint8Array(label.length + 5)
  info.set(label, 0)
  new DataView(info.buffer).setUint32(label.length + 1, partNumber, false)
  return info
}

/**
 * Stream key schedule of format v1: OKM = HKDF-SHA256(IKM = data key, salt, info, 39);
 * key = OKM[0..32), nonce prefix = OKM[32..39). A fresh salt per stream means a re-sent
 * part never reuses a key/nonce pair, whatever its part number.
 */
export function deriveStreamKey(dataKey: Uint8Array, salt: Uint8Array, partNumber: number): StreamKey {
  if (!(dataKey instanceof Uint8Array) || dataKey.length !== KEY_SIZE) {
    throw new S3sseError('S3SSE_BAD_KEY_SIZE', `data key must be KEY_SIZE = ${KEY_SIZE} bytes`)
  }
  if (!(salt instanceof Uint8Array) || salt.length !== SALT_SIZE) {
    throw new S3sseError('S3SSE_BAD_SALT_SIZE', `salt must be SALT_SIZE = ${SALT_SIZE} bytes`)
  }
  if (!Number.isInteger(partNumber) || partNumber < 0 || partNumber > 0xffffffff) {
    throw new S3sseError('S3SSE_BAD_ARGUMENT', 'partNumber must be an integer from 0 to 2^32-1')
  }
  const okm = hkdfSha256(dataKey, salt, streamInfo(partNumber), KEY_SIZE + NONCE_PREFIX_SIZE)
  const key = okm.subarray(0, KEY_SIZE)
  const noncePrefix = okm.subarray(KEY_SIZE)
  return { key, noncePrefix, wipe: () => okm.fill(0) }
}

/** A fresh random stream salt. */
export function newSalt(): Uint8Array {
  return new Uint8Array(randomBytes(SALT_SIZE))
}
