/**
 * Authentication end to end: presigned URLs, the streaming payload forms (signed chunks,
 * unsigned and signed trailers), clock skew, bad signatures, payload hashes, users and
 * their isolation, and browser POST uploads with a SigV4 policy.
 */
import { createHash, createHmac } from 'node:crypto'
import https from 'node:https'
import { crc32 } from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListBucketsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3'
import { getSignedUrl } from '@aws-sdk/s3-request-presigner'
import { createPresignedPost } from '@aws-sdk/s3-presigned-post'
import {
  errorCode,
  postForm,
  randomBuffer,
  rawRequest,
  removeDir,
  ROOT_SECRET,
  runCli,
  signingKey,
  signRequest,
  startServer,
  stopAll,
  xmlCode,
  type RawResponse,
  type TestServer,
} from './helpers.js'

let server: TestServer
let s3: S3Client
const BUCKET = 'auth-tests'

const sha256hex = (d: string | Buffer) => createHash('sha256').update(d).digest('hex')
const EMPTY_SHA256 = sha256hex('')

beforeAll(async () => {
  server = await startServer()
  s3 = server.client()
  await s3.send(new CreateBucketCommand({ Bucket: BUCKET }))
})

afterAll(async () => {
  s3?.destroy()
  const code = await server?.stop()
  await stopAll()
  removeDir(server.dataDir)
  expect(code).toBe(0) // a graceful SIGTERM exit
})

const signedRequest = (opts: Parameters<typeof signRequest>[1]) => signRequest(server, opts)

