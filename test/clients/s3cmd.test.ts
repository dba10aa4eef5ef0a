/**
 * s3cmd 2.3 (Debian) against the real server over HTTPS: path-style (host_bucket without
 * %(bucket)s), the server's certificate as CA, SigV4 unless a test turns signature_v2 on.
 */
import { createHash, randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { CreateBucketCommand, CreateMultipartUploadCommand, HeadObjectCommand, ListMultipartUploadsCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3'
import { removeDir, startServer, stopAll, type TestServer } from '../server/helpers.js'
import { cleanupClients, Clients, describeClient, ok } from './harness.js'

const MiB = 1024 * 1024
let server: TestServer
let s3: S3Client
let c: Clients
const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex')

describeClient('s3cmd', 's3cmd against s3-sse', () => {
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

  it('makes a bucket, puts over its multipart chunk size, gets it back and lists it', async () => {
    ok(await c.s3cmd(['mb', 's3://s3cmd-basic']), 's3cmd mb')
    const data = randomBytes(6 * MiB)
    c.file('big.bin', data)
    ok(await c.s3cmd(['put', '--multipart-chunk-size-mb=5', c.path('big.bin'), 's3://s3cmd-basic/big.bin']), 's3cmd put (multipart)')
    const head = await s3.send(new HeadObjectCommand({ Bucket: 's3cmd-basic', Key: 'big.bin' }))
    expect(head.ETag).toMatch(/-2"$/)
    ok(await c.s3cmd(['get', 's3://s3cmd-basic/big.bin', c.path('big.down')]), 's3cmd get')
    expect(md5(readFileSync(c.path('big.down')))).toBe(md5(data))
    const ls = ok(await c.s3cmd(['ls', 's3://s3cmd-basic/']), 's3cmd ls')
    expect(ls.stdout).toContain('s3://s3cmd-basic/big.bin')
  })

  // Item 1: DeleteObjects bodies with escaped keys; a key decoded wrongly was reported
  // Deleted while the object stayed.
  it('deletes keys that XML has to escape with one DeleteObjects (del --recursive)', async () => {
    await s3.send(new CreateBucketCommand({ Bucket: 's3cmd-names' }))
    const names = ["it's.txt", 'a&b.txt', '<tag>.txt', 'say "hi".txt', 'plain.txt']
    for (const n of names) await s3.send(new PutObjectCommand({ Bucket: 's3cmd-names', Key: `d/${n}`, Body: n }))
    const r = ok(await c.s3cmd(['del', '--recursive', 's3://s3cmd-names/d/']), 's3cmd del --recursive')
    for (const n of names) expect(r.stdout).toContain(`delete: 's3://s3cmd-names/d/${n}'`)
    const left = await s3.send(new ListObjectsV2Command({ Bucket: 's3cmd-names' }))
    expect((left.Contents ?? []).map((o) => o.Key)).toEqual([])
  })

  // Item 5: s3cmd abortmp takes the id as an argument.
  it('lists and aborts an upload in progress (multipart, abortmp)', async () => {
    await s3.send(new CreateBucketCommand({ Bucket: 's3cmd-uploads' }))
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: 's3cmd-uploads', Key: 'pending.bin' }))
    const listed = ok(await c.s3cmd(['multipart', 's3://s3cmd-uploads']), 's3cmd multipart')
    expect(listed.stdout).toContain(UploadId!)
    ok(await c.s3cmd(['abortmp', 's3://s3cmd-uploads/pending.bin', UploadId!]), 's3cmd abortmp')
    const left = await s3.send(new ListMultipartUploadsCommand({ Bucket: 's3cmd-uploads' }))
    expect(left.Uploads ?? []).toHaveLength(0)
  })
})
