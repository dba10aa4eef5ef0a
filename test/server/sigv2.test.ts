/**
 * The SigV2 verifier's pieces against the S3 Developer Guide's own examples ("Signing and
 * authenticating REST requests": the example credentials AKIAIOSFODNN7EXAMPLE /
 * wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY and the puppy.jpg requests).
 */
import { createHmac } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { S3sseError } from '../../src/errors.js'
import { canonicalResourceV2, verifyHeaderV2, verifyPostPolicyV2, verifyPresignedV2 } from '../../src/server/auth/sigv2.js'

const KEY = 'AKIAIOSFODNN7EXAMPLE'
const SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY'
const opts = { region: 'us-east-1', lookup: (k: string) => (k === KEY ? { accessKey: KEY, secretKey: SECRET } : undefined) }

async function code(fn: () => unknown): Promise<string | undefined> {
  try {
    await fn()
    return undefined
  } catch (err) {
    return err instanceof S3sseError ? err.code : String(err)
  }
}

describe('SigV2', () => {
  it('verifies the guide\'s GET and PUT examples (virtual-hosted style)', async () => {
    const get = { method: 'GET', rawPath: '/photos/puppy.jpg', rawQuery: '', virtualHostBucket: 'awsexamplebucket1', headers: { date: 'Tue, 27 Mar 2007 19:36:42 +0000' }, now: Date.parse('Tue, 27 Mar 2007 19:40:00 +0000') }
    expect((await verifyHeaderV2(get, `AWS ${KEY}:qgk2+6Sv9/oM7G3qLEjTH1a1l1g=`, opts)).accessKey).toBe(KEY)
    const put = { ...get, method: 'PUT', headers: { date: 'Tue, 27 Mar 2007 21:15:45 +0000', 'content-type': 'image/jpeg', 'content-length': '94328' }, now: Date.parse('Tue, 27 Mar 2007 21:16:00 +0000') }
    expect((await verifyHeaderV2(put, `AWS ${KEY}:iqRzw+ileNPu1fhspnRs8nOjjIA=`, opts)).accessKey).toBe(KEY)
    // The same request with another path, another secret or outside 15 minutes is refused.
    expect(await code(() => verifyHeaderV2({ ...get, rawPath: '/photos/kitten.jpg' }, `AWS ${KEY}:qgk2+6Sv9/oM7G3qLEjTH1a1l1g=`, opts))).toBe('SignatureDoesNotMatch')
    expect(await code(() => verifyHeaderV2(get, `AWS OTHERKEY:qgk2+6Sv9/oM7G3qLEjTH1a1l1g=`, opts))).toBe('InvalidAccessKeyId')
    expect(await code(() => verifyHeaderV2({ ...get, now: get.now + 20 * 60 * 1000 }, `AWS ${KEY}:qgk2+6Sv9/oM7G3qLEjTH1a1l1g=`, opts))).toBe('RequestTimeTooSkewed')
    expect(await code(() => verifyHeaderV2(get, 'AWS nocolon', opts))).toBe('AuthorizationHeaderMalformed')
  })

  it('builds the canonical resource: bucket, path as sent, subresources sorted with decoded values', async () => {
    expect(canonicalResourceV2({ rawPath: '/b/k%20x', rawQuery: 'uploadId=abc&partNumber=2&max-keys=3' })).toBe('/b/k%20x?partNumber=2&uploadId=abc')
    expect(canonicalResourceV2({ rawPath: '/b/k', rawQuery: 'uploads' })).toBe('/b/k?uploads')
    expect(canonicalResourceV2({ rawPath: '/b/k', rawQuery: 'response-content-disposition=attachment%3B%20f.txt' })).toBe('/b/k?response-content-disposition=attachment; f.txt')
    expect(canonicalResourceV2({ rawPath: '/k', rawQuery: 'acl', virtualHostBucket: 'b' })).toBe('/b/k?acl')
  })

  it('verifies presigned URLs and their expiry; x-amz-* query parameters are signed like headers', async () => {
    // Expires replaces Date in the string to sign.
    const req = { method: 'GET', rawPath: '/awsexamplebucket1/photos/puppy.jpg', headers: {}, now: 1175139000 * 1000 }
    const url = `AWSAccessKeyId=${KEY}&Expires=1175139620&Signature=${encodeURIComponent('1No4mq5ETf02z8aet9voy6gui6E=')}`
    expect((await verifyPresignedV2({ ...req, rawQuery: url }, opts)).presigned).toBe(true)
    expect(await code(() => verifyPresignedV2({ ...req, rawQuery: url, now: 1175139621 * 1000 }, opts))).toBe('AccessDenied')
    expect(await code(() => verifyPresignedV2({ ...req, rawQuery: url.replace('Expires=1175139620', 'Expires=1175139629') }, opts))).toBe('SignatureDoesNotMatch')
    expect(await code(() => verifyPresignedV2({ ...req, rawQuery: url + '&x-amz-server-side-encryption=aws%3Akms' }, opts))).toBe('SignatureDoesNotMatch')
  })

  it('verifies a POST policy signature (HMAC-SHA1 over the base64 policy)', async () => {
    const policy = Buffer.from('{"expiration":"2030-01-01T00:00:00Z","conditions":[]}').toString('base64')
    const signature = createHmac('sha1', SECRET).update(policy).digest('base64')
    expect(await verifyPostPolicyV2(policy, KEY, signature, opts)).toBe(KEY)
    expect(await code(() => verifyPostPolicyV2(policy + 'x', KEY, signature, opts))).toBe('SignatureDoesNotMatch')
  })
})
