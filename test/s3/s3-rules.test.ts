/**
 * The S3 rules as pure functions: ranges, preconditions, listing, checksums (including CRC
 * combination), XML documents, POST policies, canonical URIs and the aws-chunked decoder.
 */
import { createHash, createHmac, randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { checksumOf, combineCrcs, compositeChecksum, validateChecksumValue } from '../../src/s3/checksums.js'
import { evaluatePreconditions, parseCopySourceRange, parseRange } from '../../src/s3/conditions.js'
import { toS3Error } from '../../src/s3/errors.js'
import { decodeContinuationToken, encodeContinuationToken, listPage, type ListSource } from '../../src/s3/listing.js'
import { multipartEtag, newUploadId, parseCopySource, storedHeadersFrom, validateBucketName, validateKey } from '../../src/s3/objects.js'
import { evaluatePostPolicy, postObjectKey } from '../../src/s3/post-policy.js'
import { encodeKeyForXml, parseCompleteMultipart, parseCreateBucket, parseDeleteObjects, s3Document } from '../../src/s3/xml.js'
import { S3sseError } from '../../src/errors.js'
import { decodeAwsChunked } from '../../src/server/auth/chunked.js'
import { canonicalUri, ChunkSigner } from '../../src/server/auth/sigv4.js'
import { prefixUpperBound } from '../../src/server/meta/sqlite/rows.js'

function code(fn: () => unknown): string | undefined {
  try {
    fn()
    return undefined
  } catch (err) {
    return err instanceof S3sseError ? err.code : String(err)
  }
}

describe('ranges', () => {
  it('resolves single byte ranges against the size', () => {
    expect(parseRange('bytes=0-0', 10)).toEqual({ start: 0, end: 0 })
    expect(parseRange('bytes=3-', 10)).toEqual({ start: 3, end: 9 })
    expect(parseRange('bytes=-3', 10)).toEqual({ start: 7, end: 9 })
    expect(parseRange('bytes=-30', 10)).toEqual({ start: 0, end: 9 })
    expect(parseRange('bytes=5-100', 10)).toEqual({ start: 5, end: 9 })
    expect(parseRange(undefined, 10)).toBeNull()
    // Not one valid range: ignored, the whole object is served.
    expect(parseRange('bytes=5-2', 10)).toBeNull()
    expect(parseRange('bytes=0-1,3-4', 10)).toBeNull()
    expect(parseRange('items=0-1', 10)).toBeNull()
    // Valid but unsatisfiable: 416.
    expect(code(() => parseRange('bytes=10-', 10))).toBe('InvalidRange')
    expect(code(() => parseRange('bytes=-0', 10))).toBe('InvalidRange')
    expect(code(() => parseRange('bytes=0-', 0))).toBe('InvalidRange')
  })

  it('parses copy-source ranges strictly', () => {
    expect(parseCopySourceRange('bytes=0-9', 10)).toEqual({ start: 0, end: 9 })
    expect(code(() => parseCopySourceRange('bytes=0-10', 10))).toBe('InvalidRange')
    expect(code(() => parseCopySourceRange('bytes=5-', 10))).toBe('InvalidArgument')
    expect(code(() => parseCopySourceRange('bytes=5-4', 10))).toBe('InvalidArgument')
  })
})

describe('preconditions', () => {
  const t = Date.parse('2024-05-01T12:00:00.500Z')
  const before = 'Wed, 01 May 2024 11:00:00 GMT'
  const same = 'Wed, 01 May 2024 12:00:00 GMT'
  const after = 'Wed, 01 May 2024 13:00:00 GMT'
  it('follows S3 precedence and compares dates at whole seconds', () => {
    expect(evaluatePreconditions({ ifMatch: '"abc"' }, 'abc', t)).toBe('proceed')
    expect(evaluatePreconditions({ ifMatch: '"x", "abc"' }, 'abc', t)).toBe('proceed')
    expect(evaluatePreconditions({ ifMatch: '*' }, 'abc', t)).toBe('proceed')
    expect(evaluatePreconditions({ ifMatch: '"x"' }, 'abc', t)).toBe('failed')
    expect(evaluatePreconditions({ ifNoneMatch: 'W/"abc"' }, 'abc', t)).toBe('not-modified')
    expect(evaluatePreconditions({ ifModifiedSince: same }, 'abc', t)).toBe('not-modified')
    expect(evaluatePreconditions({ ifModifiedSince: before }, 'abc', t)).toBe('proceed')
    expect(evaluatePreconditions({ ifUnmodifiedSince: same }, 'abc', t)).toBe('proceed')
    expect(evaluatePreconditions({ ifUnmodifiedSince: before }, 'abc', t)).toBe('failed')
    expect(evaluatePreconditions({ ifMatch: '"abc"', ifUnmodifiedSince: before }, 'abc', t)).toBe('proceed')
    expect(evaluatePreconditions({ ifNoneMatch: '"abc"', ifModifiedSince: before }, 'abc', t)).toBe('not-modified')
    expect(evaluatePreconditions({ ifNoneMatch: '"zzz"', ifModifiedSince: after }, 'abc', t)).toBe('proceed')
    expect(evaluatePreconditions({ ifModifiedSince: 'not a date' }, 'abc', t)).toBe('proceed')
  })
})

describe('listing', () => {
  const keys = ['a', 'a/1', 'a/2', 'a/b/c', 'b', 'b/x', 'c/', 'c/y', 'é/1', '日本/語']
  const sorted = [...keys].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)))
  let queries = 0
  const source: ListSource<{ key: string }> = (after, prefix, limit) => {
    queries++
    return sorted
      .filter((k) => Buffer.compare(Buffer.from(k), Buffer.from(after)) > 0 && k.startsWith(prefix))
      .slice(0, limit)
      .map((key) => ({ key }))
  }

  it('rolls keys up into common prefixes and counts both against max-keys', async () => {
    const page = await listPage(source, { prefix: '', delimiter: '/', maxKeys: 1000, after: '' })
    expect(page.contents.map((c) => c.key)).toEqual(['a', 'b'])
    expect(page.commonPrefixes).toEqual(['a/', 'b/', 'c/', 'é/', '日本/'])
    expect(page.isTruncated).toBe(false)
    const p1 = await listPage(source, { prefix: '', delimiter: '/', maxKeys: 3, after: '' })
    expect([...p1.contents.map((c) => c.key), ...p1.commonPrefixes]).toEqual(['a', 'b', 'a/'])
    expect(p1.isTruncated).toBe(true)
    expect(p1.nextMarker).toBe('b')
    const p2 = await listPage(source, { prefix: '', delimiter: '/', maxKeys: 3, after: p1.resumeAfter! })
    expect(p2.commonPrefixes).toEqual(['b/', 'c/', 'é/'])
    expect(p2.isTruncated).toBe(true)
    const p3page = await listPage(source, { prefix: '', delimiter: '/', maxKeys: 3, after: p2.resumeAfter! })
    expect(p3page).toMatchObject({ contents: [], commonPrefixes: ['日本/'], isTruncated: false })
    // A NextMarker that is a common prefix resumes past every key under it.
    const p3 = await listPage(source, { prefix: '', delimiter: '/', maxKeys: 1000, after: 'b/' })
    expect(p3.commonPrefixes).toEqual(['c/', 'é/', '日本/'])
  })

  it('filters by prefix, with and without a delimiter', async () => {
    expect(await listPage(source, { prefix: 'a/', delimiter: '/', maxKeys: 10, after: '' })).toMatchObject({
      contents: [{ key: 'a/1' }, { key: 'a/2' }],
      commonPrefixes: ['a/b/'],
    })
    expect((await listPage(source, { prefix: 'a', delimiter: '', maxKeys: 10, after: '' })).contents.map((c) => c.key)).toEqual(['a', 'a/1', 'a/2', 'a/b/c'])
    expect((await listPage(source, { prefix: 'zz', delimiter: '/', maxKeys: 10, after: '' })).contents).toEqual([])
    expect(await listPage(source, { prefix: '', delimiter: '', maxKeys: 0, after: '' })).toMatchObject({ contents: [], isTruncated: true })
  })

  it('skips a whole prefix with one query', async () => {
    queries = 0
    await listPage(source, { prefix: '', delimiter: '/', maxKeys: 1000, after: '' })
    expect(queries).toBeLessThanOrEqual(9)
  })

  it('round-trips continuation tokens and refuses garbage', () => {
    expect(decodeContinuationToken(encodeContinuationToken('日本/語 x'))).toBe('日本/語 x')
    expect(code(() => decodeContinuationToken('not a token!'))).toBe('InvalidArgument')
  })

  it('bounds prefixes in UTF-8 byte order', () => {
    expect(prefixUpperBound('a/')).toBe('a0')
    expect(prefixUpperBound('')).toBeNull()
    expect(prefixUpperBound('a\u{10FFFF}')).toBe('b')
    expect(prefixUpperBound('\uD7FF')).toBe('\uE000')
  })
})

