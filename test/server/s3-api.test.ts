/**
 * The S3 API end to end: the real server process over HTTPS, @aws-sdk/client-s3 with its
 * default checksum behaviour, and @aws-sdk/lib-storage for multipart.
 */
import { createHash } from 'node:crypto'
import { readdirSync } from 'node:fs'
import https from 'node:https'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetBucketLocationCommand,
  GetBucketVersioningCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListBucketsCommand,
  ListMultipartUploadsCommand,
  ListObjectsCommand,
  ListObjectsV2Command,
  ListObjectVersionsCommand,
  ListPartsCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  UploadPartCopyCommand,
} from '@aws-sdk/client-s3'
import { Upload } from '@aws-sdk/lib-storage'
import { NodeHttpHandler } from '@smithy/node-http-handler'
import { checksumOf } from '../../src/s3/checksums.js'
import { errorCode, errorStatus, onFleet, randomBuffer, rawRequest, removeDir, ROOT_KEY, ROOT_SECRET, startServer, stopAll, type TestServer } from './helpers.js'

const MiB = 1024 * 1024
let server: TestServer
let s3: S3Client

const md5hex = (b: Buffer) => createHash('md5').update(b).digest('hex')

async function body(out: { Body?: unknown }): Promise<Buffer> {
  const b = out.Body as { transformToByteArray(): Promise<Uint8Array> }
  return Buffer.from(await b.transformToByteArray())
}

async function newBucket(name: string): Promise<string> {
  await s3.send(new CreateBucketCommand({ Bucket: name }))
  return name
}

beforeAll(async () => {
  server = await startServer()
  s3 = server.client()
})

afterAll(async () => {
  s3?.destroy()
  const code = await server?.stop()
  await stopAll()
  removeDir(server.dataDir)
  expect(code).toBe(0) // a graceful SIGTERM exit
})

describe('service and buckets', () => {
  it('answers /-/health without authentication', async () => {
    const res = await rawRequest(server, { method: 'GET', path: '/-/health' })
    expect(res.status).toBe(200)
    expect(JSON.parse(res.body.toString())).toEqual({ status: 'ok' })
  })

  it('creates, heads, lists, locates and deletes buckets', async () => {
    await newBucket('life-cycle')
    const head = await s3.send(new HeadBucketCommand({ Bucket: 'life-cycle' }))
    expect(head.$metadata.httpStatusCode).toBe(200)
    expect(head.BucketRegion).toBe('us-east-1')
    const list = await s3.send(new ListBucketsCommand({}))
    expect(list.Buckets?.map((b) => b.Name)).toContain('life-cycle')
    expect(list.Buckets?.find((b) => b.Name === 'life-cycle')?.CreationDate).toBeInstanceOf(Date)
    const loc = await s3.send(new GetBucketLocationCommand({ Bucket: 'life-cycle' }))
    expect(loc.LocationConstraint ?? '').toBe('')
    const ver = await s3.send(new GetBucketVersioningCommand({ Bucket: 'life-cycle' }))
    expect(ver.Status).toBeUndefined()
    expect(await errorCode(s3.send(new CreateBucketCommand({ Bucket: 'life-cycle' })))).toBe('BucketAlreadyOwnedByYou')
    await s3.send(new PutObjectCommand({ Bucket: 'life-cycle', Key: 'k', Body: 'x' }))
    expect(await errorCode(s3.send(new DeleteBucketCommand({ Bucket: 'life-cycle' })))).toBe('BucketNotEmpty')
    await s3.send(new DeleteObjectCommand({ Bucket: 'life-cycle', Key: 'k' }))
    const del = await s3.send(new DeleteBucketCommand({ Bucket: 'life-cycle' }))
    expect(del.$metadata.httpStatusCode).toBe(204)
    expect(await errorStatus(s3.send(new HeadBucketCommand({ Bucket: 'life-cycle' })))).toBe(404)
    expect(await errorCode(s3.send(new ListObjectsV2Command({ Bucket: 'life-cycle' })))).toBe('NoSuchBucket')
  })

  it('accepts its own region as LocationConstraint and refuses others', async () => {
    expect(
      await errorCode(s3.send(new CreateBucketCommand({ Bucket: 'elsewhere', CreateBucketConfiguration: { LocationConstraint: 'eu-west-1' } }))),
    ).toBe('InvalidLocationConstraint')
    const other = server.client({ region: 'us-east-1' })
    expect(await errorCode(other.send(new HeadBucketCommand({ Bucket: 'elsewhere' })))).toBe('NotFound')
  })

  it('refuses invalid bucket names', async () => {
    for (const name of ['ab', 'Upper-Case', 'bad..dots', '192.168.1.1', '-leading']) {
      expect(await errorCode(s3.send(new CreateBucketCommand({ Bucket: name })))).toMatch(/InvalidBucketName/)
    }
  })

  it('answers errors as S3 XML with code, message and request id', async () => {
    const res = await rawRequest(server, { method: 'GET', path: '/no-such-bucket-here/x' })
    expect(res.status).toBe(403) // unsigned: refused before the bucket is looked at
    const text = res.body.toString()
    expect(text).toMatch(/^<\?xml version="1.0" encoding="UTF-8"\?><Error><Code>AccessDenied<\/Code><Message>[^<]+<\/Message>/)
    expect(text).toContain(`<RequestId>${res.headers['x-amz-request-id']}</RequestId>`)
    expect(await errorCode(s3.send(new GetObjectCommand({ Bucket: 'no-such-bucket-here', Key: 'x' })))).toBe('NoSuchBucket')
  })
})

