/**
 * Bucket policies as pure rules (src/s3/policy.ts): the patterns AWS documents for enforcing
 * encryption and sharing a bucket, IAM's evaluation logic (an explicit Deny wins), the
 * condition operators and keys, and MalformedPolicy for what the grammar does not allow.
 */
import { describe, expect, it } from 'vitest'
import { S3sseError } from '../../src/errors.js'
import { toS3Error } from '../../src/s3/errors.js'
import { evaluatePolicy, parseBucketPolicy, resourceArn, wildcardMatch, type PolicyRequest } from '../../src/s3/policy.js'

const users = new Set(['alice', 'bob', 'root'])
const opts = { bucket: 'photos', isUser: (n: string) => users.has(n) }
const parse = (doc: unknown) => parseBucketPolicy(JSON.stringify(doc), opts)

function failure(f: () => unknown): { status: number; code: string; message: string } {
  try {
    f()
  } catch (e) {
    expect(e).toBeInstanceOf(S3sseError)
    const s = toS3Error(e)
    return { status: s.status, code: s.code, message: s.message }
  }
  throw new Error('expected a failure')
}

const put = (context: PolicyRequest['context'] = {}, user = 'alice', key = 'cat.jpg'): PolicyRequest => ({
  user,
  action: 's3:PutObject',
  resource: resourceArn('photos', key),
  context: { 'aws:securetransport': 'true', ...context },
})

describe('the AWS-documented "deny PutObject unless aws:kms" policy', () => {
  // S3 User Guide, "Requiring server-side encryption with AWS KMS keys (SSE-KMS)".
  const policy = parse({
    Version: '2012-10-17',
    Id: 'PutObjectPolicy',
    Statement: [
      {
        Sid: 'DenyIncorrectEncryptionHeader',
        Effect: 'Deny',
        Principal: '*',
        Action: 's3:PutObject',
        Resource: 'arn:aws:s3:::photos/*',
        Condition: { StringNotEquals: { 's3:x-amz-server-side-encryption': 'aws:kms' } },
      },
      {
        Sid: 'DenyUnEncryptedObjectUploads',
        Effect: 'Deny',
        Principal: '*',
        Action: 's3:PutObject',
        Resource: 'arn:aws:s3:::photos/*',
        Condition: { Null: { 's3:x-amz-server-side-encryption': 'true' } },
      },
    ],
  })

  it('denies a write without the header or with AES256, and says nothing about aws:kms writes', () => {
    expect(evaluatePolicy(policy, put())).toBe('Deny')
    expect(evaluatePolicy(policy, put({ 's3:x-amz-server-side-encryption': 'AES256' }))).toBe('Deny')
    expect(evaluatePolicy(policy, put({ 's3:x-amz-server-side-encryption': 'aws:kms' }))).toBe('default')
    // Reads are not PutObject.
    expect(evaluatePolicy(policy, { ...put(), action: 's3:GetObject' })).toBe('default')
  })
})