describe('checksums', () => {
  it('match published check values', async () => {
    const nine = Buffer.from('123456789')
    const hex = async (alg: 'CRC32' | 'CRC32C' | 'CRC64NVME') => Buffer.from(await checksumOf(alg, nine), 'base64').toString('hex')
    expect(await hex('CRC32')).toBe('cbf43926')
    expect(await hex('CRC32C')).toBe('e3069283')
    expect(await hex('CRC64NVME')).toBe('ae8b14860a799888')
    expect(await checksumOf('SHA256', nine)).toBe(createHash('sha256').update(nine).digest('base64'))
  })

  it('combine part CRCs into the CRC of the whole object', async () => {
    for (const alg of ['CRC32', 'CRC32C', 'CRC64NVME'] as const) {
      const parts = [randomBytes(1000), randomBytes(0), randomBytes(65537), randomBytes(3)]
      const combined = combineCrcs(alg, await Promise.all(parts.map(async (p) => ({ checksum: await checksumOf(alg, p), size: p.length }))))
      expect(combined).toBe(await checksumOf(alg, Buffer.concat(parts)))
    }
  })

  it('build composite checksums and multipart ETags', async () => {
    const a = createHash('sha1').update('a').digest()
    const b = createHash('sha1').update('b').digest()
    expect(await compositeChecksum('SHA1', [a.toString('base64'), b.toString('base64')])).toBe(
      createHash('sha1').update(Buffer.concat([a, b])).digest('base64') + '-2',
    )
    const m1 = createHash('md5').update('x').digest('hex')
    expect(multipartEtag([m1])).toBe(createHash('md5').update(Buffer.from(m1, 'hex')).digest('hex') + '-1')
  })

  it('refuse malformed checksum values', () => {
    expect(code(() => validateChecksumValue('CRC32', 'AAAA'))).toBe('InvalidRequest')
    expect(code(() => validateChecksumValue('CRC32', 'not base64!'))).toBe('InvalidRequest')
    expect(code(() => validateChecksumValue('CRC32', 'AAAAAA=='))).toBeUndefined()
  })
})

