/**
 * PostObject's checksum fields (issue 12 item 9): x-amz-checksum-{crc32,crc32c,sha1,sha256,…}
 * is verified over the plaintext (BadDigest, nothing stored, when it does not match) and
 * stored, as the header is on PutObject; x-amz-checksum-algorithm alone asks for one.
 * Forms from @aws-sdk/s3-presigned-post, posted as a browser does.
 */
import { createHash } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CreateBucketCommand, HeadObjectCommand, PutBucketEncryptionCommand, type S3Client } from '@aws-sdk/client-s3'
import { createPresignedPost } from '@aws-sdk/s3-presigned-post'
import { errorCode, postForm, rawRequest, removeDir, startServer, stopAll, xmlCode, type TestServer } from './helpers.js'

let server: TestServer
let s3: S3Client
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('base64')

beforeAll(async () => {
  server = await startServer()
  s3 = server.client()
  await s3.send(new CreateBucketCommand({ Bucket: 'form-sums' }))
  await s3.send(new CreateBucketCommand({ Bucket: 'form-sums-enc' }))
  await s3.send(new PutBucketEncryptionCommand({ Bucket: 'form-sums-enc', ServerSideEncryptionConfiguration: { Rules: [{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms' } }] } }))
})

afterAll(async () => {
  s3?.destroy()
  await server?.stop()
  await stopAll()
  if (server) removeDir(server.dataDir)
})

async function post(bucket: string, key: string, file: Buffer, fields: Record<string, string>) {
  const form = await createPresignedPost(s3, { Bucket: bucket, Key: key, Fields: fields, Expires: 300 })
  const { body, contentType } = postForm(form.fields, file)
  return rawRequest(server, { method: 'POST', path: `/${bucket}`, headers: { 'content-type': contentType }, body })
}

describe.each(['form-sums', 'form-sums-enc'])('PostObject into %s', (bucket) => {
  it('verifies and stores x-amz-checksum-sha256', async () => {
    const file = Buffer.from('form upload with a checksum')
    const ok = await post(bucket, 'good.txt', file, { 'x-amz-checksum-sha256': sha256(file) })
    expect(ok.status).toBe(204)
    expect(ok.headers['x-amz-checksum-sha256']).toBe(sha256(file))
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'good.txt', ChecksumMode: 'ENABLED' }))
    expect(head.ChecksumSHA256).toBe(sha256(file))
  })

  it('refuses a checksum that does not match (BadDigest) and stores nothing', async () => {
    const bad = await post(bucket, 'bad.txt', Buffer.from('the data'), { 'x-amz-checksum-sha256': sha256(Buffer.from('other data')) })
    expect([bad.status, xmlCode(bad)]).toEqual([400, 'BadDigest'])
    expect(await errorCode(s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'bad.txt' })))).toBe('NotFound')
    const malformed = await post(bucket, 'bad2.txt', Buffer.from('the data'), { 'x-amz-checksum-crc32': 'not base64!' })
    expect([malformed.status, xmlCode(malformed)]).toEqual([400, 'InvalidRequest'])
  })

  it('computes the algorithm x-amz-checksum-algorithm names', async () => {
    const file = Buffer.from('crc32c please')
    const ok = await post(bucket, 'named.txt', file, { 'x-amz-checksum-algorithm': 'CRC32C' })
    expect(ok.status).toBe(204)
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'named.txt', ChecksumMode: 'ENABLED' }))
    expect(head.ChecksumCRC32C).toMatch(/^[A-Za-z0-9+/]{6}==$/)
  })
})