describe('evaluation', () => {
  it('a policy can grant another user access; an explicit Deny overrides any Allow', () => {
    const policy = parse({
      Version: '2012-10-17',
      Statement: [
        { Sid: 'ShareRead', Effect: 'Allow', Principal: { AWS: ['alice', 'arn:aws:iam::111122223333:user/bob'] }, Action: ['s3:GetObject', 's3:ListBucket'], Resource: ['arn:aws:s3:::photos', 'arn:aws:s3:::photos/*'] },
        { Sid: 'NotPrivate', Effect: 'Deny', Principal: { AWS: 'bob' }, Action: 's3:*', Resource: 'arn:aws:s3:::photos/private/*' },
      ],
    })
    const get = (user: string, key: string): PolicyRequest => ({ user, action: 's3:GetObject', resource: resourceArn('photos', key), context: {} })
    expect(evaluatePolicy(policy, get('alice', 'a.jpg'))).toBe('Allow')
    expect(evaluatePolicy(policy, get('bob', 'a.jpg'))).toBe('Allow')
    expect(evaluatePolicy(policy, get('bob', 'private/x.jpg'))).toBe('Deny')
    expect(evaluatePolicy(policy, get('alice', 'private/x.jpg'))).toBe('Allow')
    expect(evaluatePolicy(policy, { user: 'alice', action: 's3:ListBucket', resource: resourceArn('photos'), context: {} })).toBe('Allow')
    expect(evaluatePolicy(policy, { ...get('alice', 'a.jpg'), action: 's3:PutObject' })).toBe('default')
    expect(evaluatePolicy(policy, get('root', 'a.jpg'))).toBe('default')
    expect(evaluatePolicy(undefined, get('alice', 'a.jpg'))).toBe('default')
  })

  it('wildcards in actions (case-insensitive) and resources; NotAction and NotResource', () => {
    const policy = parse({
      Version: '2012-10-17',
      Statement: [
        { Effect: 'Allow', Principal: { AWS: 'alice' }, Action: 's3:get*', Resource: 'arn:aws:s3:::photos/reports/????/*' },
        { Effect: 'Deny', Principal: '*', NotAction: ['s3:GetObject', 's3:ListBucket'], NotResource: 'arn:aws:s3:::photos/public/*' },
      ],
    })
    const req = (action: string, key: string, user = 'alice'): PolicyRequest => ({ user, action, resource: resourceArn('photos', key), context: {} })
    expect(evaluatePolicy(policy, req('s3:GetObject', 'reports/2026/q1.csv'))).toBe('Allow')
    expect(evaluatePolicy(policy, req('s3:GetObjectTagging', 'reports/2026/q1.csv'))).toBe('Deny')
    expect(evaluatePolicy(policy, req('s3:GetObject', 'reports/26/q1.csv'))).toBe('default')
    expect(evaluatePolicy(policy, req('s3:PutObject', 'public/a.txt', 'bob'))).toBe('default')
    expect(evaluatePolicy(policy, req('s3:PutObject', 'other/a.txt', 'bob'))).toBe('Deny')
    expect(wildcardMatch('a*b?c', 'aXXbYc')).toBe(true)
    expect(wildcardMatch('a*b?c', 'aXXbc')).toBe(false)
    expect(wildcardMatch('*', '')).toBe(true)
    expect(wildcardMatch('S3:GET*', 's3:GetObject', true)).toBe(true)
  })

  it('condition operators: StringEquals, StringLike, Bool, IpAddress, NotIpAddress, …IfExists; keys are case-insensitive', () => {
    const only = (Condition: unknown, Effect = 'Allow') => parse({ Version: '2012-10-17', Statement: [{ Effect, Principal: '*', Action: 's3:PutObject', Resource: 'arn:aws:s3:::photos/*', Condition }] })
    const keyIs = only({ StringEquals: { 's3:x-amz-server-side-encryption-aws-kms-key-id': ['alias/team', 'alias/other'] } })
    expect(evaluatePolicy(keyIs, put({ 's3:x-amz-server-side-encryption-aws-kms-key-id': 'alias/team' }))).toBe('Allow')
    expect(evaluatePolicy(keyIs, put({ 's3:x-amz-server-side-encryption-aws-kms-key-id': 'alias/nope' }))).toBe('default')
    expect(evaluatePolicy(keyIs, put())).toBe('default')
    const like = only({ StringLike: { 'S3:X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id': 'arn:aws:kms:*:key/*' } })
    expect(evaluatePolicy(like, put({ 's3:x-amz-server-side-encryption-aws-kms-key-id': 'arn:aws:kms:us-east-1:1:key/abc' }))).toBe('Allow')
    const tls = only({ Bool: { 'aws:SecureTransport': 'false' } }, 'Deny')
    expect(evaluatePolicy(tls, put({ 'aws:securetransport': 'false' }))).toBe('Deny')
    expect(evaluatePolicy(tls, put({ 'aws:securetransport': 'true' }))).toBe('default')
    const tlsBool = only({ Bool: { 'aws:SecureTransport': false } }, 'Deny')
    expect(evaluatePolicy(tlsBool, put({ 'aws:securetransport': 'false' }))).toBe('Deny')
    const ip = only({ IpAddress: { 'aws:SourceIp': ['10.0.0.0/8', '2001:db8::/32'] } })
    expect(evaluatePolicy(ip, put({ 'aws:sourceip': '10.1.2.3' }))).toBe('Allow')
    expect(evaluatePolicy(ip, put({ 'aws:sourceip': '::ffff:10.1.2.3' }))).toBe('Allow')
    expect(evaluatePolicy(ip, put({ 'aws:sourceip': '2001:db8::1' }))).toBe('Allow')
    expect(evaluatePolicy(ip, put({ 'aws:sourceip': '127.0.0.1' }))).toBe('default')
    const notIp = only({ NotIpAddress: { 'aws:SourceIp': '127.0.0.1/32' } }, 'Deny')
    expect(evaluatePolicy(notIp, put({ 'aws:sourceip': '192.168.1.1' }))).toBe('Deny')
    expect(evaluatePolicy(notIp, put({ 'aws:sourceip': '127.0.0.1' }))).toBe('default')
    const ifExists = only({ StringEqualsIfExists: { 's3:x-amz-server-side-encryption': 'aws:kms' } })
    expect(evaluatePolicy(ifExists, put())).toBe('Allow')
    expect(evaluatePolicy(ifExists, put({ 's3:x-amz-server-side-encryption': 'AES256' }))).toBe('default')
    // Two keys in one block and two operators: all must hold.
    const both = only({ StringEquals: { 's3:x-amz-server-side-encryption': 'aws:kms' }, Bool: { 'aws:SecureTransport': 'true' } })
    expect(evaluatePolicy(both, put({ 's3:x-amz-server-side-encryption': 'aws:kms' }))).toBe('Allow')
    expect(evaluatePolicy(both, put({ 's3:x-amz-server-side-encryption': 'aws:kms', 'aws:securetransport': 'false' }))).toBe('default')
  })
})