describe('objects', () => {
  let bucket: string
  beforeAll(async () => {
    bucket = await newBucket('objects')
  })

  it('round-trips data, metadata and standard headers', async () => {
    const data = randomBuffer(300_000)
    const put = await s3.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: 'meta/obj.bin',
        Body: data,
        ContentType: 'application/x-test',
        CacheControl: 'max-age=60',
        ContentDisposition: 'attachment; filename="obj.bin"',
        ContentLanguage: 'en',
        ContentEncoding: 'identity',
        Expires: new Date('2030-01-01T00:00:00Z'),
        Metadata: { colour: 'blue', 'long-name': 'v'.repeat(100) },
      }),
    )
    expect(put.ETag).toBe(`"${md5hex(data)}"`)
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'meta/obj.bin' }))
    expect((await body(got)).equals(data)).toBe(true)
    expect(got.ContentType).toBe('application/x-test')
    expect(got.CacheControl).toBe('max-age=60')
    expect(got.ContentDisposition).toBe('attachment; filename="obj.bin"')
    expect(got.ContentLanguage).toBe('en')
    expect(got.ContentEncoding).toBe('identity')
    expect(got.Expires?.toISOString()).toBe('2030-01-01T00:00:00.000Z')
    expect(got.Metadata).toEqual({ colour: 'blue', 'long-name': 'v'.repeat(100) })
    expect(got.ContentLength).toBe(data.length)
    expect(got.ETag).toBe(put.ETag)
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'meta/obj.bin' }))
    expect(head.ContentLength).toBe(data.length)
    expect(head.Metadata?.colour).toBe('blue')
    expect(head.LastModified).toBeInstanceOf(Date)
    expect(head.AcceptRanges).toBe('bytes')
  })

  it('stores empty objects', async () => {
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'empty', Body: Buffer.alloc(0) }))
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'empty' }))
    expect((await body(got)).length).toBe(0)
    expect(got.ETag).toBe('"d41d8cd98f00b204e9800998ecf8427e"')
    expect(await errorCode(s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'empty', Range: 'bytes=0-0' })))).toBe('InvalidRange')
  })

  it('serves single ranges and refuses unsatisfiable ones with 416', async () => {
    const data = randomBuffer(1000)
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'ranged', Body: data }))
    const cases: Array<[string, number, number]> = [
      ['bytes=0-9', 0, 9],
      ['bytes=990-', 990, 999],
      ['bytes=-7', 993, 999],
      ['bytes=500-5000', 500, 999],
      ['bytes=-5000', 0, 999],
    ]
    for (const [range, start, end] of cases) {
      const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'ranged', Range: range }))
      expect(got.$metadata.httpStatusCode).toBe(206)
      expect(got.ContentRange).toBe(`bytes ${start}-${end}/1000`)
      expect((await body(got)).equals(data.subarray(start, end + 1))).toBe(true)
    }
    expect(await errorStatus(s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'ranged', Range: 'bytes=1000-' })))).toBe(416)
    expect(await errorCode(s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'ranged', Range: 'bytes=-0' })))).toBe('InvalidRange')
    // Not a single valid range: the whole object, as S3 does.
    const whole = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'ranged', Range: 'bytes=9-3' }))
    expect(whole.$metadata.httpStatusCode).toBe(200)
    expect((await body(whole)).length).toBe(1000)
  })

  it('honours If-Match, If-None-Match, If-Modified-Since and If-Unmodified-Since', async () => {
    const put = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'cond', Body: 'conditional' }))
    const etag = put.ETag!
    const past = new Date(Date.now() - 3600_000)
    const future = new Date(Date.now() + 3600_000)
    const get = (extra: Record<string, unknown>) => s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'cond', ...extra }))
    expect((await get({ IfMatch: etag })).$metadata.httpStatusCode).toBe(200)
    expect(await errorStatus(get({ IfMatch: '"0000"' }))).toBe(412)
    expect(await errorStatus(get({ IfNoneMatch: etag }))).toBe(304)
    expect((await get({ IfNoneMatch: '"0000"' })).$metadata.httpStatusCode).toBe(200)
    expect(await errorStatus(get({ IfModifiedSince: future }))).toBe(304)
    expect((await get({ IfModifiedSince: past })).$metadata.httpStatusCode).toBe(200)
    expect(await errorStatus(get({ IfUnmodifiedSince: past }))).toBe(412)
    expect((await get({ IfUnmodifiedSince: future })).$metadata.httpStatusCode).toBe(200)
    // S3's combination rules: If-Match true wins over If-Unmodified-Since false …
    expect((await get({ IfMatch: etag, IfUnmodifiedSince: past })).$metadata.httpStatusCode).toBe(200)
    // … and If-None-Match false wins over If-Modified-Since true.
    expect(await errorStatus(get({ IfNoneMatch: etag, IfModifiedSince: past }))).toBe(304)
    expect(await errorStatus(s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'cond', IfMatch: '"0000"' })))).toBe(412)
  })

  it('applies response-* overrides', async () => {
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'override', Body: 'x', ContentType: 'text/plain' }))
    const got = await s3.send(
      new GetObjectCommand({
        Bucket: bucket,
        Key: 'override',
        ResponseContentType: 'application/json',
        ResponseContentDisposition: 'inline',
        ResponseCacheControl: 'no-cache',
        ResponseContentLanguage: 'fr',
        ResponseContentEncoding: 'identity',
        ResponseExpires: new Date('2031-01-01T00:00:00Z'),
      }),
    )
    expect(got.ContentType).toBe('application/json')
    expect(got.ContentDisposition).toBe('inline')
    expect(got.CacheControl).toBe('no-cache')
    expect(got.ContentLanguage).toBe('fr')
    expect(got.ContentEncoding).toBe('identity')
    expect(got.Expires?.getUTCFullYear()).toBe(2031)
  })

  it('answers NoSuchKey / 404 for missing objects and deletes idempotently', async () => {
    expect(await errorCode(s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'missing' })))).toBe('NoSuchKey')
    expect(await errorStatus(s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'missing' })))).toBe(404)
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'gone', Body: 'x' }))
    expect((await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'gone' }))).$metadata.httpStatusCode).toBe(204)
    expect((await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'gone' }))).$metadata.httpStatusCode).toBe(204)
    expect(await errorCode(s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'gone' })))).toBe('NoSuchKey')
  })

  it('deletes many objects at once, quietly or not', async () => {
    for (const k of ['d/1', 'd/2', 'd/3']) await s3.send(new PutObjectCommand({ Bucket: bucket, Key: k, Body: k }))
    const out = await s3.send(
      new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: [{ Key: 'd/1' }, { Key: 'd/2' }, { Key: 'd/never' }] } }),
    )
    expect(out.Deleted?.map((d) => d.Key).sort()).toEqual(['d/1', 'd/2', 'd/never'])
    expect(out.Errors ?? []).toEqual([])
    const quiet = await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: [{ Key: 'd/3' }], Quiet: true } }))
    expect(quiet.Deleted ?? []).toEqual([])
    const left = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'd/' }))
    expect(left.KeyCount).toBe(0)
  })

  // On a fleet, test/fleet/fleet.test.ts checks the backend bucket for leftovers instead.
  it.skipIf(onFleet())('overwrites an object and leaves no stale file behind', async () => {
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'over', Body: 'first version' }))
    const before = countFiles(server.dataDir)
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'over', Body: 'second' }))
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'over' }))
    expect((await body(got)).toString()).toBe('second')
    expect(countFiles(server.dataDir)).toBe(before)
  })

  it('supports PutObject If-None-Match: * (create only)', async () => {
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'once', Body: 'a', IfNoneMatch: '*' }))
    expect(await errorStatus(s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'once', Body: 'b', IfNoneMatch: '*' })))).toBe(412)
  })
})