describe('header signatures', () => {
  it('refuses anonymous requests, unknown keys and wrong secrets', async () => {
    expect(xmlCode(await rawRequest(server, { method: 'GET', path: `/${BUCKET}` }))).toBe('AccessDenied')
    const stranger = server.client({ accessKeyId: 'NOSUCHKEY', secretAccessKey: 'whatever-secret' })
    expect(await errorCode(stranger.send(new ListBucketsCommand({})))).toBe('InvalidAccessKeyId')
    const wrong = server.client({ secretAccessKey: 'not-the-secret' })
    expect(await errorCode(wrong.send(new ListBucketsCommand({})))).toBe('SignatureDoesNotMatch')
    expect(await errorCode(wrong.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'nope', Body: 'x' })))).toBe('SignatureDoesNotMatch')
    expect(await errorCode(s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'nope' })))).toBe('NotFound')
  })

  it('refuses a request signed with a tampered header', async () => {
    const headers = await signedRequest({ method: 'GET', path: `/${BUCKET}`, payloadHash: EMPTY_SHA256, headers: { 'x-amz-meta-a': '1' } })
    headers['x-amz-meta-a'] = '2'
    const res = await rawRequest(server, { method: 'GET', path: `/${BUCKET}`, headers })
    expect(res.status).toBe(403)
    expect(xmlCode(res)).toBe('SignatureDoesNotMatch')
  })

  it('refuses clock skew over 15 minutes', async () => {
    for (const offset of [-20 * 60_000, 20 * 60_000]) {
      const headers = await signedRequest({ method: 'GET', path: `/${BUCKET}`, payloadHash: EMPTY_SHA256, date: new Date(Date.now() + offset) })
      const res = await rawRequest(server, { method: 'GET', path: `/${BUCKET}`, headers })
      expect(res.status).toBe(403)
      expect(xmlCode(res)).toBe('RequestTimeTooSkewed')
    }
    const near = await signedRequest({ method: 'GET', path: `/${BUCKET}`, payloadHash: EMPTY_SHA256, date: new Date(Date.now() - 10 * 60_000) })
    expect((await rawRequest(server, { method: 'GET', path: `/${BUCKET}`, headers: near })).status).toBe(200)
  })

  it('checks a signed payload hash against the body', async () => {
    const body = Buffer.from('the real body')
    const path = `/${BUCKET}/sha-checked`
    const good = await signedRequest({ method: 'PUT', path, body, payloadHash: sha256hex(body) })
    expect((await rawRequest(server, { method: 'PUT', path, headers: good, body })).status).toBe(200)
    const lying = await signedRequest({ method: 'PUT', path: `/${BUCKET}/sha-lie`, body, payloadHash: sha256hex('another body') })
    const res = await rawRequest(server, { method: 'PUT', path: `/${BUCKET}/sha-lie`, headers: lying, body })
    expect(xmlCode(res)).toBe('XAmzContentSHA256Mismatch')
    expect(await errorCode(s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'sha-lie' })))).toBe('NotFound')
  })

  it('answers Expect: 100-continue only when ready for the body', async () => {
    const send = async (bucket: string, body: Buffer) => {
      const path = `/${bucket}/expecting`
      const headers = await signedRequest({ method: 'PUT', path, payloadHash: 'UNSIGNED-PAYLOAD', headers: { 'content-length': String(body.length) } })
      const url = new URL(server.httpsUrl)
      return new Promise<{ status: number; continued: boolean; text: string }>((resolve, reject) => {
        let continued = false
        const req = https.request({ host: url.hostname, port: url.port, method: 'PUT', path, ca: server.ca, headers: { ...headers, expect: '100-continue' } })
        req.on('continue', () => {
          continued = true
          req.end(body)
        })
        req.on('response', (res) => {
          let text = ''
          res.on('data', (d) => (text += d))
          res.on('end', () => {
            if (!continued) req.destroy()
            resolve({ status: res.statusCode ?? 0, continued, text })
          })
        })
        req.on('error', (e) => (continued ? reject(e) : undefined))
      })
    }
    const refused = await send('no-such-bucket-at-all', randomBuffer(8 * 1024 * 1024))
    expect(refused).toMatchObject({ status: 404, continued: false })
    expect(refused.text).toContain('<Code>NoSuchBucket</Code>')
    const accepted = await send(BUCKET, randomBuffer(1000))
    expect(accepted).toMatchObject({ status: 200, continued: true })
  })

  it('answers MalformedXML for a broken request document', async () => {
    const body = Buffer.from('<Delete><Object><Key>a</Key></Delete>')
    const path = `/${BUCKET}?delete`
    const headers = await signedRequest({ method: 'POST', path, body, payloadHash: sha256hex(body), headers: { 'content-md5': createHash('md5').update(body).digest('base64') } })
    const res = await rawRequest(server, { method: 'POST', path, headers, body })
    expect(res.status).toBe(400)
    expect(xmlCode(res)).toBe('MalformedXML')
  })

  it('refuses a region other than its own', async () => {
    const other = server.client({ region: 'eu-central-1' })
    expect(await errorCode(other.send(new ListObjectsV2Command({ Bucket: BUCKET })))).toBe('AuthorizationHeaderMalformed')
    other.destroy()
  })
})

describe('presigned URLs', () => {
  it('allow GET and PUT until they expire', async () => {
    await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'pre/signed ü', Body: 'presigned data' }))
    const getUrl = await getSignedUrl(s3, new GetObjectCommand({ Bucket: BUCKET, Key: 'pre/signed ü' }), { expiresIn: 60 })
    const url = new URL(getUrl)
    const got = await rawRequest(server, { method: 'GET', path: url.pathname + url.search })
    expect(got.status).toBe(200)
    expect(got.body.toString()).toBe('presigned data')

    const putUrl = new URL(await getSignedUrl(s3, new PutObjectCommand({ Bucket: BUCKET, Key: 'pre/put' }), { expiresIn: 60 }))
    const put = await rawRequest(server, { method: 'PUT', path: putUrl.pathname + putUrl.search, body: 'uploaded by url' })
    expect(put.status).toBe(200)
    const back = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'pre/put' }))
    expect(await back.Body!.transformToString()).toBe('uploaded by url')

    const short = new URL(await getSignedUrl(s3, new GetObjectCommand({ Bucket: BUCKET, Key: 'pre/signed ü' }), { expiresIn: 1 }))
    await new Promise((r) => setTimeout(r, 2100))
    const expired = await rawRequest(server, { method: 'GET', path: short.pathname + short.search })
    expect(expired.status).toBe(403)
    expect(xmlCode(expired)).toBe('AccessDenied')
    expect(expired.body.toString()).toContain('expired')
  })

  it('refuse a tampered URL', async () => {
    const url = new URL(await getSignedUrl(s3, new GetObjectCommand({ Bucket: BUCKET, Key: 'pre/signed ü' }), { expiresIn: 60 }))
    url.searchParams.set('response-content-type', 'text/evil')
    const res = await rawRequest(server, { method: 'GET', path: url.pathname + url.search })
    expect(xmlCode(res)).toBe('SignatureDoesNotMatch')
    const other = new URL(url)
    other.pathname = `/${BUCKET}/pre/put`
    expect(xmlCode(await rawRequest(server, { method: 'GET', path: other.pathname + other.search }))).toBe('SignatureDoesNotMatch')
  })
})

