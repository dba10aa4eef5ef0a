/**
 * A KMS that fails, on every path that calls it (issue 10, item 13): PutObject, GetObject,
 * CopyObject in all four directions, CreateMultipartUpload, UploadPart, UploadPartCopy,
 * CompleteMultipartUpload, PostObject, PutBucketEncryption naming a key. Each answers 503
 * ServiceUnavailable (never a 500 with a raw EISDIR or socket error), stores nothing, and the
 * data is intact once the KMS is back. Twice: the real server process whose keyring file is
 * replaced by a directory (unreadable), and the server in process with a KMS injected through
 * its seam that cannot be reached.
 */
import { randomBytes } from 'node:crypto'
import https from 'node:https'
import { mkdirSync, renameSync, rmSync } from 'node:fs'
import { afterAll, describe, expect, it } from 'vitest'
import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutBucketEncryptionCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  UploadPartCopyCommand,
} from '@aws-sdk/client-s3'
import { createPresignedPost } from '@aws-sdk/s3-presigned-post'
import { NodeHttpHandler } from '@smithy/node-http-handler'
import { openEmbeddedKms } from '../../src/keys/index.js'
import { kmsPaths } from '../../src/keys/keyring.js'
import { startServer as startInProcess } from '../../src/server/server.js'
import { FaultyKms } from '../server/faults.js'
import { postForm, rawRequest, removeDir, startServer, stopAll, tempDir, type TestServer } from '../server/helpers.js'
import { makeBucket } from './helpers.js'

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true'

const dirs: string[] = []
afterAll(async () => {
  await stopAll()
  dirs.forEach(removeDir)
})

const MiB = 1024 * 1024
const kept = randomBytes(100_000)

async function status(p: Promise<unknown>): Promise<string> {
  try {
    await p
    return 'ok'
  } catch (err) {
    const e = err as { Code?: string; name?: string; $metadata?: { httpStatusCode?: number } }
    return `${e.$metadata?.httpStatusCode} ${e.Code ?? e.name}`
  }
}

/** Buckets and objects every KMS path starts from; returns an open upload in the encrypted bucket. */
async function prepare(s3: S3Client): Promise<string> {
  await makeBucket(s3, 'kf-enc', true)
  await makeBucket(s3, 'kf-enc2', true)
  await makeBucket(s3, 'kf-plain', false)
  await s3.send(new PutObjectCommand({ Bucket: 'kf-enc', Key: 'src', Body: kept }))
  await s3.send(new PutObjectCommand({ Bucket: 'kf-plain', Key: 'src', Body: kept }))
  const up = await s3.send(new CreateMultipartUploadCommand({ Bucket: 'kf-enc', Key: 'mp' }))
  return up.UploadId!
}

/**
 * Every operation that calls the KMS, while it is failing. Reads may be answered from the
 * data-key cache (a key used moments ago), so a read is "ok or 503"; a write needs a new data
 * key and is always 503. Nothing may be a 500.
 */
async function duringOutage(s3: S3Client, uploadId: string, post: () => Promise<number>): Promise<Record<string, string>> {
  const part = Buffer.alloc(5 * MiB, 1)
  return {
    'PutObject (encrypted)': await status(s3.send(new PutObjectCommand({ Bucket: 'kf-enc', Key: 'new', Body: 'x' }))),
    'CopyObject encrypted → encrypted': await status(s3.send(new CopyObjectCommand({ Bucket: 'kf-enc2', Key: 'copy', CopySource: 'kf-enc/src' }))),
    'CopyObject encrypted → encrypted, same bucket': await status(s3.send(new CopyObjectCommand({ Bucket: 'kf-enc', Key: 'copy', CopySource: 'kf-enc/src' }))),
    'CopyObject plain → encrypted': await status(s3.send(new CopyObjectCommand({ Bucket: 'kf-enc', Key: 'copy2', CopySource: 'kf-plain/src' }))),
    'CopyObject encrypted → plain': await status(s3.send(new CopyObjectCommand({ Bucket: 'kf-plain', Key: 'copy', CopySource: 'kf-enc/src' }))),
    'CreateMultipartUpload (encrypted)': await status(s3.send(new CreateMultipartUploadCommand({ Bucket: 'kf-enc', Key: 'mp2' }))),
    UploadPart: await status(s3.send(new UploadPartCommand({ Bucket: 'kf-enc', Key: 'mp', UploadId: uploadId, PartNumber: 1, Body: part }))),
    UploadPartCopy: await status(s3.send(new UploadPartCopyCommand({ Bucket: 'kf-enc', Key: 'mp', UploadId: uploadId, PartNumber: 2, CopySource: 'kf-plain/src' }))),
    CompleteMultipartUpload: await status(s3.send(new CompleteMultipartUploadCommand({ Bucket: 'kf-enc', Key: 'mp', UploadId: uploadId, MultipartUpload: { Parts: [] } }))),
    'PostObject (encrypted)': String(await post()),
    'GetObject (encrypted)': await status(s3.send(new GetObjectCommand({ Bucket: 'kf-enc', Key: 'src' })).then((r) => r.Body!.transformToByteArray())),
  }
}

/**
 * Writes that need a new data key or a re-wrap cannot be served without the KMS: 503. Reads
 * (and parts of an upload, whose key was recovered when it was created) may be answered
 * from the data-key cache: ok, or 503. Nothing is ever a 500.
 */
