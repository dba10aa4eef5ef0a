import { describe, expect, it } from 'vitest'
import { S3sseError } from '../../src/index.js'
import {
  checkReadHeaders,
  checkTransport,
  decideWriteEncryption,
  INSECURE_TRANSPORT_MESSAGE,
  kmsKeyRef,
  NOT_SIGV4_MESSAGE,
  parseBucketEncryption,
  renderBucketEncryption,
  serviceKeyAlias,
  sseRequestHeaders,
  sseResponseHeaders,
  type BucketEncryption,
} from '../../src/s3/sse.js'

const xml = (rule: string, extraRules = '') =>
  `<?xml version="1.0" encoding="UTF-8"?><ServerSideEncryptionConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Rule>${rule}</Rule>${extraRules}</ServerSideEncryptionConfiguration>`
const kms = '<ApplyServerSideEncryptionByDefault><SSEAlgorithm>aws:kms</SSEAlgorithm></ApplyServerSideEncryptionByDefault>'

function failure(f: () => unknown): S3sseError {
  try {
    f()
  } catch (e) {
    expect(e).toBeInstanceOf(S3sseError)
    return e as S3sseError
  }
  throw new Error('expected a failure')
}

describe('PutBucketEncryption body', () => {
  it('accepts aws:kms in both modes, with BucketKeyEnabled', () => {
    for (const mode of ['oss', 'aws'] as const) {
      expect(parseBucketEncryption(xml(kms), mode)).toEqual({ algorithm: 'aws:kms', bucketKeyEnabled: false })
      expect(parseBucketEncryption(xml(kms + '<BucketKeyEnabled>true</BucketKeyEnabled>'), mode)).toEqual({ algorithm: 'aws:kms', bucketKeyEnabled: true })
    }
  })

  it('accepts AES256 and a KMSMasterKeyID in aws mode only', () => {
    const aes = xml('<ApplyServerSideEncryptionByDefault><SSEAlgorithm>AES256</SSEAlgorithm></ApplyServerSideEncryptionByDefault>')
    const named = xml('<ApplyServerSideEncryptionByDefault><SSEAlgorithm>aws:kms</SSEAlgorithm><KMSMasterKeyID>arn:aws:kms:us-east-1:123456789012:key/abc</KMSMasterKeyID></ApplyServerSideEncryptionByDefault>')
    expect(parseBucketEncryption(aes, 'aws')).toEqual({ algorithm: 'AES256', bucketKeyEnabled: false })
    expect(parseBucketEncryption(named, 'aws')).toEqual({ algorithm: 'aws:kms', kmsMasterKeyId: 'arn:aws:kms:us-east-1:123456789012:key/abc', bucketKeyEnabled: false })
    const e1 = failure(() => parseBucketEncryption(aes, 'oss'))
    expect(e1.code).toBe('InvalidArgument')
    expect(e1.message).toMatch(/SSEAlgorithm AES256 is not supported/)
    const e2 = failure(() => parseBucketEncryption(named, 'oss'))
    expect(e2.code).toBe('InvalidArgument')
    expect(e2.message).toMatch(/KMSMasterKeyID is not supported/)
  })

  const malformed: Array<[string, string, RegExp]> = [
    ['empty body', '', /empty/],
    ['not XML', 'encrypt please', /not well-formed/],
    ['unclosed element', '<ServerSideEncryptionConfiguration><Rule>', /not well-formed/],
    ['wrong root', '<EncryptionConfiguration><Rule/></EncryptionConfiguration>', /root element/],
    ['no rule', '<ServerSideEncryptionConfiguration></ServerSideEncryptionConfiguration>', /needs one Rule/],
    ['two rules', xml(kms, `<Rule>${kms}</Rule>`), /exactly one Rule, not 2/],
    ['unknown algorithm', xml('<ApplyServerSideEncryptionByDefault><SSEAlgorithm>aes:kms</SSEAlgorithm></ApplyServerSideEncryptionByDefault>'), /SSEAlgorithm "aes:kms" is not one of/],
    ['missing algorithm', xml('<ApplyServerSideEncryptionByDefault></ApplyServerSideEncryptionByDefault>'), /SSEAlgorithm is required/],
    ['two algorithms', xml('<ApplyServerSideEncryptionByDefault><SSEAlgorithm>aws:kms</SSEAlgorithm><SSEAlgorithm>AES256</SSEAlgorithm></ApplyServerSideEncryptionByDefault>'), /SSEAlgorithm may appear only once/],
    ['unknown element', xml(kms + '<Colour>blue</Colour>'), /Rule does not take Colour/],
    ['rule without default', xml('<BucketKeyEnabled>true</BucketKeyEnabled>'), /ApplyServerSideEncryptionByDefault is required/],
    ['bad BucketKeyEnabled', xml(kms + '<BucketKeyEnabled>yes</BucketKeyEnabled>'), /BucketKeyEnabled must be true or false/],
  ]
  it.each(malformed)('%s → MalformedXML saying what', (_n, body, message) => {
    const e = failure(() => parseBucketEncryption(body, 'aws'))
    expect(e.code).toBe('MalformedXML')
    expect(e.message).toMatch(message)
  })

  it('refuses a KMSMasterKeyID with AES256', () => {
    const e = failure(() => parseBucketEncryption(xml('<ApplyServerSideEncryptionByDefault><SSEAlgorithm>AES256</SSEAlgorithm><KMSMasterKeyID>k</KMSMasterKeyID></ApplyServerSideEncryptionByDefault>'), 'aws'))
    expect(e.code).toBe('InvalidArgument')
  })

  it('renders what it parses', () => {
    const configs: BucketEncryption[] = [
      { algorithm: 'aws:kms', bucketKeyEnabled: false },
      { algorithm: 'aws:kms', kmsMasterKeyId: 'alias/team', bucketKeyEnabled: true },
      { algorithm: 'AES256', bucketKeyEnabled: false },
    ]
    for (const c of configs) expect(parseBucketEncryption(renderBucketEncryption(c), 'aws')).toEqual(c)
    expect(renderBucketEncryption(configs[0])).toContain('xmlns="http://s3.amazonaws.com/doc/2006-03-01/"')
  })
})