describe('names, headers and errors', () => {
  it('validates bucket names and keys', () => {
    for (const ok of ['abc', 'my-bucket.data', 'a1b2c3']) expect(code(() => validateBucketName(ok))).toBeUndefined()
    for (const bad of ['ab', 'A-bucket', 'a..b', '10.0.0.1', 'xn--bucket', 'b-', 'x'.repeat(64)]) {
      expect(code(() => validateBucketName(bad))).toBe('InvalidBucketName')
    }
    expect(code(() => validateKey('é'.repeat(512)))).toBeUndefined()
    expect(code(() => validateKey('é'.repeat(512) + 'x'))).toBe('KeyTooLongError')
    expect(code(() => validateKey(''))).toBe('InvalidArgument')
  })

  it('stores standard headers and metadata, not aws-chunked, within 2 KB', () => {
    const h = storedHeadersFrom({ 'content-type': 'text/plain', 'content-encoding': 'aws-chunked,gzip', 'x-amz-meta-a': 'b', host: 'x' })
    expect(h).toEqual({ headers: { 'content-type': 'text/plain', 'content-encoding': 'gzip' }, meta: { a: 'b' } })
    expect(storedHeadersFrom({ 'content-encoding': 'aws-chunked' }).headers).toEqual({})
    expect(code(() => storedHeadersFrom({ 'x-amz-meta-big': 'x'.repeat(2100) }))).toBe('MetadataTooLarge')
  })

  it('parses copy sources', () => {
    expect(parseCopySource('/b/a%20key/%C3%A9?versionId=null')).toEqual({ bucket: 'b', key: 'a key/é', versionId: 'null' })
    expect(parseCopySource('b/k')).toEqual({ bucket: 'b', key: 'k', versionId: undefined })
    expect(code(() => parseCopySource('just-a-bucket'))).toBe('InvalidArgument')
  })

  it('maps every error to a status and code, hiding internal detail', () => {
    expect(toS3Error(new S3sseError('NoSuchKey', 'gone'))).toMatchObject({ status: 404, code: 'NoSuchKey', message: 'gone' })
    expect(toS3Error(new S3sseError('S3SSE_AUTH_FAILED', 'package 7 tag mismatch'))).toMatchObject({ status: 500, code: 'InternalError', internal: true })
    expect(toS3Error(new S3sseError('S3SSE_BAD_RANGE', 'x'))).toMatchObject({ status: 416, code: 'InvalidRange' })
    expect(toS3Error(new Error('secret detail'))).toMatchObject({ status: 500, code: 'InternalError' })
    expect(toS3Error(new Error('secret detail')).message).not.toContain('secret')
  })

  it('reports KMS failures as Amazon S3 does: the KMS exception for the key, 503 for an outage', () => {
    const kmsError = (code: string) => toS3Error(new S3sseError(code, 'GenerateDataKey: DisabledException: arn:aws:kms:…:key/… is disabled'))
    expect(kmsError('S3SSE_KMS_KEY_DISABLED')).toMatchObject({ status: 400, code: 'KMS.DisabledException', internal: false })
    // A write naming a key that does not exist is the client's mistake; a stored object's key
    // gone from the KMS is a server-side loss (issue 10): same S3 code, 400 and 500.
    expect(kmsError('S3SSE_KMS_NAMED_KEY_NOT_FOUND')).toMatchObject({ status: 400, code: 'KMS.NotFoundException' })
    expect(kmsError('S3SSE_KMS_KEY_NOT_FOUND')).toMatchObject({ status: 500, code: 'KMS.NotFoundException', internal: true })
    expect(kmsError('S3SSE_KMS_INVALID_STATE')).toMatchObject({ status: 400, code: 'KMS.KMSInvalidStateException' })
    expect(kmsError('S3SSE_KMS_ACCESS_DENIED')).toMatchObject({ status: 403, code: 'AccessDenied' })
    expect(kmsError('S3SSE_KMS_UNAVAILABLE')).toMatchObject({ status: 503, code: 'ServiceUnavailable', internal: true })
    // The KMS's own words (ARNs, the adapter's detail) stay in the log, not in the answer.
    for (const code of ['S3SSE_KMS_KEY_DISABLED', 'S3SSE_KMS_KEY_NOT_FOUND', 'S3SSE_KMS_NAMED_KEY_NOT_FOUND', 'S3SSE_KMS_UNAVAILABLE']) expect(kmsError(code).message).not.toContain('arn:')
  })
})