describe('streaming payloads (aws-chunked)', () => {
  const chunkSize = 64 * 1024

  function crc32b64(data: Buffer): string {
    const b = Buffer.alloc(4)
    b.writeUInt32BE(crc32(data) >>> 0)
    return b.toString('base64')
  }

  /** Builds a STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER] body, chunk signatures chained from the seed. */
  function signedChunks(data: Buffer, seed: string, amzDate: string, opts: { trailer?: string; tamper?: number; chunk?: number } = {}): Buffer {
    const key = signingKey(ROOT_SECRET, amzDate.slice(0, 8))
    const scope = `${amzDate.slice(0, 8)}/us-east-1/s3/aws4_request`
    const out: Buffer[] = []
    let prev = seed
    const chunks: Buffer[] = []
    const size = opts.chunk ?? chunkSize
    for (let i = 0; i < data.length; i += size) chunks.push(data.subarray(i, i + size))
    chunks.push(Buffer.alloc(0))
    for (const [i, chunk] of chunks.entries()) {
      const toSign = `AWS4-HMAC-SHA256-PAYLOAD\n${amzDate}\n${scope}\n${prev}\n${EMPTY_SHA256}\n${sha256hex(chunk)}`
      const sig = createHmac('sha256', key).update(toSign).digest('hex')
      prev = sig
      const sent = opts.tamper === i ? Buffer.from(chunk).fill(0x41, 0, 1) : chunk
      out.push(Buffer.from(`${chunk.length.toString(16)};chunk-signature=${sig}\r\n`), sent)
      if (chunk.length > 0) out.push(Buffer.from('\r\n'))
    }
    if (opts.trailer !== undefined) {
      const line = `x-amz-checksum-crc32:${opts.trailer}`
      const toSign = `AWS4-HMAC-SHA256-TRAILER\n${amzDate}\n${scope}\n${prev}\n${sha256hex(line + '\n')}`
      const sig = createHmac('sha256', key).update(toSign).digest('hex')
      out.push(Buffer.from(`${line}\r\nx-amz-trailer-signature:${sig}\r\n\r\n`))
    } else {
      out.push(Buffer.from('\r\n'))
    }
    return Buffer.concat(out)
  }

  async function putSigned(key: string, data: Buffer, opts: { trailer?: string; tamper?: number; agent?: https.Agent; chunk?: number } = {}): Promise<RawResponse> {
    const path = `/${BUCKET}/${key}`
    const mode = opts.trailer !== undefined ? 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER' : 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD'
    const date = new Date()
    // Body length depends only on sizes, not signatures: build once to measure.
    const probe = signedChunks(data, '0'.repeat(64), '20000101T000000Z', { trailer: opts.trailer, chunk: opts.chunk })
    const headers = await signedRequest({
      method: 'PUT',
      path,
      payloadHash: mode,
      date,
      headers: {
        'content-encoding': 'aws-chunked',
        'x-amz-decoded-content-length': String(data.length),
        'content-length': String(probe.length),
        ...(opts.trailer !== undefined ? { 'x-amz-trailer': 'x-amz-checksum-crc32' } : {}),
      },
    })
    const seed = /Signature=([0-9a-f]{64})/.exec(headers.authorization)![1]
    const body = signedChunks(data, seed, headers['x-amz-date'], opts)
    expect(body.length).toBe(probe.length)
    return rawRequest(server, { method: 'PUT', path, headers, body, agent: opts.agent })
  }

  it('verifies every chunk signature (STREAMING-AWS4-HMAC-SHA256-PAYLOAD)', async () => {
    const data = randomBuffer(3 * chunkSize + 999)
    const res = await putSigned('chunks/signed', data)
    expect(res.status).toBe(200)
    expect(res.headers.etag).toBe(`"${createHash('md5').update(data).digest('hex')}"`)
    const got = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'chunks/signed' }))
    expect(Buffer.from(await got.Body!.transformToByteArray()).equals(data)).toBe(true)
    expect((await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'chunks/signed' }))).ContentEncoding).toBeUndefined()
  })

  it('refuses signed chunks under 8 KiB except the last one (InvalidChunkSizeError), storing nothing', async () => {
    const small = await putSigned('chunks/small', randomBuffer(3 * 4096), { chunk: 4096 })
    expect([small.status, xmlCode(small)]).toEqual([403, 'InvalidChunkSizeError'])
    expect(small.body.toString()).toContain('Only the last chunk is allowed to have a size less than 8192 bytes')
    expect(await errorCode(s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'chunks/small' })))).toBe('NotFound')
    // Exactly 8 KiB chunks and a short last one are fine, and so is one short chunk alone.
    const edge = randomBuffer(2 * 8192 + 100)
    expect((await putSigned('chunks/edge', edge, { chunk: 8192 })).status).toBe(200)
    expect((await putSigned('chunks/one', randomBuffer(10), { chunk: 8192 })).status).toBe(200)
    const got = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'chunks/edge' }))
    expect(Buffer.from(await got.Body!.transformToByteArray()).equals(edge)).toBe(true)
  })

  it('refuses a tampered chunk and stores nothing', async () => {
    const data = randomBuffer(3 * chunkSize)
    const res = await putSigned('chunks/tampered', data, { tamper: 1 })
    expect(xmlCode(res)).toBe('SignatureDoesNotMatch')
    expect(await errorCode(s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'chunks/tampered' })))).toBe('NotFound')
  })

  it('keeps a keep-alive connection usable after refusing a body part-way', async () => {
    const agent = new https.Agent({ ca: server.ca, keepAlive: true, maxSockets: 1 })
    const refused = await putSigned('chunks/refused', randomBuffer(3 * chunkSize), { tamper: 0, agent })
    expect(xmlCode(refused)).toBe('SignatureDoesNotMatch')
    const headers = await signedRequest({ method: 'GET', path: `/${BUCKET}?list-type=2`, payloadHash: EMPTY_SHA256 })
    const next = await rawRequest(server, { method: 'GET', path: `/${BUCKET}?list-type=2`, headers, agent })
    expect(next.status).toBe(200)
    agent.destroy()
  })

  it('verifies a signed trailer and its checksum (STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER)', async () => {
    const data = randomBuffer(2 * chunkSize + 5)
    const ok = await putSigned('chunks/trailer', data, { trailer: crc32b64(data) })
    expect(ok.status).toBe(200)
    expect(ok.headers['x-amz-checksum-crc32']).toBe(crc32b64(data))
    const head = await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'chunks/trailer', ChecksumMode: 'ENABLED' }))
    expect(head.ChecksumCRC32).toBe(crc32b64(data))
    const bad = await putSigned('chunks/bad-trailer', data, { trailer: crc32b64(Buffer.from('other')) })
    expect(xmlCode(bad)).toBe('BadDigest')
    expect(await errorCode(s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'chunks/bad-trailer' })))).toBe('NotFound')
  })

  it('decodes STREAMING-UNSIGNED-PAYLOAD-TRAILER and checks the trailing checksum', async () => {
    const data = randomBuffer(100_000)
    const encode = (trailerValue: string) =>
      Buffer.concat([
        Buffer.from(`${(60_000).toString(16)}\r\n`),
        data.subarray(0, 60_000),
        Buffer.from(`\r\n${(40_000).toString(16)}\r\n`),
        data.subarray(60_000),
        Buffer.from(`\r\n0\r\nx-amz-checksum-crc32:${trailerValue}\r\n\r\n`),
      ])
    const send = async (key: string, body: Buffer) => {
      const path = `/${BUCKET}/${key}`
      const headers = await signedRequest({
        method: 'PUT',
        path,
        payloadHash: 'STREAMING-UNSIGNED-PAYLOAD-TRAILER',
        headers: {
          'content-encoding': 'aws-chunked',
          'x-amz-decoded-content-length': String(data.length),
          'x-amz-trailer': 'x-amz-checksum-crc32',
          'content-length': String(body.length),
        },
      })
      return rawRequest(server, { method: 'PUT', path, headers, body })
    }
    expect((await send('chunks/unsigned', encode(crc32b64(data)))).status).toBe(200)
    const got = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'chunks/unsigned' }))
    expect(Buffer.from(await got.Body!.transformToByteArray()).equals(data)).toBe(true)
    expect(xmlCode(await send('chunks/unsigned-bad', encode(crc32b64(Buffer.from('x')))))).toBe('BadDigest')
    // A body cut short of its declared decoded length.
    const short = encode(crc32b64(data))
    const truncated = Buffer.concat([short.subarray(0, 70_000)])
    const res = await send('chunks/short', truncated).catch((e: Error) => e)
    if (!(res instanceof Error)) expect(res.status).toBeGreaterThanOrEqual(400)
    expect(await errorCode(s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'chunks/short' })))).toBe('NotFound')
  })
})