function countFiles(dataDir: string): number {
  let n = 0
  for (const d of readdirSync(join(dataDir, 'objects'))) n += readdirSync(join(dataDir, 'objects', d)).length
  return n
}

describe('keys that could escape or break the data dir', () => {
  const keys = [
    '../../../../etc/passwd',
    '..',
    'a/../../b',
    '/leading/slash',
    'trailing/',
    'double//slash',
    'ünïcødé/日本語/🙂.txt',
    'spaces and +plus+ & ampersand?query=1#hash',
    'percent%2Fencoded%20already',
    'x'.repeat(1024),
    'é'.repeat(512), // 1024 bytes of UTF-8
  ]

  it('stores, lists and reads every one of them back, inside the data dir (on a fleet: in the database)', async () => {
    const bucket = await newBucket('odd-keys')
    for (const [i, key] of keys.entries()) {
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: `value ${i}` }))
    }
    for (const [i, key] of keys.entries()) {
      const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }))
      expect((await body(got)).toString()).toBe(`value ${i}`)
    }
    const listed: string[] = []
    let token: string | undefined
    do {
      const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token, MaxKeys: 4 }))
      listed.push(...(page.Contents ?? []).map((c) => c.Key!))
      token = page.NextContinuationToken
    } while (token)
    expect(listed.sort()).toEqual([...keys].sort())
    // URL encoding of listed keys round-trips too.
    const encoded = await s3.send(new ListObjectsV2Command({ Bucket: bucket, EncodingType: 'url' }))
    expect(encoded.Contents!.map((c) => decodeURIComponent(c.Key!.replace(/\+/g, ' '))).sort()).toEqual([...keys].sort())
    // Stored file names are random ids; nothing was written outside objects/ (a fleet writes no object files).
    if (!onFleet()) {
      for (const d of readdirSync(join(server.dataDir, 'objects'))) {
        for (const f of readdirSync(join(server.dataDir, 'objects', d))) expect(f).toMatch(/^[0-9a-f]{32}$/)
      }
      expect(readdirSync(server.dataDir).sort()).toEqual(
        expect.arrayContaining(['meta.sqlite', 'objects', 'tls-cert.pem', 'tls-key.pem', 'tmp']),
      )
    }
    for (const key of keys) await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }))
  })

  it('refuses a key longer than 1024 bytes', async () => {
    await newBucket('long-keys')
    expect(await errorCode(s3.send(new PutObjectCommand({ Bucket: 'long-keys', Key: 'x'.repeat(1025), Body: 'v' })))).toBe('KeyTooLongError')
  })
})