describe('the encryption of a write', () => {
  const onKms: BucketEncryption = { algorithm: 'aws:kms', bucketKeyEnabled: false }

  it('oss: encrypted under the bucket service key exactly when the bucket default is on, whatever the headers', () => {
    const headerSets = [{}, { sse: 'AES256' }, { sse: 'aws:kms', kmsKeyId: 'other' }, { sse: 'bogus' }, { customerAlgorithm: 'AES256' }]
    for (const headers of headerSets) {
      expect(decideWriteEncryption({ mode: 'oss', bucket: 'b', bucketDefault: null, headers })).toBeNull()
      expect(decideWriteEncryption({ mode: 'oss', bucket: 'b', bucketDefault: onKms, headers })).toEqual({
        algorithm: 'aws:kms', keyId: serviceKeyAlias('b'), createKey: true, bucketKey: false,
      })
    }
  })

  it('aws: headers override the bucket default', () => {
    const d = (bucketDefault: BucketEncryption | null, headers: object) => decideWriteEncryption({ mode: 'aws', bucket: 'b', bucketDefault, headers })
    expect(d(null, {})).toBeNull()
    expect(d(onKms, {})).toMatchObject({ algorithm: 'aws:kms', keyId: 'aws/s3', createKey: true })
    expect(d(null, { sse: 'AES256' })).toMatchObject({ algorithm: 'AES256', createKey: true })
    expect(d(onKms, { sse: 'AES256' })).toMatchObject({ algorithm: 'AES256' })
    expect(d(null, { sse: 'aws:kms', kmsKeyId: 'arn:aws:kms:eu-west-1:1:key/k-1' })).toMatchObject({ keyId: 'k-1', createKey: false })
    expect(d({ ...onKms, kmsMasterKeyId: 'alias/team', bucketKeyEnabled: true }, {})).toMatchObject({ keyId: 'team', createKey: false, bucketKey: true })
    expect(d(onKms, { sse: 'aws:kms', bucketKeyEnabled: 'true' })).toMatchObject({ bucketKey: true })
    const ctx = Buffer.from(JSON.stringify({ project: 'x' })).toString('base64')
    expect(d(null, { sse: 'aws:kms', context: ctx })).toMatchObject({ extraContext: { project: 'x' } })
  })

  const invalid: Array<[string, object, string]> = [
    ['a key id without aws:kms', { kmsKeyId: 'k' }, 'InvalidArgument'],
    ['a key id with AES256', { sse: 'AES256', kmsKeyId: 'k' }, 'InvalidArgument'],
    ['aes:kms', { sse: 'aes:kms' }, 'InvalidArgument'],
    ['a context without aws:kms', { context: 'e30=' }, 'InvalidArgument'],
    ['a context that is not base64 JSON', { sse: 'aws:kms', context: 'not json' }, 'InvalidArgument'],
    ['a context with a number', { sse: 'aws:kms', context: Buffer.from('{"a":1}').toString('base64') }, 'InvalidArgument'],
    ['SSE-C mixed with SSE-KMS', { sse: 'aws:kms', customerAlgorithm: 'AES256' }, 'InvalidArgument'],
    ['bucket-key-enabled maybe', { sse: 'aws:kms', bucketKeyEnabled: 'maybe' }, 'InvalidArgument'],
    ['SSE-C with a malformed key', { customerAlgorithm: 'AES256', customerKey: 'x', customerKeyMd5: 'y' }, 'InvalidArgument'],
  ]
  it.each(invalid)('aws: %s is refused', (_n, headers, code) => {
    expect(failure(() => decideWriteEncryption({ mode: 'aws', bucket: 'b', bucketDefault: null, headers })).code).toBe(code)
  })

  it('aws: SSE-C headers make an SSE-C write, whatever the bucket default', () => {
    const headers = { customerAlgorithm: 'AES256', customerKey: Buffer.alloc(32, 7).toString('base64'), customerKeyMd5: 'y4HAEFCYWuvAXWFTtA1Qpg==' }
    const d = decideWriteEncryption({ mode: 'aws', bucket: 'b', bucketDefault: { algorithm: 'aws:kms', bucketKeyEnabled: true }, headers })!
    expect(d).toMatchObject({ algorithm: 'SSE-C', keyId: 'sse-c', createKey: false, bucketKey: false })
    expect(d.customerKey?.key.equals(Buffer.alloc(32, 7))).toBe(true)
    // oss mode: request SSE headers change nothing.
    expect(decideWriteEncryption({ mode: 'oss', bucket: 'b', bucketDefault: null, headers })).toBeNull()
  })

  it('reads the headers from a request', () => {
    expect(sseRequestHeaders({ 'x-amz-server-side-encryption': 'aws:kms', 'x-amz-server-side-encryption-aws-kms-key-id': 'k' })).toMatchObject({ sse: 'aws:kms', kmsKeyId: 'k' })
  })

  it('normalises KMS key references', () => {
    expect(kmsKeyRef('1234abcd-12ab')).toBe('1234abcd-12ab')
    expect(kmsKeyRef('arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab')).toBe('1234abcd-12ab')
    expect(kmsKeyRef('alias/team')).toBe('team')
    expect(kmsKeyRef('arn:aws:kms:us-east-1:111122223333:alias/team')).toBe('team')
  })
})