describe('users', () => {
  let alice: S3Client
  let bob: S3Client

  beforeAll(async () => {
    const keys = async (name: string) => {
      const out = await runCli(['user', 'add', name, '--data-dir', server.dataDir])
      expect(out.code).toBe(0)
      const accessKeyId = /access key: (\S+)/.exec(out.stdout)![1]
      const secretAccessKey = /secret key: (\S+)/.exec(out.stdout)![1]
      return { accessKeyId, secretAccessKey }
    }
    alice = server.client(await keys('alice'))
    bob = server.client(await keys('bob'))
    await new Promise((r) => setTimeout(r, 1100)) // the server re-reads the users file at most once a second
  })

  it('keep each user to their own buckets', async () => {
    await alice.send(new CreateBucketCommand({ Bucket: 'alice-private' }))
    await alice.send(new PutObjectCommand({ Bucket: 'alice-private', Key: 'secret.txt', Body: 'alice only' }))
    expect(await errorCode(bob.send(new GetObjectCommand({ Bucket: 'alice-private', Key: 'secret.txt' })))).toBe('AccessDenied')
    expect(await errorCode(bob.send(new PutObjectCommand({ Bucket: 'alice-private', Key: 'x', Body: 'x' })))).toBe('AccessDenied')
    expect(await errorCode(bob.send(new ListObjectsV2Command({ Bucket: 'alice-private' })))).toBe('AccessDenied')
    expect(await errorCode(bob.send(new DeleteObjectCommand({ Bucket: 'alice-private', Key: 'secret.txt' })))).toBe('AccessDenied')
    expect(await errorCode(bob.send(new CreateBucketCommand({ Bucket: 'alice-private' })))).toBe('BucketAlreadyExists')
    const bobs = await bob.send(new ListBucketsCommand({}))
    expect(bobs.Buckets?.map((b) => b.Name) ?? []).not.toContain('alice-private')
    const alices = await alice.send(new ListBucketsCommand({}))
    expect(alices.Buckets?.map((b) => b.Name)).toEqual(['alice-private'])
    // Root administers every bucket.
    const got = await s3.send(new GetObjectCommand({ Bucket: 'alice-private', Key: 'secret.txt' }))
    expect(await got.Body!.transformToString()).toBe('alice only')
  })

  it('are listed and removed by the CLI; a removed user is refused', async () => {
    const list = await runCli(['user', 'list', '--data-dir', server.dataDir])
    expect(list.stdout).toMatch(/^alice\t/m)
    expect(list.stdout).toMatch(/^bob\t/m)
    expect(list.stdout).not.toContain('secret')
    const removed = await runCli(['user', 'remove', 'bob', '--data-dir', server.dataDir])
    expect(removed.code).toBe(0)
    await new Promise((r) => setTimeout(r, 1100))
    expect(await errorCode(bob.send(new ListBucketsCommand({})))).toBe('InvalidAccessKeyId')
  })
})