describe('listing', () => {
  const bucket = 'listing'
  const keys = ['a', 'a/1', 'a/2', 'a/b/1', 'b/1', 'b/2', 'c', 'c d', 'd/x/y', 'e']
  beforeAll(async () => {
    await newBucket(bucket)
    for (const k of keys) await s3.send(new PutObjectCommand({ Bucket: bucket, Key: k, Body: k }))
  })

  it('ListObjectsV2 with prefix and delimiter', async () => {
    const out = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Delimiter: '/' }))
    expect(out.Contents?.map((c) => c.Key)).toEqual(['a', 'c', 'c d', 'e'])
    expect(out.CommonPrefixes?.map((p) => p.Prefix)).toEqual(['a/', 'b/', 'd/'])
    expect(out.KeyCount).toBe(7)
    const sub = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'a/', Delimiter: '/' }))
    expect(sub.Contents?.map((c) => c.Key)).toEqual(['a/1', 'a/2'])
    expect(sub.CommonPrefixes?.map((p) => p.Prefix)).toEqual(['a/b/'])
    expect(sub.Contents?.[0].Size).toBe(3)
    expect(sub.Contents?.[0].ETag).toBe(`"${md5hex(Buffer.from('a/1'))}"`)
  })

  it('ListObjectsV2 pages with continuation tokens, counting prefixes as keys', async () => {
    const seen: string[] = []
    let token: string | undefined
    let pages = 0
    do {
      const out = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Delimiter: '/', MaxKeys: 2, ContinuationToken: token }))
      pages++
      seen.push(...(out.Contents ?? []).map((c) => c.Key!), ...(out.CommonPrefixes ?? []).map((p) => p.Prefix!))
      expect(out.KeyCount).toBeLessThanOrEqual(2)
      token = out.IsTruncated ? out.NextContinuationToken : undefined
    } while (token)
    expect(pages).toBe(4)
    expect(seen.sort()).toEqual(['a', 'a/', 'b/', 'c', 'c d', 'd/', 'e'])
    const after = await s3.send(new ListObjectsV2Command({ Bucket: bucket, StartAfter: 'c' }))
    expect(after.Contents?.map((c) => c.Key)).toEqual(['c d', 'd/x/y', 'e'])
  })

  it('ListObjects (v1) pages with markers', async () => {
    const first = await s3.send(new ListObjectsCommand({ Bucket: bucket, MaxKeys: 3 }))
    expect(first.Contents?.map((c) => c.Key)).toEqual(['a', 'a/1', 'a/2'])
    expect(first.IsTruncated).toBe(true)
    const next = await s3.send(new ListObjectsCommand({ Bucket: bucket, Marker: 'a/2', MaxKeys: 3 }))
    expect(next.Contents?.map((c) => c.Key)).toEqual(['a/b/1', 'b/1', 'b/2'])
    const delim = await s3.send(new ListObjectsCommand({ Bucket: bucket, Delimiter: '/', MaxKeys: 2 }))
    expect(delim.NextMarker).toBe('a/')
    const rest = await s3.send(new ListObjectsCommand({ Bucket: bucket, Delimiter: '/', Marker: delim.NextMarker }))
    expect(rest.CommonPrefixes?.map((p) => p.Prefix)).toEqual(['b/', 'd/'])
    expect(rest.Contents?.map((c) => c.Key)).toEqual(['c', 'c d', 'e'])
  })

  it('ListObjectVersions lists each object as its one null version', async () => {
    const out = await s3.send(new ListObjectVersionsCommand({ Bucket: bucket, Prefix: 'b/' }))
    expect(out.Versions?.map((v) => [v.Key, v.VersionId, v.IsLatest])).toEqual([
      ['b/1', 'null', true],
      ['b/2', 'null', true],
    ])
    expect(out.DeleteMarkers ?? []).toEqual([])
    const paged = await s3.send(new ListObjectVersionsCommand({ Bucket: bucket, MaxKeys: 4 }))
    expect(paged.IsTruncated).toBe(true)
    const rest = await s3.send(
      new ListObjectVersionsCommand({ Bucket: bucket, KeyMarker: paged.NextKeyMarker, VersionIdMarker: paged.NextVersionIdMarker }),
    )
    expect([...paged.Versions!, ...rest.Versions!].map((v) => v.Key)).toEqual(keys)
  })
})

