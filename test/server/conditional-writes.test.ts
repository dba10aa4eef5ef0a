/**
 * Conditional writes (issue 12 item 9; S3 User Guide, "Conditional writes") with the AWS SDK
 * v3, which sends If-None-Match / If-Match on PutObject and CompleteMultipartUpload, against
 * the real server: what Amazon S3 answers in each case.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutBucketEncryptionCommand,
  PutObjectCommand,
  UploadPartCommand,
  type S3Client,
} from '@aws-sdk/client-s3'
import { errorCode, errorStatus, removeDir, startServer, stopAll, type TestServer } from './helpers.js'

let server: TestServer
let s3: S3Client

beforeAll(async () => {
  server = await startServer()
  s3 = server.client()
  await s3.send(new CreateBucketCommand({ Bucket: 'cond' }))
  await s3.send(new CreateBucketCommand({ Bucket: 'cond-enc' }))
  await s3.send(new PutBucketEncryptionCommand({ Bucket: 'cond-enc', ServerSideEncryptionConfiguration: { Rules: [{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms' } }] } }))
})

afterAll(async () => {
  s3?.destroy()
  await server?.stop()
  await stopAll()
  if (server) removeDir(server.dataDir)
})

const text = async (bucket: string, key: string) => (await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }))).Body!.transformToString()

describe.each(['cond', 'cond-enc'])('PutObject in %s', (bucket) => {
  it('If-None-Match: * writes a new key once; the second write is 412 and changes nothing', async () => {
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'once', Body: 'first', IfNoneMatch: '*' }))
    const again = s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'once', Body: 'second', IfNoneMatch: '*' }))
    expect(await errorStatus(again)).toBe(412)
    expect(await text(bucket, 'once')).toBe('first')
  })

  it('If-Match: the current ETag writes; a stale one is 412; no object is 404 NoSuchKey', async () => {
    const a = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'cas', Body: 'v1' }))
    const b = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'cas', Body: 'v2', IfMatch: a.ETag }))
    expect(await errorStatus(s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'cas', Body: 'v3', IfMatch: a.ETag })))).toBe(412)
    expect(await text(bucket, 'cas')).toBe('v2')
    // Unquoted and in a list, as RFC 9110 allows.
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'cas', Body: 'v4', IfMatch: `"nope", ${b.ETag!.replace(/"/g, '')}` }))
    expect(await text(bucket, 'cas')).toBe('v4')
    expect(await errorCode(s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'missing', Body: 'x', IfMatch: b.ETag })))).toBe('NoSuchKey')
  })

  it('an ETag in If-None-Match on a write is 501 NotImplemented, as on S3', async () => {
    expect(await errorStatus(s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'x', Body: 'x', IfNoneMatch: '"abc"' })))).toBe(501)
  })
})

describe('CompleteMultipartUpload', () => {
  async function upload(key: string) {
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: 'cond', Key: key }))
    const part = await s3.send(new UploadPartCommand({ Bucket: 'cond', Key: key, UploadId, PartNumber: 1, Body: `data of ${key}` }))
    return { UploadId: UploadId!, MultipartUpload: { Parts: [{ ETag: part.ETag, PartNumber: 1 }] } }
  }

  it('If-None-Match: * completes only while no object has the key; the upload stays for another try', async () => {
    const u = await upload('mp-once')
    await s3.send(new PutObjectCommand({ Bucket: 'cond', Key: 'mp-once', Body: 'a PUT got there first' }))
    expect(await errorStatus(s3.send(new CompleteMultipartUploadCommand({ Bucket: 'cond', Key: 'mp-once', ...u, IfNoneMatch: '*' })))).toBe(412)
    expect(await text('cond', 'mp-once')).toBe('a PUT got there first')
    await s3.send(new CompleteMultipartUploadCommand({ Bucket: 'cond', Key: 'mp-once', ...u }))
    expect(await text('cond', 'mp-once')).toBe('data of mp-once')
  })

  it('If-Match completes over the object it names', async () => {
    const put = await s3.send(new PutObjectCommand({ Bucket: 'cond', Key: 'mp-cas', Body: 'old' }))
    const u = await upload('mp-cas')
    expect(await errorStatus(s3.send(new CompleteMultipartUploadCommand({ Bucket: 'cond', Key: 'mp-cas', ...u, IfMatch: '"0123456789abcdef0123456789abcdef"' })))).toBe(412)
    await s3.send(new CompleteMultipartUploadCommand({ Bucket: 'cond', Key: 'mp-cas', ...u, IfMatch: put.ETag }))
    expect((await s3.send(new HeadObjectCommand({ Bucket: 'cond', Key: 'mp-cas' }))).ETag).toMatch(/-1"$/)
  })
})
