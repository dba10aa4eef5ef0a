/**
 * The aws CLI v2 (Debian, /usr/bin/aws by full path) against the real server over HTTPS:
 * s3api calls that take ids on the command line, and the high-level `s3` commands.
 */
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { CreateBucketCommand, CreateMultipartUploadCommand, ListMultipartUploadsCommand, type S3Client } from '@aws-sdk/client-s3'
import { join } from 'node:path'
import { allFiles, removeDir, runCli, startServer, stopAll, type TestServer } from '../server/helpers.js'
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

  // Item 8: responses name the KMS key the way the request or the bucket configuration did.
  it('reports the KMS key as it was named: alias/NAME, NAME, key id, ARN, and the bucket configuration\'s', async () => {
    const created = await runCli(['kms', 'create', '--data-dir', server.dataDir, '--alias', 'cli-team', '--json'])
    expect(created.code, created.stderr).toBe(0)
    const keyId = (JSON.parse(created.stdout) as { keyId: string }).keyId
    ok(await c.aws(['s3', 'mb', 's3://cli-keys']))
    c.file('k.txt', 'key names')
    const arn = 'arn:aws:kms:us-east-1:000000000000:alias/cli-team'
    for (const named of ['alias/cli-team', 'cli-team', keyId, arn]) {
      const put = JSON.parse(ok(await c.aws(['s3api', 'put-object', '--bucket', 'cli-keys', '--key', 'k.txt', '--body', c.path('k.txt'), '--server-side-encryption', 'aws:kms', '--ssekms-key-id', named])).stdout)
      expect([put.ServerSideEncryption, put.SSEKMSKeyId], named).toEqual(['aws:kms', named])
      const head = JSON.parse(ok(await c.aws(['s3api', 'head-object', '--bucket', 'cli-keys', '--key', 'k.txt'])).stdout)
      expect(head.SSEKMSKeyId, named).toBe(named)
    }
    const plainKms = JSON.parse(ok(await c.aws(['s3api', 'put-object', '--bucket', 'cli-keys', '--key', 'default.txt', '--body', c.path('k.txt'), '--server-side-encryption', 'aws:kms'])).stdout)
    expect(plainKms.SSEKMSKeyId).toBe('alias/aws/s3')
    const copy = JSON.parse(ok(await c.aws(['s3api', 'copy-object', '--bucket', 'cli-keys', '--key', 'copy.txt', '--copy-source', 'cli-keys/k.txt', '--server-side-encryption', 'aws:kms', '--ssekms-key-id', 'cli-team'])).stdout)
    expect(copy.SSEKMSKeyId).toBe('cli-team')
    // Multipart: create, part, complete and head all say the same.
    const mp = JSON.parse(ok(await c.aws(['s3api', 'create-multipart-upload', '--bucket', 'cli-keys', '--key', 'mp.bin', '--server-side-encryption', 'aws:kms', '--ssekms-key-id', 'alias/cli-team'])).stdout)
    expect(mp.SSEKMSKeyId).toBe('alias/cli-team')
    const part = JSON.parse(ok(await c.aws(['s3api', 'upload-part', '--bucket', 'cli-keys', '--key', 'mp.bin', '--part-number', '1', '--upload-id', mp.UploadId, '--body', c.path('k.txt')])).stdout)
    expect(part.SSEKMSKeyId).toBe('alias/cli-team')
    c.file('mp-parts.json', JSON.stringify({ Parts: [{ ETag: part.ETag, PartNumber: 1 }] }))
    const done = JSON.parse(ok(await c.aws(['s3api', 'complete-multipart-upload', '--bucket', 'cli-keys', '--key', 'mp.bin', '--upload-id', mp.UploadId, '--multipart-upload', `file://${c.path('mp-parts.json')}`])).stdout)
    expect(done.SSEKMSKeyId).toBe('alias/cli-team')
    expect(JSON.parse(ok(await c.aws(['s3api', 'head-object', '--bucket', 'cli-keys', '--key', 'mp.bin'])).stdout).SSEKMSKeyId).toBe('alias/cli-team')
    // The bucket configuration's name, for writes that name none.
    c.file('enc.json', JSON.stringify({ Rules: [{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms', KMSMasterKeyID: arn } }] }))
    ok(await c.aws(['s3api', 'put-bucket-encryption', '--bucket', 'cli-keys', '--server-side-encryption-configuration', `file://${c.path('enc.json')}`]))
    const byDefault = JSON.parse(ok(await c.aws(['s3api', 'put-object', '--bucket', 'cli-keys', '--key', 'by-default.txt', '--body', c.path('k.txt')])).stdout)
    expect(byDefault.SSEKMSKeyId).toBe(arn)
  })

  // Item 2: aws s3 cp between buckets calls GetObjectTagging (and copies the tags) before a
  // multipart copy, so every object over 8 MiB failed while tagging answered 501.
  it('aws s3 cp s3://a/big s3://b/big over 8 MiB copies the data and the tags', async () => {
    ok(await c.aws(['s3', 'mb', 's3://cli-tags-a']))
    ok(await c.aws(['s3', 'mb', 's3://cli-tags-b']))
    const big = randomBytes(9 * 1024 * 1024 + 5)
    c.file('big.bin', big)
    ok(await c.aws(['s3', 'cp', c.path('big.bin'), 's3://cli-tags-a/big.bin', '--no-progress']))
    ok(await c.aws(['s3api', 'put-object-tagging', '--bucket', 'cli-tags-a', '--key', 'big.bin', '--tagging', 'TagSet=[{Key=project,Value=apollo},{Key=stage,Value=raw data}]']))
    ok(await c.aws(['s3', 'cp', 's3://cli-tags-a/big.bin', 's3://cli-tags-b/big.bin', '--no-progress']), 'aws s3 cp s3 → s3 (multipart copy)')
    ok(await c.aws(['s3', 'cp', 's3://cli-tags-b/big.bin', c.path('big.down'), '--no-progress']))
    expect(readFileSync(c.path('big.down')).equals(big)).toBe(true)
    const tags = JSON.parse(ok(await c.aws(['s3api', 'get-object-tagging', '--bucket', 'cli-tags-b', '--key', 'big.bin'])).stdout)
    expect(tags.TagSet).toEqual([{ Key: 'project', Value: 'apollo' }, { Key: 'stage', Value: 'raw data' }])
  })

  it('object tagging with s3api: put-object --tagging, get/put/delete-object-tagging, copy-object directives, TagCount, errors', async () => {
    ok(await c.aws(['s3', 'mb', 's3://cli-tagging']))
    c.file('t.txt', 'tagged')
    ok(await c.aws(['s3api', 'put-object', '--bucket', 'cli-tagging', '--key', 't.txt', '--body', c.path('t.txt'), '--tagging', 'team=blue&tier=hot%20cold']))
    const got = JSON.parse(ok(await c.aws(['s3api', 'get-object-tagging', '--bucket', 'cli-tagging', '--key', 't.txt'])).stdout)
    expect(got.TagSet).toEqual([{ Key: 'team', Value: 'blue' }, { Key: 'tier', Value: 'hot cold' }])
    const obj = JSON.parse(ok(await c.aws(['s3api', 'get-object', '--bucket', 'cli-tagging', '--key', 't.txt', c.path('t.down')])).stdout)
    expect(obj.TagCount).toBe(2)
    ok(await c.aws(['s3api', 'copy-object', '--bucket', 'cli-tagging', '--key', 'kept.txt', '--copy-source', 'cli-tagging/t.txt']))
    ok(await c.aws(['s3api', 'copy-object', '--bucket', 'cli-tagging', '--key', 'replaced.txt', '--copy-source', 'cli-tagging/t.txt', '--tagging-directive', 'REPLACE', '--tagging', 'only=this']))
    expect(JSON.parse(ok(await c.aws(['s3api', 'get-object-tagging', '--bucket', 'cli-tagging', '--key', 'kept.txt'])).stdout).TagSet).toHaveLength(2)
    expect(JSON.parse(ok(await c.aws(['s3api', 'get-object-tagging', '--bucket', 'cli-tagging', '--key', 'replaced.txt'])).stdout).TagSet).toEqual([{ Key: 'only', Value: 'this' }])
    ok(await c.aws(['s3api', 'delete-object-tagging', '--bucket', 'cli-tagging', '--key', 't.txt']))
    expect(JSON.parse(ok(await c.aws(['s3api', 'get-object-tagging', '--bucket', 'cli-tagging', '--key', 't.txt'])).stdout).TagSet).toEqual([])
    const eleven = Array.from({ length: 11 }, (_, i) => `{Key=k${i},Value=v}`).join(',')
    const tooMany = await c.aws(['s3api', 'put-object-tagging', '--bucket', 'cli-tagging', '--key', 't.txt', '--tagging', `TagSet=[${eleven}]`])
    expect(tooMany.stderr).toMatch(/BadRequest.*Object tags cannot be greater than 10/)
    const badChars = await c.aws(['s3api', 'put-object-tagging', '--bucket', 'cli-tagging', '--key', 't.txt', '--tagging', 'TagSet=[{Key=a*b,Value=v}]'])
    expect(badChars.stderr).toMatch(/InvalidTag/)
    const missing = await c.aws(['s3api', 'get-object-tagging', '--bucket', 'cli-tagging', '--key', 'nope'])
    expect(missing.stderr).toMatch(/NoSuchKey/)
  })
})