describe('copy', () => {
  const bucket = 'copies'
  beforeAll(async () => {
    await newBucket(bucket)
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'src ü', Body: 'source data', ContentType: 'text/plain', Metadata: { a: '1' } }))
  })

  it('copies data and metadata (COPY) or replaces metadata (REPLACE)', async () => {
    const copied = await s3.send(new CopyObjectCommand({ Bucket: bucket, Key: 'dst1', CopySource: `${bucket}/${encodeURIComponent('src ü')}` }))
    expect(copied.CopyObjectResult?.ETag).toBe(`"${md5hex(Buffer.from('source data'))}"`)
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'dst1' }))
    expect((await body(got)).toString()).toBe('source data')
    expect(got.Metadata).toEqual({ a: '1' })
    expect(got.ContentType).toBe('text/plain')
    await s3.send(
      new CopyObjectCommand({
        Bucket: bucket,
        Key: 'dst2',
        CopySource: `${bucket}/${encodeURIComponent('src ü')}`,
        MetadataDirective: 'REPLACE',
        Metadata: { b: '2' },
        ContentType: 'application/x-new',
      }),
    )
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'dst2' }))
    expect(head.Metadata).toEqual({ b: '2' })
    expect(head.ContentType).toBe('application/x-new')
  })

  it('checks x-amz-copy-source-if-* and refuses a no-op self copy', async () => {
    const src = `${bucket}/${encodeURIComponent('src ü')}`
    expect(await errorStatus(s3.send(new CopyObjectCommand({ Bucket: bucket, Key: 'dst3', CopySource: src, CopySourceIfMatch: '"nope"' })))).toBe(412)
    expect(
      await errorStatus(s3.send(new CopyObjectCommand({ Bucket: bucket, Key: 'dst3', CopySource: src, CopySourceIfModifiedSince: new Date(Date.now() + 3600_000) }))),
    ).toBe(412)
    const ok = await s3.send(new CopyObjectCommand({ Bucket: bucket, Key: 'dst3', CopySource: src, CopySourceIfNoneMatch: '"nope"' }))
    expect(ok.$metadata.httpStatusCode).toBe(200)
    expect(await errorCode(s3.send(new CopyObjectCommand({ Bucket: bucket, Key: 'src ü', CopySource: src })))).toBe('InvalidRequest')
    expect(await errorCode(s3.send(new CopyObjectCommand({ Bucket: bucket, Key: 'x', CopySource: `${bucket}/missing` })))).toBe('NoSuchKey')
  })
})

