/**
 * The aws CLI v2 (Debian, /usr/bin/aws by full path) against the real server over HTTPS:
 * s3api calls that take ids on the command line, and the high-level `s3` commands.
 */
import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { CreateBucketCommand, CreateMultipartUploadCommand, ListMultipartUploadsCommand, type S3Client } from '@aws-sdk/client-s3'
import { join } from 'node:path'
import { allFiles, removeDir, startServer, stopAll, type TestServer } from '../server/helpers.js'
import { cleanupClients, Clients, describeClient, ok } from './harness.js'

let server: TestServer
let s3: S3Client
let c: Clients

describeClient('aws', 'aws CLI v2 against s3-sse', () => {
  beforeAll(async () => {
    server = await startServer({ args: ['--mode', 'aws'] })
    s3 = server.client()
    c = new Clients(server)
    await s3.send(new CreateBucketCommand({ Bucket: 'cli-uploads' }))
  })

  afterAll(async () => {
    s3?.destroy()
    await server?.stop()
    await stopAll()
    if (server) removeDir(server.dataDir)
    cleanupClients()
  })

  // Item 5: an id beginning with '-' is read by the CLI as an option ("--upload-id -xyz").
  it('takes every upload id as an argument: create, upload-part, list-parts, complete and abort', async () => {
    const created = JSON.parse(ok(await c.aws(['s3api', 'create-multipart-upload', '--bucket', 'cli-uploads', '--key', 'k.bin'])).stdout)
    const id = created.UploadId as string
    expect(id).toMatch(/^[A-Za-z0-9_][A-Za-z0-9_-]+$/)
    c.file('part.bin', randomBytes(1000))
    const part = JSON.parse(ok(await c.aws(['s3api', 'upload-part', '--bucket', 'cli-uploads', '--key', 'k.bin', '--part-number', '1', '--upload-id', id, '--body', c.path('part.bin')])).stdout)
    const parts = JSON.parse(ok(await c.aws(['s3api', 'list-parts', '--bucket', 'cli-uploads', '--key', 'k.bin', '--upload-id', id])).stdout)
    expect(parts.Parts).toHaveLength(1)
    c.file('parts.json', JSON.stringify({ Parts: [{ ETag: part.ETag, PartNumber: 1 }] }))
    ok(await c.aws(['s3api', 'complete-multipart-upload', '--bucket', 'cli-uploads', '--key', 'k.bin', '--upload-id', id, '--multipart-upload', `file://${c.path('parts.json')}`]))

    const second = JSON.parse(ok(await c.aws(['s3api', 'create-multipart-upload', '--bucket', 'cli-uploads', '--key', 'gone.bin'])).stdout)
    ok(await c.aws(['s3api', 'abort-multipart-upload', '--bucket', 'cli-uploads', '--key', 'gone.bin', '--upload-id', second.UploadId]))
    const left = await s3.send(new ListMultipartUploadsCommand({ Bucket: 'cli-uploads' }))
    expect(left.Uploads ?? []).toHaveLength(0)
  })

  it('never hands out an upload id that begins with "-" (300 uploads)', async () => {
    const ids: string[] = []
    for (let i = 0; i < 300; i++) {
      const r = await s3.send(new CreateMultipartUploadCommand({ Bucket: 'cli-uploads', Key: `many/${i}` }))
      ids.push(r.UploadId!)
    }
    // A base64url id would begin with '-' about once in 64 draws.
    expect(ids.filter((id) => id.startsWith('-'))).toEqual([])
    expect(new Set(ids).size).toBe(ids.length)
    const listed = JSON.parse(ok(await c.aws(['s3api', 'list-multipart-uploads', '--bucket', 'cli-uploads', '--prefix', 'many/'])).stdout)
    expect(listed.Uploads).toHaveLength(300)
    for (const u of listed.Uploads.slice(0, 3)) {
      ok(await c.aws(['s3api', 'abort-multipart-upload', '--bucket', 'cli-uploads', '--key', u.Key, '--upload-id', u.UploadId]))
    }
  })

  // Item 7: S3 deletes a bucket whose only content is uploads in progress, and discards them.
  it('s3 rb deletes a bucket holding only uploads in progress, and their parts go with it', async () => {
    ok(await c.aws(['s3', 'mb', 's3://cli-leftovers']))
    const created = JSON.parse(ok(await c.aws(['s3api', 'create-multipart-upload', '--bucket', 'cli-leftovers', '--key', 'left.bin'])).stdout)
    c.file('left-part.bin', randomBytes(70_000))
    ok(await c.aws(['s3api', 'upload-part', '--bucket', 'cli-leftovers', '--key', 'left.bin', '--part-number', '1', '--upload-id', created.UploadId, '--body', c.path('left-part.bin')]))
    const before = allFiles(join(server.dataDir, 'objects')).length
    ok(await c.aws(['s3', 'rb', 's3://cli-leftovers']), 'aws s3 rb')
    const head = await c.aws(['s3api', 'head-bucket', '--bucket', 'cli-leftovers'])
    expect(head.code).not.toBe(0)
    expect(allFiles(join(server.dataDir, 'objects')).length).toBe(before - 1)
    // A bucket with an object is still not empty.
    ok(await c.aws(['s3', 'mb', 's3://cli-full']))
    ok(await c.aws(['s3', 'cp', c.path('left-part.bin'), 's3://cli-full/x.bin']))
    const refused = await c.aws(['s3', 'rb', 's3://cli-full'])
    expect(refused.code).not.toBe(0)
    expect(refused.stderr).toContain('BucketNotEmpty')
  })
})