describe('browser POST uploads', () => {
  async function post(fields: Record<string, string>, file: Buffer, filename?: string): Promise<RawResponse> {
    const { body, contentType } = postForm(fields, file, filename)
    return rawRequest(server, { method: 'POST', path: `/${BUCKET}`, headers: { 'content-type': contentType }, body })
  }

  it('stores a file under a SigV4 POST policy and honours success_action_status', async () => {
    const { fields } = await createPresignedPost(s3, {
      Bucket: BUCKET,
      Key: 'uploads/${filename}',
      Conditions: [['starts-with', '$key', 'uploads/'], ['content-length-range', 1, 1024 * 1024], ['starts-with', '$Content-Type', 'image/'], { success_action_status: '201' }],
      Fields: { 'Content-Type': 'image/jpeg', success_action_status: '201' },
      Expires: 300,
    })
    const file = randomBuffer(5000)
    const res = await post({ ...fields, 'x-amz-meta-origin': 'browser' }, file).catch((e) => e)
    // x-amz-meta-origin was not in the policy: refused.
    expect(xmlCode(res)).toBe('AccessDenied')
    const ok = await post(fields, file)
    expect(ok.status).toBe(201)
    expect(ok.body.toString()).toContain('<Key>uploads/photo.jpg</Key>')
    // S3 escapes the quotes of an ETag in XML text, as this does.
    expect(ok.body.toString()).toContain(`<ETag>&quot;${createHash('md5').update(file).digest('hex')}&quot;</ETag>`)
    const got = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'uploads/photo.jpg' }))
    expect(got.ContentType).toBe('image/jpeg')
    expect(Buffer.from(await got.Body!.transformToByteArray()).equals(file)).toBe(true)
  })

  it('checks the policy conditions, size range, expiry and signature', async () => {
    const presigned = async (conditions: unknown[], expires = 300) =>
      (
        await createPresignedPost(s3, {
          Bucket: BUCKET,
          Key: 'limited/file',
          Conditions: conditions as never,
          Expires: expires,
        })
      ).fields
    const small = await presigned([['content-length-range', 1, 100]])
    expect(xmlCode(await post(small, randomBuffer(101)))).toBe('EntityTooLarge')
    expect(xmlCode(await post(small, Buffer.alloc(0)))).toBe('EntityTooSmall')
    expect((await post(small, randomBuffer(100))).status).toBe(204)

    const keyed = await presigned([])
    expect(xmlCode(await post({ ...keyed, key: 'elsewhere/file' }, randomBuffer(10)))).toBe('AccessDenied')
    const forged = await presigned([])
    expect(xmlCode(await post({ ...forged, 'X-Amz-Signature': '0'.repeat(64) }, randomBuffer(10)))).toBe('SignatureDoesNotMatch')
    const expired = await presigned([], 1)
    await new Promise((r) => setTimeout(r, 1500))
    const res = await post(expired, randomBuffer(10))
    expect(xmlCode(res)).toBe('AccessDenied')
    expect(res.body.toString()).toContain('expired')
  })
})