describe('multipart', () => {
  const bucket = 'multipart'
  beforeAll(async () => {
    await newBucket(bucket)
  })

  it('uploads with lib-storage, parts in parallel, and reads the object back', async () => {
    const data = randomBuffer(17 * MiB + 12345)
    const upload = new Upload({ client: s3, params: { Bucket: bucket, Key: 'big/lib-storage.bin', Body: data }, partSize: 5 * MiB, queueSize: 4 })
    const out = await upload.done()
    expect(out.ETag).toMatch(/-4"$/)
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'big/lib-storage.bin' }))
    expect(got.ContentLength).toBe(data.length)
    expect(md5hex(await body(got))).toBe(md5hex(data))
    // A range across a part boundary.
    const r = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'big/lib-storage.bin', Range: `bytes=${5 * MiB - 10}-${5 * MiB + 9}` }))
    expect((await body(r)).equals(data.subarray(5 * MiB - 10, 5 * MiB + 10))).toBe(true)
    const part2 = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'big/lib-storage.bin', PartNumber: 2 }))
    expect(part2.PartsCount).toBe(4)
    expect((await body(part2)).equals(data.subarray(5 * MiB, 10 * MiB))).toBe(true)
  })

  it('checks part order, ETags and sizes at Complete; lists and aborts uploads', async () => {
    const key = 'manual'
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key, ContentType: 'application/x-mp', Metadata: { m: 'v' } }))
    const p1 = randomBuffer(5 * MiB)
    const p2 = randomBuffer(1000)
    const small = randomBuffer(10)
    const e1 = (await s3.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: 1, Body: p1 }))).ETag!
    const e2 = (await s3.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: 2, Body: p2 }))).ETag!
    const e3 = (await s3.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: 3, Body: small }))).ETag!
    expect(e1).toBe(`"${md5hex(p1)}"`)

    const parts = await s3.send(new ListPartsCommand({ Bucket: bucket, Key: key, UploadId }))
    expect(parts.Parts?.map((p) => [p.PartNumber, p.Size, p.ETag])).toEqual([
      [1, p1.length, e1],
      [2, p2.length, e2],
      [3, small.length, e3],
    ])
    const paged = await s3.send(new ListPartsCommand({ Bucket: bucket, Key: key, UploadId, MaxParts: 1, PartNumberMarker: '1' }))
    expect(paged.Parts?.map((p) => p.PartNumber)).toEqual([2])
    expect(paged.IsTruncated).toBe(true)
    const uploads = await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket }))
    expect(uploads.Uploads?.map((u) => [u.Key, u.UploadId])).toContainEqual([key, UploadId])

    const complete = (list: Array<{ PartNumber: number; ETag: string }>) =>
      s3.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId, MultipartUpload: { Parts: list } }))
    expect(await errorCode(complete([{ PartNumber: 2, ETag: e2 }, { PartNumber: 1, ETag: e1 }]))).toBe('InvalidPartOrder')
    expect(await errorCode(complete([{ PartNumber: 1, ETag: e1 }, { PartNumber: 2, ETag: '"deadbeef"' }]))).toBe('InvalidPart')
    expect(await errorCode(complete([{ PartNumber: 1, ETag: e1 }, { PartNumber: 4, ETag: e2 }]))).toBe('InvalidPart')
    expect(await errorCode(complete([{ PartNumber: 2, ETag: e2 }, { PartNumber: 3, ETag: e3 }]))).toBe('EntityTooSmall')

    // Parts 1 and 3 only: part 2 is dropped, its file removed.
    const done = await complete([{ PartNumber: 1, ETag: e1 }, { PartNumber: 3, ETag: e3 }])
    const expectedEtag = createHash('md5').update(Buffer.concat([Buffer.from(md5hex(p1), 'hex'), Buffer.from(md5hex(small), 'hex')])).digest('hex') + '-2'
    expect(done.ETag).toBe(`"${expectedEtag}"`)
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }))
    expect((await body(got)).equals(Buffer.concat([p1, small]))).toBe(true)
    expect(got.ContentType).toBe('application/x-mp')
    expect(got.Metadata).toEqual({ m: 'v' })
    expect(await errorCode(s3.send(new ListPartsCommand({ Bucket: bucket, Key: key, UploadId })))).toBe('NoSuchUpload')

    const other = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'aborted' }))
    await s3.send(new UploadPartCommand({ Bucket: bucket, Key: 'aborted', UploadId: other.UploadId, PartNumber: 1, Body: 'x' }))
    const abort = await s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: 'aborted', UploadId: other.UploadId }))
    expect(abort.$metadata.httpStatusCode).toBe(204)
    expect(await errorCode(s3.send(new UploadPartCommand({ Bucket: bucket, Key: 'aborted', UploadId: other.UploadId, PartNumber: 2, Body: 'y' })))).toBe(
      'NoSuchUpload',
    )
    expect(await errorCode(s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: 'aborted', UploadId: 'nope' })))).toBe('NoSuchUpload')
  })

  it('lists multipart uploads with prefixes, delimiters and markers', async () => {
    const ids: Array<[string, string]> = []
    for (const key of ['up/a', 'up/a', 'up/b/c', 'up/d']) {
      const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }))
      ids.push([key, UploadId!])
    }
    const seen: Array<[string, string]> = []
    let keyMarker: string | undefined
    let uploadIdMarker: string | undefined
    for (let page = 0; page < 10; page++) {
      const out = await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: 'up/', MaxUploads: 1, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }))
      seen.push(...(out.Uploads ?? []).map((u) => [u.Key!, u.UploadId!] as [string, string]))
      if (!out.IsTruncated) break
      keyMarker = out.NextKeyMarker
      uploadIdMarker = out.NextUploadIdMarker
    }
    const sortPairs = (a: Array<[string, string]>) => [...a].sort((x, y) => (x[0] + x[1] < y[0] + y[1] ? -1 : 1))
    expect(sortPairs(seen)).toEqual(sortPairs(ids))
    const rolled = await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: 'up/', Delimiter: '/' }))
    expect(rolled.Uploads?.map((u) => u.Key)).toEqual(['up/a', 'up/a', 'up/d'])
    expect(rolled.CommonPrefixes?.map((p) => p.Prefix)).toEqual(['up/b/'])
    for (const [key, id] of ids) await s3.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: id }))
  })

  it('copies ranges of an object into parts (UploadPartCopy)', async () => {
    const src = randomBuffer(6 * MiB)
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'copy-src', Body: src }))
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: 'copy-dst' }))
    const c1 = await s3.send(
      new UploadPartCopyCommand({ Bucket: bucket, Key: 'copy-dst', UploadId, PartNumber: 1, CopySource: `${bucket}/copy-src`, CopySourceRange: `bytes=0-${5 * MiB - 1}` }),
    )
    const c2 = await s3.send(
      new UploadPartCopyCommand({ Bucket: bucket, Key: 'copy-dst', UploadId, PartNumber: 2, CopySource: `${bucket}/copy-src`, CopySourceRange: 'bytes=100-199' }),
    )
    expect(c1.CopyPartResult?.ETag).toBe(`"${md5hex(src.subarray(0, 5 * MiB))}"`)
    expect(
      await errorCode(
        s3.send(new UploadPartCopyCommand({ Bucket: bucket, Key: 'copy-dst', UploadId, PartNumber: 3, CopySource: `${bucket}/copy-src`, CopySourceRange: `bytes=0-${7 * MiB}` })),
      ),
    ).toBe('InvalidRange')
    await s3.send(
      new CompleteMultipartUploadCommand({
        Bucket: bucket,
        Key: 'copy-dst',
        UploadId,
        MultipartUpload: { Parts: [{ PartNumber: 1, ETag: c1.CopyPartResult!.ETag }, { PartNumber: 2, ETag: c2.CopyPartResult!.ETag }] },
      }),
    )
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'copy-dst' }))
    expect((await body(got)).equals(Buffer.concat([src.subarray(0, 5 * MiB), src.subarray(100, 200)]))).toBe(true)
  })

  it('keeps composite and full-object checksums of multipart objects', async () => {
    const p1 = randomBuffer(5 * MiB)
    const p2 = randomBuffer(777)
    for (const [algorithm, type] of [
      ['SHA256', 'COMPOSITE'],
      ['CRC32C', 'FULL_OBJECT'],
      ['CRC64NVME', 'FULL_OBJECT'],
    ] as const) {
      const key = `checksummed-${algorithm}`
      const { UploadId, ChecksumAlgorithm } = await s3.send(
        new CreateMultipartUploadCommand({ Bucket: bucket, Key: key, ChecksumAlgorithm: algorithm, ChecksumType: type }),
      )
      expect(ChecksumAlgorithm).toBe(algorithm)
      const parts = []
      for (const [i, p] of [p1, p2].entries()) {
        const out = await s3.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: i + 1, Body: p, ChecksumAlgorithm: algorithm }))
        const field = `Checksum${algorithm}` as const
        expect(out[field]).toBe(await checksumOf(algorithm, p))
        parts.push({ PartNumber: i + 1, ETag: out.ETag, [field]: out[field] })
      }
      const done = await s3.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId, MultipartUpload: { Parts: parts } }))
      const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key, ChecksumMode: 'ENABLED' }))
      const value = head[`Checksum${algorithm}`]
      if (type === 'FULL_OBJECT') {
        expect(value).toBe(await checksumOf(algorithm, Buffer.concat([p1, p2])))
      } else {
        const inner = createHash('sha256')
        for (const p of [p1, p2]) inner.update(createHash('sha256').update(p).digest())
        expect(value).toBe(`${inner.digest('base64')}-2`)
      }
      expect(head.ChecksumType).toBe(type)
      expect(done[`Checksum${algorithm}`]).toBe(value)
      // The SDK validates full-object checksums of GETs itself.
      const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, ChecksumMode: 'ENABLED' }))
      expect((await body(got)).length).toBe(p1.length + p2.length)
    }
  })
})