const NEED_THE_KMS = new Set([
  'PutObject (encrypted)', 'CopyObject encrypted → encrypted', 'CopyObject encrypted → encrypted, same bucket',
  'CopyObject plain → encrypted', 'CreateMultipartUpload (encrypted)', 'PutBucketEncryption naming a key', 'PutObject naming a key',
])

function expectAll503(got: Record<string, string>): void {
  for (const [op, s] of Object.entries(got)) {
    if (op === 'PostObject (encrypted)') expect(s, op).toBe('503')
    else if (NEED_THE_KMS.has(op)) expect(s, op).toBe('503 ServiceUnavailable')
    else expect(s, op).toMatch(/^(ok|503 ServiceUnavailable|400 \w+)$/)
  }
}

async function afterOutage(s3: S3Client): Promise<void> {
  const got = await s3.send(new GetObjectCommand({ Bucket: 'kf-enc', Key: 'src' }))
  expect(Buffer.from(await got.Body!.transformToByteArray()).equals(kept)).toBe(true)
  for (const [b, k] of [['kf-enc', 'new'], ['kf-enc2', 'copy'], ['kf-enc', 'copy'], ['kf-enc', 'copy2']]) {
    expect(await status(s3.send(new HeadObjectCommand({ Bucket: b, Key: k }))), `${b}/${k} was stored during the outage`).toBe('404 NotFound')
  }
}

describe('a KMS that fails', () => {
  it('the real server process whose keyring became unreadable: 503 on every KMS path, never a raw EISDIR', async () => {
    const server: TestServer = await startServer()
    dirs.push(server.dataDir)
    // No data-key cache in the way: every KMS call reaches the keyring.
    const s3 = server.client()
    const uploadId = await prepare(s3)
    const { keyring } = kmsPaths(server.dataDir)
    renameSync(keyring, keyring + '.away')
    mkdirSync(keyring)
    const post = async () => {
      const { fields } = await createPresignedPost(s3, { Bucket: 'kf-enc', Key: 'form', Expires: 300 })
      const { body, contentType } = postForm(fields, Buffer.from('form data'))
      return (await rawRequest(server, { method: 'POST', path: '/kf-enc', headers: { 'content-type': contentType }, body })).status
    }
    try {
      expectAll503(await duringOutage(s3, uploadId, post))
      expect(server.output()).not.toMatch(/InternalError/)
      expect(server.output()).toMatch(/EISDIR|keyring/)
    } finally {
      rmSync(keyring, { recursive: true })
      renameSync(keyring + '.away', keyring)
    }
    await afterOutage(s3)
    s3.destroy()
    await server.stop()
  })

  it('an injected KMS that cannot be reached (in process): 503 on every KMS path; PutBucketEncryption naming a key too', async () => {
    const dataDir = tempDir()
    dirs.push(dataDir)
    const embedded = await openEmbeddedKms(dataDir, { create: true })
    const kms = new FaultyKms(embedded)
    const logs: string[] = []
    const server = await startInProcess({
      config: { dataDir, host: '127.0.0.1', httpsPort: 0, httpPort: null, region: 'us-east-1', mode: 'aws', domains: ['s3.localhost'] },
      kms,
      log: { info: (m) => logs.push(m), error: (m) => logs.push(m) },
    })
    const { accessKey, secretKey } = server.rootCredentials.user
    const s3 = new S3Client({
      region: 'us-east-1', endpoint: server.httpsUrl, forcePathStyle: true, maxAttempts: 1,
      credentials: { accessKeyId: accessKey, secretAccessKey: secretKey },
      requestHandler: new NodeHttpHandler({ httpsAgent: new https.Agent({ ca: server.tls.cert, keepAlive: true }) }),
    })
    try {
      const uploadId = await prepare(s3)
      const key = await embedded.createKey({ alias: 'named' })
      kms.fault = 'unavailable'
      const post = async () => {
        const { fields } = await createPresignedPost(s3, { Bucket: 'kf-enc', Key: 'form', Expires: 300 })
        const { body, contentType } = postForm(fields, Buffer.from('form data'))
        const url = new URL(server.httpsUrl)
        return new Promise<number>((resolve, reject) => {
          const req = https.request({ host: url.hostname, port: url.port, method: 'POST', path: '/kf-enc', ca: server.tls.cert, headers: { 'content-type': contentType, 'content-length': String(body.length) } }, (res) => {
            res.resume()
            res.on('end', () => resolve(res.statusCode ?? 0))
          })
          req.on('error', reject)
          req.end(body)
        })
      }
      const got = await duringOutage(s3, uploadId, post)
      got['PutBucketEncryption naming a key'] = await status(s3.send(new PutBucketEncryptionCommand({
        Bucket: 'kf-plain',
        ServerSideEncryptionConfiguration: { Rules: [{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms', KMSMasterKeyID: key.keyId } }] },
      })))
      got['PutObject naming a key'] = await status(s3.send(new PutObjectCommand({ Bucket: 'kf-plain', Key: 'named', Body: 'x', ServerSideEncryption: 'aws:kms', SSEKMSKeyId: key.keyId })))
      expectAll503(got)
      expect(logs.join('\n')).not.toMatch(/InternalError/)
      kms.fault = 'none'
      await afterOutage(s3)
    } finally {
      kms.fault = 'none'
      s3.destroy()
      await server.close()
      await embedded.close()
    }
  })
})