describe('XML', () => {
  it('builds S3 documents with escaping and the namespace', () => {
    const xml = s3Document('ListBucketResult', { Name: 'b', Prefix: '<&>', IsTruncated: false, Contents: [{ Key: 'a' }, { Key: 'b' }] })
    expect(xml).toBe(
      '<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix>&lt;&amp;&gt;</Prefix><IsTruncated>false</IsTruncated><Contents><Key>a</Key></Contents><Contents><Key>b</Key></Contents></ListBucketResult>',
    )
    expect(encodeKeyForXml('a b/c+d&é', 'url')).toBe('a+b/c%2Bd%26%C3%A9')
    expect(encodeKeyForXml('a b', undefined)).toBe('a b')
  })

  it('parses request documents and refuses malformed ones', () => {
    expect(parseCreateBucket('')).toEqual({ locationConstraint: '' })
    expect(parseCreateBucket('<CreateBucketConfiguration xmlns="x"><LocationConstraint>eu-west-1</LocationConstraint></CreateBucketConfiguration>')).toEqual({
      locationConstraint: 'eu-west-1',
    })
    expect(
      parseCompleteMultipart(
        '<CompleteMultipartUpload><Part><PartNumber>2</PartNumber><ETag>"e2"</ETag><ChecksumCRC32>AAAAAA==</ChecksumCRC32></Part><Part><PartNumber>1</PartNumber><ETag>e1</ETag></Part></CompleteMultipartUpload>',
      ),
    ).toEqual([
      { partNumber: 2, etag: '"e2"', checksums: { CRC32: 'AAAAAA==' } },
      { partNumber: 1, etag: 'e1', checksums: {} },
    ])
    expect(parseDeleteObjects('<Delete><Quiet>true</Quiet><Object><Key> spaced key </Key></Object></Delete>')).toEqual({ quiet: true, keys: [' spaced key '] })
    for (const bad of ['<Delete><Object><Key>a</Key></Delete>', '<CompleteMultipartUpload></CompleteMultipartUpload>', 'not xml', '<Delete></Delete>']) {
      expect(code(() => (bad.includes('Complete') ? parseCompleteMultipart(bad) : parseDeleteObjects(bad)))).toBe('MalformedXML')
    }
  })
})