describe('checksums and digests on PutObject', () => {
  const bucket = 'checksums'
  beforeAll(async () => {
    await newBucket(bucket)
  })

  it('verifies and returns CRC32, CRC32C, CRC64NVME, SHA1 and SHA256 over the plaintext', async () => {
    const data = randomBuffer(200_001)
    for (const algorithm of ['CRC32', 'CRC32C', 'CRC64NVME', 'SHA1', 'SHA256'] as const) {
      const key = `alg-${algorithm}`
      const put = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: data, ChecksumAlgorithm: algorithm }))
      const expected = await checksumOf(algorithm, data)
      expect(put[`Checksum${algorithm}`]).toBe(expected)
      const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key, ChecksumMode: 'ENABLED' }))
      expect(head[`Checksum${algorithm}`]).toBe(expected)
      const plain = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }))
      expect(plain[`Checksum${algorithm}`]).toBeUndefined()
      const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, ChecksumMode: 'ENABLED' }))
      expect(got[`Checksum${algorithm}`]).toBe(expected)
      expect((await body(got)).equals(data)).toBe(true)
    }
  })

  it('refuses a wrong checksum or Content-MD5 with BadDigest and stores nothing', async () => {
    const data = Buffer.from('checksum me')
    expect(await errorCode(s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'bad-crc', Body: data, ChecksumCRC32: 'AAAAAA==' })))).toBe('BadDigest')
    expect(
      await errorCode(s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'bad-sha', Body: data, ChecksumSHA256: createHash('sha256').update('other').digest('base64') }))),
    ).toBe('BadDigest')
    expect(
      await errorCode(s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'bad-md5', Body: data, ContentMD5: createHash('md5').update('other').digest('base64') }))),
    ).toBe('BadDigest')
    for (const key of ['bad-crc', 'bad-sha', 'bad-md5']) {
      expect(await errorCode(s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key })))).toBe('NotFound')
    }
    const ok = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'good-md5', Body: data, ContentMD5: createHash('md5').update(data).digest('base64') }))
    expect(ok.ETag).toBe(`"${md5hex(data)}"`)
  })

  it('accepts streamed bodies (aws-chunked with a trailing checksum) from the SDK', async () => {
    const { Readable } = await import('node:stream')
    const data = randomBuffer(3 * MiB + 5)
    const put = await s3.send(
      new PutObjectCommand({ Bucket: bucket, Key: 'streamed', Body: Readable.from([data.subarray(0, MiB), data.subarray(MiB)]), ContentLength: data.length }),
    )
    expect(put.ChecksumCRC32).toBe(await checksumOf('CRC32', data))
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'streamed' }))
    expect((await body(got)).equals(data)).toBe(true)
  })
})

