/**
 * SSE-C request checks and how responses name KMS keys, as pure rules (src/s3/sse.ts),
 * with S3's error code and message for each case (S3 User Guide, "Using server-side
 * encryption with customer-provided keys (SSE-C)").
 */
import { createHash, randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { S3sseError } from '../../src/errors.js'
import { toS3Error } from '../../src/s3/errors.js'
import {
  checkCustomerKeyForObject,
  checkCustomerKeyTransport,
  copyEtag,
  etagOf,
  customerKeyResponseHeaders,
  decideWriteEncryption,
  kmsKeyName,
  parseCustomerKey,
  SSE_C_MESSAGES,
  sseResponseHeaders,
} from '../../src/s3/sse.js'

function failure(f: () => unknown): { code: string; message: string; status: number } {
  try {
    f()
  } catch (e) {
    expect(e).toBeInstanceOf(S3sseError)
    const s = toS3Error(e)
    return { code: s.code, message: s.message, status: s.status }
  }
  throw new Error('expected a failure')
}

const key = randomBytes(32)
const md5 = (b: Buffer) => createHash('md5').update(b).digest('base64')
const headers = (k: Buffer | string = key, m: string = md5(key), alg = 'AES256', prefix = 'x-amz-server-side-encryption-customer-') => ({
  [`${prefix}algorithm`]: alg,
  [`${prefix}key`]: typeof k === 'string' ? k : k.toString('base64'),
  [`${prefix}key-md5`]: m,
})

describe('SSE-C headers', () => {
  it('accepts AES256 with a 32-byte base64 key and its MD5, and reads the copy-source variant', () => {
    const given = parseCustomerKey(headers())!
    expect(given.key.equals(key)).toBe(true)
    expect(given.keyMd5).toBe(md5(key))
    expect(parseCustomerKey({})).toBeUndefined()
    const src = parseCustomerKey(headers(key, md5(key), 'AES256', 'x-amz-copy-source-server-side-encryption-customer-'), 'copy-source')!
    expect(src.key.equals(key)).toBe(true)
    // The object's headers are not the source's, and the other way round.
    expect(parseCustomerKey(headers(), 'copy-source')).toBeUndefined()
  })

  it('answers each malformed combination with the error S3 gives', () => {
    const h = headers()
    const cases: Array<[string, Record<string, string>, string, string]> = [
      ['no algorithm', { ...h, 'x-amz-server-side-encryption-customer-algorithm': undefined as unknown as string }, 'InvalidArgument', SSE_C_MESSAGES.algorithm],
      ['algorithm aws:kms', { ...h, 'x-amz-server-side-encryption-customer-algorithm': 'aws:kms' }, 'InvalidEncryptionAlgorithmError', SSE_C_MESSAGES.badAlgorithm],
      ['algorithm AES128', { ...h, 'x-amz-server-side-encryption-customer-algorithm': 'AES128' }, 'InvalidEncryptionAlgorithmError', SSE_C_MESSAGES.badAlgorithm],
      ['no key', { 'x-amz-server-side-encryption-customer-algorithm': 'AES256', 'x-amz-server-side-encryption-customer-key-md5': md5(key) }, 'InvalidArgument', SSE_C_MESSAGES.key],
      ['a 16-byte key', headers(randomBytes(16), md5(key)), 'InvalidArgument', SSE_C_MESSAGES.badKey],
      ['a 33-byte key', headers(randomBytes(33), md5(key)), 'InvalidArgument', SSE_C_MESSAGES.badKey],
      ['a key that is not base64', headers('not base64 at all!!', md5(key)), 'InvalidArgument', SSE_C_MESSAGES.badKey],
      ['the key in hex', headers(key.toString('hex'), md5(key)), 'InvalidArgument', SSE_C_MESSAGES.badKey],
      ['no MD5', { 'x-amz-server-side-encryption-customer-algorithm': 'AES256', 'x-amz-server-side-encryption-customer-key': key.toString('base64') }, 'InvalidArgument', SSE_C_MESSAGES.md5],
      ['the MD5 of another key', headers(key, md5(randomBytes(32))), 'InvalidArgument', SSE_C_MESSAGES.badMd5],
      ['an MD5 that is not base64', headers(key, 'zz'), 'InvalidArgument', SSE_C_MESSAGES.badMd5],
    ]
    for (const [what, hs, code, message] of cases) {
      const clean = Object.fromEntries(Object.entries(hs).filter(([, v]) => v !== undefined))
      const f = failure(() => parseCustomerKey(clean))
      expect([f.status, f.code, f.message], what).toEqual([400, code, message])
    }
  })

  it('is HTTPS only', () => {
    const given = parseCustomerKey(headers())
    expect(() => checkCustomerKeyTransport(given, true)).not.toThrow()
    expect(() => checkCustomerKeyTransport(undefined, false)).not.toThrow()
    expect(failure(() => checkCustomerKeyTransport(given, false))).toMatchObject({ status: 400, code: 'InvalidRequest', message: SSE_C_MESSAGES.insecure })
  })

  it('an SSE-C object needs its key; SSE-C headers on any other object are refused', () => {
    const given = parseCustomerKey(headers())
    expect(() => checkCustomerKeyForObject(true, given)).not.toThrow()
    expect(() => checkCustomerKeyForObject(false, undefined)).not.toThrow()
    expect(failure(() => checkCustomerKeyForObject(true, undefined))).toMatchObject({ status: 400, code: 'InvalidRequest', message: SSE_C_MESSAGES.missing })
    expect(failure(() => checkCustomerKeyForObject(false, given))).toMatchObject({ status: 400, code: 'InvalidRequest', message: SSE_C_MESSAGES.notApplicable })
  })

  it('a wrong key (the object layer\'s S3SSE_CUSTOMER_KEY_MISMATCH) is 403 AccessDenied', () => {
    expect(toS3Error(new S3sseError('S3SSE_CUSTOMER_KEY_MISMATCH', 'x'))).toMatchObject({ status: 403, code: 'AccessDenied' })
  })

  it('responses echo the algorithm and the key MD5, never the key', () => {
    const given = parseCustomerKey(headers())
    const out = customerKeyResponseHeaders(given)
    expect(out).toEqual({ 'x-amz-server-side-encryption-customer-algorithm': 'AES256', 'x-amz-server-side-encryption-customer-key-md5': md5(key) })
    expect(JSON.stringify(out)).not.toContain(key.toString('base64'))
    expect(customerKeyResponseHeaders(undefined)).toEqual({})
  })

  it('SSE-C mixed with SSE-KMS is refused before the key is looked at', () => {
    expect(failure(() => decideWriteEncryption({ mode: 'aws', bucket: 'b', bucketDefault: null, headers: { sse: 'aws:kms', customerAlgorithm: 'AES256' } }))).toMatchObject({ code: 'InvalidArgument' })
  })
})

describe('KMS key names in responses (aws mode)', () => {
  const decide = (kmsKeyId: string | undefined, configKey?: string) =>
    decideWriteEncryption({
      mode: 'aws',
      bucket: 'b',
      bucketDefault: configKey === undefined ? null : { algorithm: 'aws:kms', kmsMasterKeyId: configKey, bucketKeyEnabled: false },
      headers: { sse: kmsKeyId === undefined && configKey !== undefined ? undefined : 'aws:kms', kmsKeyId },
    })!

  it('names the key the way the request named it: NAME, alias/NAME, key id or ARN', () => {
    const id = '1234abcd-12ab-34cd-56ef-1234567890ab'
    const forms: Array<[string, string]> = [
      ['team', 'team'],
      ['alias/team', 'team'],
      [id, id],
      [`arn:aws:kms:us-east-1:111122223333:key/${id}`, id],
      ['arn:aws:kms:us-east-1:111122223333:alias/team', 'team'],
    ]
    for (const [named, ref] of forms) {
      const d = decide(named)
      expect(d.keyId, named).toBe(ref)
      expect(d.keyName, named).toBe(named)
      expect(sseResponseHeaders('aws', { algorithm: 'aws:kms', keyId: 'internal-uuid', keyName: d.keyName })['x-amz-server-side-encryption-aws-kms-key-id']).toBe(named)
    }
  })

  it('or the way the bucket configuration named it; the AWS managed key when none is named', () => {
    expect(decide(undefined, 'alias/from-config').keyName).toBe('alias/from-config')
    expect(decide(undefined).keyName).toBe('alias/aws/s3')
    expect(kmsKeyName('  alias/x ')).toBe('alias/x')
    // Without a recorded name (objects written before), the stored key id is what is known.
    expect(sseResponseHeaders('aws', { algorithm: 'aws:kms', keyId: 'k-1' })['x-amz-server-side-encryption-aws-kms-key-id']).toBe('k-1')
    // oss mode never names keys.
    expect(sseResponseHeaders('oss', { algorithm: 'aws:kms', keyId: 'k-1', keyName: 'x' })).toEqual({ 'x-amz-server-side-encryption': 'aws:kms' })
  })
})

describe('ETags (issue 12 item 4)', () => {
  const md5hex = createHash('md5').update('hello').digest('hex')
  it('plain and SSE-S3 objects and parts: the MD5 of the plaintext, as on S3', () => {
    for (const p of ['plain', 'AES256'] as const) {
      expect(etagOf('object', p, md5hex)).toBe(md5hex)
      expect(etagOf('part', p, md5hex)).toBe(md5hex)
      expect(() => etagOf('object', p)).toThrow()
    }
  })

  it('SSE-KMS and SSE-C: opaque, and a whole object\'s never looks like an MD5 (rclone\'s ^[0-9a-f]{32}$)', () => {
    for (const p of ['aws:kms', 'SSE-C'] as const) {
      const a = etagOf('object', p, md5hex)
      const b = etagOf('object', p, md5hex)
      expect(a).toMatch(/^[0-9a-f]{32}-1$/)
      expect(a).not.toMatch(/^[0-9a-f]{32}$/)
      expect(a).not.toContain(md5hex)
      expect(a).not.toBe(b)
      // Parts keep 32 hex: the multipart ETag is the MD5 of the part ETags' bytes.
      expect(etagOf('part', p)).toMatch(/^[0-9a-f]{32}$/)
    }
  })

  it('a copy that keeps the sealed bytes keeps the source ETag', () => {
    expect(copyEtag('abc-1', true, () => 'new')).toBe('abc-1')
    expect(copyEtag('abc-1', false, () => 'new')).toBe('new')
  })
})
