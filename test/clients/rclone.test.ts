/**
 * rclone 1.60 (Debian) against the real server over HTTPS, configured as its docs say for
 * an S3 server it has no entry for (`provider = Other`), path-style, the server's
 * certificate as CA. Objects stay small: multipart is forced with a small
 * --s3-upload-cutoff / --s3-chunk-size.
 */
import { createHash, randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { CreateBucketCommand, HeadObjectCommand, ListObjectsV2Command, PutBucketEncryptionCommand, type S3Client } from '@aws-sdk/client-s3'
import { removeDir, startServer, stopAll, type TestServer } from '../server/helpers.js'
import { cleanupClients, Clients, describeClient, ok } from './harness.js'

const MiB = 1024 * 1024
let server: TestServer
let s3: S3Client
let c: Clients

const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex')
const MULTIPART = ['--s3-upload-cutoff', '5M', '--s3-chunk-size', '5M']

async function bucket(name: string, encrypted = false): Promise<string> {
  await s3.send(new CreateBucketCommand({ Bucket: name }))
  if (encrypted) {
    await s3.send(new PutBucketEncryptionCommand({
      Bucket: name,
      ServerSideEncryptionConfiguration: { Rules: [{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms' } }] },
    }))
  }
  return name
}

describeClient('rclone', 'rclone against s3-sse', () => {
  beforeAll(async () => {
    server = await startServer({ args: ['--mode', 'aws'] })
    s3 = server.client()
    c = new Clients(server)
  })

  afterAll(async () => {
    s3?.destroy()
    await server?.stop()
    await stopAll()
    if (server) removeDir(server.dataDir)
    cleanupClients()
  })

  // Item 1: rclone's CompleteMultipartUpload carries <ETag>&#34;…&#34;</ETag> (Go's encoding/xml).
  it('uploads over its multipart cutoff and reads the object back (plain bucket)', async () => {
    await bucket('rclone-mp')
    const data = randomBytes(11 * MiB)
    c.file('up/big.bin', data)
    ok(await c.rclone(['copy', c.path('up/big.bin'), 's3sse:rclone-mp/', ...MULTIPART]), 'rclone copy (multipart)')
    const head = await s3.send(new HeadObjectCommand({ Bucket: 'rclone-mp', Key: 'big.bin' }))
    expect(head.ContentLength).toBe(data.length)
    // S3's multipart ETag: MD5 of the part MD5s, then the part count (3 parts of ≤ 5 MiB).
    expect(head.ETag).toMatch(/^"[0-9a-f]{32}-3"$/)
    ok(await c.rclone(['copyto', 's3sse:rclone-mp/big.bin', c.path('down/big.bin')]), 'rclone copyto (download)')
    expect(md5(readFileSync(c.path('down/big.bin')))).toBe(md5(data))
    // rclone check compares the MD5 it stored at upload (x-amz-meta-md5chksum) with the local file.
    ok(await c.rclone(['check', c.path('up'), 's3sse:rclone-mp/']), 'rclone check')
  })

  it('uploads over its multipart cutoff into a bucket with default encryption (SSE-KMS)', async () => {
    await bucket('rclone-mp-kms', true)
    const data = randomBytes(6 * MiB + 3)
    c.file('upkms/big.bin', data)
    ok(await c.rclone(['copy', c.path('upkms/big.bin'), 's3sse:rclone-mp-kms/', ...MULTIPART]), 'rclone copy (multipart, encrypted)')
    const head = await s3.send(new HeadObjectCommand({ Bucket: 'rclone-mp-kms', Key: 'big.bin' }))
    expect(head.ServerSideEncryption).toBe('aws:kms')
    expect(head.ETag).toMatch(/-2"$/)
    ok(await c.rclone(['copyto', 's3sse:rclone-mp-kms/big.bin', c.path('downkms/big.bin')]), 'rclone copyto (download, encrypted)')
    expect(md5(readFileSync(c.path('downkms/big.bin')))).toBe(md5(data))
  })

  it('stores, lists and deletes keys that XML has to escape', async () => {
    await bucket('rclone-names')
    const names = ["it's.txt", 'say "hi".txt', 'a&b<c>.txt']
    for (const n of names) c.file(`names/${n}`, n)
    ok(await c.rclone(['copy', c.path('names'), 's3sse:rclone-names/']), 'rclone copy')
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: 'rclone-names' }))
    expect((listed.Contents ?? []).map((o) => o.Key).sort()).toEqual([...names].sort())
    const ls = ok(await c.rclone(['lsf', 's3sse:rclone-names/']), 'rclone lsf')
    expect(ls.stdout.trim().split('\n').sort()).toEqual([...names].sort())
    ok(await c.rclone(['delete', 's3sse:rclone-names/']), 'rclone delete')
    const after = await s3.send(new ListObjectsV2Command({ Bucket: 'rclone-names' }))
    expect(after.KeyCount).toBe(0)
  })
})