describe('POST policy', () => {
  const policy = (conditions: unknown[], expiration = '2099-01-01T00:00:00Z') => Buffer.from(JSON.stringify({ expiration, conditions })).toString('base64')
  const fields = (extra: Record<string, string> = {}) =>
    new Map(Object.entries({ bucket: 'b', key: 'user/a.txt', 'content-type': 'text/plain', 'x-amz-algorithm': 'AWS4-HMAC-SHA256', ...extra }))
  const base = [{ bucket: 'b' }, ['starts-with', '$key', 'user/'], ['starts-with', '$Content-Type', 'text/'], { 'x-amz-algorithm': 'AWS4-HMAC-SHA256' }]

  it('accepts fields that meet every condition and returns the size range', () => {
    expect(evaluatePostPolicy(policy([...base, ['content-length-range', 1, 10]]), fields(), Date.now())).toEqual({ minSize: 1, maxSize: 10 })
  })

  it('refuses failed conditions, extra fields, expired and malformed policies', () => {
    expect(code(() => evaluatePostPolicy(policy(base), fields({ key: 'other/a.txt' }), Date.now()))).toBe('AccessDenied')
    expect(code(() => evaluatePostPolicy(policy(base), fields({ bucket: 'c' }), Date.now()))).toBe('AccessDenied')
    expect(code(() => evaluatePostPolicy(policy(base), fields({ 'x-amz-meta-extra': '1' }), Date.now()))).toBe('AccessDenied')
    expect(code(() => evaluatePostPolicy(policy(base), fields({ 'x-ignore-this': '1' }), Date.now()))).toBeUndefined()
    expect(code(() => evaluatePostPolicy(policy(base, '2000-01-01T00:00:00Z'), fields(), Date.now()))).toBe('AccessDenied')
    expect(code(() => evaluatePostPolicy('bm90IGpzb24=', fields(), Date.now()))).toBe('InvalidPolicyDocument')
    expect(code(() => evaluatePostPolicy(policy([['content-length-range', 5, 1]]), new Map(), Date.now()))).toBe('InvalidPolicyDocument')
  })

  it('substitutes ${filename} in the key', () => {
    expect(postObjectKey('uploads/${filename}', 'cat.png')).toBe('uploads/cat.png')
  })
})

describe('SigV4 pieces', () => {
  it('canonicalises paths: escapes kept, reserved bytes encoded once', () => {
    expect(canonicalUri('/bucket/a%20b/%c3%a9')).toBe('/bucket/a%20b/%C3%A9')
    expect(canonicalUri('/bucket/a b/é!')).toBe('/bucket/a%20b/%C3%A9%21')
    expect(canonicalUri('/b/../x/./y')).toBe('/b/../x/./y')
    expect(canonicalUri('')).toBe('/')
  })
})