describe('MalformedPolicy', () => {
  const stmt = { Effect: 'Allow', Principal: '*', Action: 's3:GetObject', Resource: 'arn:aws:s3:::photos/*' }
  const cases: Array<[string, string, RegExp]> = [
    ['not JSON', 'not json', /first byte must be '\{'/],
    ['broken JSON', '{"Version": ', /invalid Json/],
    ['no Statement', JSON.stringify({ Version: '2012-10-17' }), /Missing required field Statement/],
    ['a bad Version', JSON.stringify({ Version: '2020-01-01', Statement: [stmt] }), /valid version/],
    ['a bad Effect', JSON.stringify({ Version: '2012-10-17', Statement: [{ ...stmt, Effect: 'Maybe' }] }), /Invalid effect/],
    ['no Principal', JSON.stringify({ Version: '2012-10-17', Statement: [{ ...stmt, Principal: undefined }] }), /Principal/],
    ['an unknown user', JSON.stringify({ Version: '2012-10-17', Statement: [{ ...stmt, Principal: { AWS: 'mallory' } }] }), /Invalid principal/],
    ['a Service principal', JSON.stringify({ Version: '2012-10-17', Statement: [{ ...stmt, Principal: { Service: 'x' } }] }), /Invalid principal/],
    ['an unknown action', JSON.stringify({ Version: '2012-10-17', Statement: [{ ...stmt, Action: 's3:StealObject' }] }), /invalid action/],
    ['a non-S3 action', JSON.stringify({ Version: '2012-10-17', Statement: [{ ...stmt, Action: 'ec2:RunInstances' }] }), /invalid action/],
    ['another bucket', JSON.stringify({ Version: '2012-10-17', Statement: [{ ...stmt, Resource: 'arn:aws:s3:::other/*' }] }), /invalid resource/],
    ['a non-S3 resource', JSON.stringify({ Version: '2012-10-17', Statement: [{ ...stmt, Resource: 'arn:aws:sqs:::q' }] }), /invalid resource/],
    ['Action and NotAction', JSON.stringify({ Version: '2012-10-17', Statement: [{ ...stmt, NotAction: 's3:PutObject' }] }), /Action/],
    ['an unknown operator', JSON.stringify({ Version: '2012-10-17', Statement: [{ ...stmt, Condition: { StringEquls: { 'aws:SourceIp': 'x' } } }] }), /Invalid Condition type : StringEquls/],
    ['an unknown key', JSON.stringify({ Version: '2012-10-17', Statement: [{ ...stmt, Condition: { StringEquals: { 's3:favourite-colour': 'blue' } } }] }), /invalid condition key/],
    ['a bad CIDR', JSON.stringify({ Version: '2012-10-17', Statement: [{ ...stmt, Condition: { IpAddress: { 'aws:SourceIp': '10.0.0.0/33' } } }] }), /CIDR/],
    ['Bool maybe', JSON.stringify({ Version: '2012-10-17', Statement: [{ ...stmt, Condition: { Bool: { 'aws:SecureTransport': 'maybe' } } }] }), /true or false/],
    ['duplicate Sids', JSON.stringify({ Version: '2012-10-17', Statement: [{ ...stmt, Sid: 'a' }, { ...stmt, Sid: 'a' }] }), /unique/],
    ['an unknown field', JSON.stringify({ Version: '2012-10-17', Statement: [{ ...stmt, Effekt: 'Allow' }] }), /Unknown field/],
    ['too large', JSON.stringify({ Version: '2012-10-17', Id: 'x'.repeat(21 * 1024), Statement: [stmt] }), /20 KB/],
  ]
  it.each(cases)('%s', (_what, json, message) => {
    const f = failure(() => parseBucketPolicy(json, opts))
    expect([f.status, f.code]).toEqual([400, 'MalformedPolicy'])
    expect(f.message).toMatch(message)
  })

  it('accepts one Statement object, Version 2008-10-17, a bucket wildcard that matches, and principal "*" in AWS', () => {
    const p = parseBucketPolicy(JSON.stringify({ Version: '2008-10-17', Statement: { ...stmt, Principal: { AWS: '*' }, Resource: 'arn:aws:s3:::pho*/*' } }), opts)
    expect(p.statements).toHaveLength(1)
    expect(evaluatePolicy(p, { user: 'anyone', action: 's3:GetObject', resource: resourceArn('photos', 'x'), context: {} })).toBe('Allow')
  })
})
