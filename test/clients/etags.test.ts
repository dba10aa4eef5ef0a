/**
 * ETags that the sync tools can live with (issue 12 items 3 and 4), with the real tools:
 * - default-config rclone and s3cmd against a bucket with default encryption (SSE-KMS):
 *   upload, download, server-side copy, sync, and a second sync that transfers nothing —
 *   while the ETag reveals no digest of the plaintext;
 * - SSE-S3 (aws mode): the ETag of a single-part object is the MD5 of its plaintext, as on
 *   Amazon S3 (`s3cmd put --server-side-encryption`, rclone `server_side_encryption = AES256`).
 */
import { createHash, randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { CreateBucketCommand, HeadObjectCommand, PutBucketEncryptionCommand, type S3Client } from '@aws-sdk/client-s3'
import { removeDir, startServer, stopAll, type TestServer } from '../server/helpers.js'
import { cleanupClients, Clients, describeClient, ok } from './harness.js'

let server: TestServer
let s3: S3Client
let c: Clients
const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex')

async function encryptedBucket(name: string): Promise<void> {
  await s3.send(new CreateBucketCommand({ Bucket: name }))
  await s3.send(new PutBucketEncryptionCommand({ Bucket: name, ServerSideEncryptionConfiguration: { Rules: [{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms' } }] } }))
}

describeClient(['rclone', 's3cmd'], 'default-config rclone and s3cmd on an SSE-KMS bucket', () => {
  beforeAll(async () => {
    server = await startServer({ args: ['--mode', 'aws'] })
    s3 = server.client()
    c = new Clients(server)
    await encryptedBucket('sync-rclone')
    await encryptedBucket('sync-rclone-copy')
    await encryptedBucket('sync-s3cmd')
    await s3.send(new CreateBucketCommand({ Bucket: 'sse-s3' }))
  })
  afterAll(async () => {
    s3?.destroy()
    await server?.stop()
    await stopAll()
    if (server) removeDir(server.dataDir)
    cleanupClients()
  })

  it('rclone: upload, download, server-side copy, sync twice (the second transfers nothing), check', async () => {
    const files: Record<string, Buffer> = { 'a.txt': randomBytes(1000), 'dir/b.bin': randomBytes(70_000), 'c.bin': randomBytes(10) }
    for (const [n, d] of Object.entries(files)) c.file(`rsrc/${n}`, d)
    ok(await c.rclone(['copyto', c.path('rsrc/a.txt'), 's3sse:sync-rclone/single/a.txt', '-v']), 'rclone upload')
    const head = await s3.send(new HeadObjectCommand({ Bucket: 'sync-rclone', Key: 'single/a.txt' }))
    expect(head.ServerSideEncryption).toBe('aws:kms')
    expect(head.ETag).not.toContain(md5(files['a.txt']))
    ok(await c.rclone(['copyto', 's3sse:sync-rclone/single/a.txt', c.path('rdown/a.txt'), '-v']), 'rclone download')
    expect(readFileSync(c.path('rdown/a.txt')).equals(files['a.txt'])).toBe(true)
    ok(await c.rclone(['copyto', 's3sse:sync-rclone/single/a.txt', 's3sse:sync-rclone-copy/a.txt', '-v']), 'rclone server-side copy')
    // An encrypted → encrypted copy keeps the sealed bytes, and so its ETag.
    const copied = await s3.send(new HeadObjectCommand({ Bucket: 'sync-rclone-copy', Key: 'a.txt' }))
    expect(copied.ETag).toBe(head.ETag)
    const first = ok(await c.rclone(['sync', c.path('rsrc'), 's3sse:sync-rclone/tree', '-v', '--stats-one-line']), 'rclone sync')
    expect(first.stderr).toMatch(/Copied \(new\)/)
    const second = ok(await c.rclone(['sync', c.path('rsrc'), 's3sse:sync-rclone/tree', '-v', '--stats-one-line']), 'rclone sync again')
    expect(second.stderr).not.toMatch(/Copied/)
    ok(await c.rclone(['check', c.path('rsrc'), 's3sse:sync-rclone/tree']), 'rclone check')
  })

  it('s3cmd: put, get, sync twice (the second uploads nothing)', async () => {
    const files: Record<string, Buffer> = { 'x.txt': randomBytes(500), 'sub/y.bin': randomBytes(90_000) }
    for (const [n, d] of Object.entries(files)) c.file(`ssrc/${n}`, d)
    ok(await c.s3cmd(['put', c.path('ssrc/x.txt'), 's3://sync-s3cmd/one/x.txt']), 's3cmd put')
    ok(await c.s3cmd(['get', '--force', 's3://sync-s3cmd/one/x.txt', c.path('sdown/x.txt')]), 's3cmd get')
    expect(readFileSync(c.path('sdown/x.txt')).equals(files['x.txt'])).toBe(true)
    const first = ok(await c.s3cmd(['sync', c.path('ssrc') + '/', 's3://sync-s3cmd/tree/']), 's3cmd sync')
    expect(first.stdout).toMatch(/upload:/)
    const second = ok(await c.s3cmd(['sync', c.path('ssrc') + '/', 's3://sync-s3cmd/tree/']), 's3cmd sync again')
    expect(second.stdout).not.toMatch(/upload:/)
  })

  it('SSE-S3: s3cmd put --server-side-encryption and rclone server_side_encryption = AES256 check the ETag against their MD5', async () => {
    const data = randomBytes(3000)
    c.file('aes/s3cmd.bin', data)
    const put = ok(await c.s3cmd(['put', '--server-side-encryption', c.path('aes/s3cmd.bin'), 's3://sse-s3/s3cmd.bin']), 's3cmd put --server-side-encryption')
    expect(put.stderr).not.toMatch(/MD5 Sums don't match/)
    const head = await s3.send(new HeadObjectCommand({ Bucket: 'sse-s3', Key: 's3cmd.bin' }))
    expect(head.ServerSideEncryption).toBe('AES256')
    expect(head.ETag).toBe(`"${md5(data)}"`)
    c.file('aes/rclone.bin', data)
    ok(await c.rclone(['copyto', c.path('aes/rclone.bin'), 's3sse:sse-s3/rclone.bin', '--s3-server-side-encryption', 'AES256', '-v']), 'rclone upload with server_side_encryption = AES256')
    const rhead = await s3.send(new HeadObjectCommand({ Bucket: 'sse-s3', Key: 'rclone.bin' }))
    expect([rhead.ServerSideEncryption, rhead.ETag]).toEqual(['AES256', `"${md5(data)}"`])
    ok(await c.rclone(['check', c.path('aes'), 's3sse:sse-s3/', '--one-way']), 'rclone check (SSE-S3)')
  })
})