async function collect(it: AsyncIterable<Buffer>): Promise<Buffer> {
  const out: Buffer[] = []
  for await (const c of it) out.push(c)
  return Buffer.concat(out)
}

async function* pieces(buf: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size)
}

describe('aws-chunked decoder', () => {
  const data = randomBytes(200_000)
  const plain = Buffer.concat([
    Buffer.from(`${(65536).toString(16)}\r\n`),
    data.subarray(0, 65536),
    Buffer.from(`\r\n${(200_000 - 65536).toString(16)}\r\n`),
    data.subarray(65536),
    Buffer.from('\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n'),
  ])

  it('decodes whatever the network split, and hands over the trailers', async () => {
    for (const split of [13, 4096, 1 << 20]) {
      let trailers: Map<string, string> | undefined
      const out = await collect(decodeAwsChunked(pieces(plain, split), { onTrailers: (t) => (trailers = t) }))
      expect(out.equals(data)).toBe(true)
      expect(trailers?.get('x-amz-checksum-crc32')).toBe('AAAAAA==')
    }
  })

  it('refuses truncated and malformed bodies', async () => {
    const fail = async (body: Buffer) => {
      try {
        await collect(decodeAwsChunked(pieces(body, 1000)))
        return undefined
      } catch (err) {
        return (err as S3sseError).code
      }
    }
    expect(await fail(plain.subarray(0, 100_000))).toBe('IncompleteBody')
    expect(await fail(Buffer.from('zz\r\nabc'))).toBe('InvalidRequest')
    expect(await fail(Buffer.from('3\r\nabcX0\r\n\r\n'))).toBe('InvalidRequest')
  })

  it('verifies chained chunk signatures', async () => {
    const key = createHmac('sha256', 'k').update('x').digest()
    const scope = '20240101/us-east-1/s3/aws4_request'
    const date = '20240101T000000Z'
    const empty = createHash('sha256').digest('hex')
    const sign = (prev: string, chunk: Buffer) =>
      createHmac('sha256', key)
        .update(`AWS4-HMAC-SHA256-PAYLOAD\n${date}\n${scope}\n${prev}\n${empty}\n${createHash('sha256').update(chunk).digest('hex')}`)
        .digest('hex')
    const seed = 'a'.repeat(64)
    const c1 = data.subarray(0, 1000)
    const s1 = sign(seed, c1)
    const s2 = sign(s1, Buffer.alloc(0))
    const body = Buffer.concat([Buffer.from(`3e8;chunk-signature=${s1}\r\n`), c1, Buffer.from(`\r\n0;chunk-signature=${s2}\r\n\r\n`)])
    expect((await collect(decodeAwsChunked(pieces(body, 333), { signer: new ChunkSigner(key, date, scope, seed) }))).equals(c1)).toBe(true)
    const swapped = Buffer.concat([Buffer.from(`3e8;chunk-signature=${s2}\r\n`), c1, Buffer.from(`\r\n0;chunk-signature=${s1}\r\n\r\n`)])
    await expect(collect(decodeAwsChunked(pieces(swapped, 333), { signer: new ChunkSigner(key, date, scope, seed) }))).rejects.toMatchObject({
      code: 'SignatureDoesNotMatch',
    })
  })
})

describe('upload ids', () => {
  it('never begin with "-" (a command line would read one as an option) and are 192 random bits', () => {
    const ids = Array.from({ length: 20_000 }, () => newUploadId())
    expect(ids.filter((id) => id.startsWith('-'))).toEqual([])
    for (const id of ids.slice(0, 100)) expect(id).toMatch(/^[A-Za-z0-9_][A-Za-z0-9_-]{31}$/)
    expect(new Set(ids).size).toBe(ids.length)
    // Every other first character still occurs: the redraw does not narrow the alphabet.
    expect(new Set(ids.map((id) => id[0])).size).toBe(63)
  })
})