describe('addressing', () => {
  it('serves virtual-hosted-style requests (bucket.s3.localhost)', async () => {
    await newBucket('vhost')
    const agent = new https.Agent({
      ca: server.ca,
      // Every *.localhost name is this machine.
      lookup: (_host, opts, cb) => {
        if ((opts as { all?: boolean }).all) (cb as unknown as (e: null, a: Array<{ address: string; family: number }>) => void)(null, [{ address: '127.0.0.1', family: 4 }])
        else cb(null, '127.0.0.1', 4)
      },
    })
    const vs3 = new S3Client({
      region: 'us-east-1',
      endpoint: `https://s3.localhost:${server.httpsPort}`,
      forcePathStyle: false,
      credentials: { accessKeyId: ROOT_KEY, secretAccessKey: ROOT_SECRET },
      requestHandler: new NodeHttpHandler({ httpsAgent: agent }),
      maxAttempts: 1,
    })
    await vs3.send(new PutObjectCommand({ Bucket: 'vhost', Key: 'dir/file name.txt', Body: 'virtual' }))
    const got = await s3.send(new GetObjectCommand({ Bucket: 'vhost', Key: 'dir/file name.txt' }))
    expect((await body(got)).toString()).toBe('virtual')
    const list = await vs3.send(new ListObjectsV2Command({ Bucket: 'vhost' }))
    expect(list.Contents?.map((c) => c.Key)).toEqual(['dir/file name.txt'])
    vs3.destroy()
  })

  it('also answers over plain HTTP', async () => {
    const plain = server.client({ http: true })
    await newBucket('plain-http')
    await plain.send(new PutObjectCommand({ Bucket: 'plain-http', Key: 'k', Body: 'over http' }))
    const got = await plain.send(new GetObjectCommand({ Bucket: 'plain-http', Key: 'k' }))
    expect((await body(got)).toString()).toBe('over http')
    plain.destroy()
  })
})
