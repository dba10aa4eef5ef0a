/**
 * XML request bodies exactly as Go's encoding/xml writes them (rclone, minio-go,
 * aws-sdk-go: `"` → `&#34;`, `'` → `&#39;`, LF → `&#xA;`), sent signed to the real server:
 * DeleteObjects must delete what it reports Deleted, CompleteMultipartUpload must find its
 * parts, and a malformed reference is MalformedXML with nothing changed.
 */
import { createHash } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CreateBucketCommand, CreateMultipartUploadCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, UploadPartCommand, type S3Client } from '@aws-sdk/client-s3'
import { rawRequest, removeDir, signRequest, startServer, stopAll, xmlCode, type TestServer } from './helpers.js'

let server: TestServer
let s3: S3Client
const BUCKET = 'go-xml'

function goEscape(s: string): string {
  return s.replace(/[&<>"'\t\n\r]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&#34;', "'": '&#39;', '\t': '&#x9;', '\n': '&#xA;', '\r': '&#xD;' })[c]!)
}

async function post(path: string, xml: string) {
  const body = Buffer.from(xml)
  const md5 = createHash('md5').update(body).digest('base64')
  const headers = await signRequest(server, {
    method: 'POST',
    path,
    body,
    payloadHash: createHash('sha256').update(body).digest('hex'),
    headers: { 'content-md5': md5, 'content-type': 'application/xml', 'content-length': String(body.length) },
  })
  return rawRequest(server, { method: 'POST', path, headers, body })
}

beforeAll(async () => {
  server = await startServer()
  s3 = server.client()
  await s3.send(new CreateBucketCommand({ Bucket: BUCKET }))
})

afterAll(async () => {
  s3?.destroy()
  await server?.stop()
  await stopAll()
  if (server) removeDir(server.dataDir)
})

describe('bodies as Go writes them', () => {
  it('DeleteObjects deletes every key it reports Deleted', async () => {
    const keys = ["it's.txt", 'say "hi".txt', 'a&b<c>.txt', 'line\nbreak.txt', 'plain.txt']
    for (const k of keys) await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: `del/${k}`, Body: k }))
    const xml = `<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/">${keys.map((k) => `<Object><Key>${goEscape(`del/${k}`)}</Key></Object>`).join('')}<Quiet>false</Quiet></Delete>`
    expect(xml).toContain('<Key>del/it&#39;s.txt</Key>')
    const res = await post(`/${BUCKET}?delete`, xml)
    expect(res.status).toBe(200)
    const deleted = [...res.body.toString().matchAll(/<Deleted><Key>([^<]*)<\/Key>/g)].map((m) => m[1])
    expect(deleted).toHaveLength(keys.length)
    const left = await s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'del/' }))
    expect(left.KeyCount).toBe(0)
  })

  it('CompleteMultipartUpload finds parts whose ETags are quoted with &#34;', async () => {
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: 'mp.bin' }))
    const part = await s3.send(new UploadPartCommand({ Bucket: BUCKET, Key: 'mp.bin', UploadId, PartNumber: 1, Body: Buffer.from('one part') }))
    const xml = `<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Part><ETag>${goEscape(part.ETag!)}</ETag><PartNumber>1</PartNumber></Part></CompleteMultipartUpload>`
    expect(xml).toContain('<ETag>&#34;')
    const res = await post(`/${BUCKET}/mp.bin?uploadId=${encodeURIComponent(UploadId!)}`, xml)
    expect(res.status).toBe(200)
    expect((await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'mp.bin' }))).ContentLength).toBe(8)
  })

  it('a malformed reference is MalformedXML and deletes nothing', async () => {
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'keep.txt', Body: 'x' }))
    for (const bad of ['keep&nbsp;.txt', 'keep&#0;.txt', 'keep&.txt']) {
      const res = await post(`/${BUCKET}?delete`, `<Delete><Object><Key>${bad}</Key></Object><Object><Key>keep.txt</Key></Object></Delete>`)
      expect([res.status, xmlCode(res)], bad).toEqual([400, 'MalformedXML'])
    }
    expect((await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'keep.txt' }))).ContentLength).toBe(1)
  })
})