describe('reads, transport and responses', () => {
  it('aws mode refuses SSE headers on GET/HEAD; oss ignores them', () => {
    expect(failure(() => checkReadHeaders('aws', { 'x-amz-server-side-encryption': 'aws:kms' })).code).toBe('InvalidArgument')
    expect(() => checkReadHeaders('oss', { 'x-amz-server-side-encryption': 'aws:kms' })).not.toThrow()
    expect(() => checkReadHeaders('aws', {})).not.toThrow()
  })

  it('KMS data needs HTTPS and SigV4, with the messages S3 uses', () => {
    expect(() => checkTransport({ carriesKmsData: false, secure: false, sigV4: false })).not.toThrow()
    expect(() => checkTransport({ carriesKmsData: true, secure: true, sigV4: true })).not.toThrow()
    const http = failure(() => checkTransport({ carriesKmsData: true, secure: false, sigV4: true }))
    expect([http.code, http.message]).toEqual(['InvalidArgument', INSECURE_TRANSPORT_MESSAGE])
    const v2 = failure(() => checkTransport({ carriesKmsData: true, secure: true, sigV4: false }))
    expect([v2.code, v2.message]).toEqual(['InvalidArgument', NOT_SIGV4_MESSAGE])
  })

  it('reports aws:kms for an encrypted object and nothing for a plain one', () => {
    expect(sseResponseHeaders('oss', null)).toEqual({})
    expect(sseResponseHeaders('oss', { algorithm: 'aws:kms', keyId: 'k', bucketKey: true })).toEqual({ 'x-amz-server-side-encryption': 'aws:kms' })
    expect(sseResponseHeaders('aws', { algorithm: 'aws:kms', keyId: 'k', bucketKey: true })).toEqual({
      'x-amz-server-side-encryption': 'aws:kms',
      'x-amz-server-side-encryption-aws-kms-key-id': 'k',
      'x-amz-server-side-encryption-bucket-key-enabled': 'true',
    })
    expect(sseResponseHeaders('aws', { algorithm: 'AES256', keyId: 's' })).toEqual({ 'x-amz-server-side-encryption': 'AES256' })
  })
})
