/**
 * Bucket default encryption (SSE-KMS) end to end: the real server process over HTTPS (and
 * plain HTTP where the rules are about it), @aws-sdk/client-s3, the embedded KMS. One test
 * per rule of the product brief, in `oss` mode (the default) and in `aws` mode.
 *
 * Every object that must be encrypted carries ENC_MARKER in its plaintext; the last test of
 * each mode reads every file under the data dir (objects, SQLite, WAL, keyring, tmp) and
 * finds no trace of it, while the unencrypted control object's PLAIN_MARKER is there.
 */
import { createHash, randomBytes } from 'node:crypto'
import { readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteBucketEncryptionCommand,
  DeleteObjectCommand,
  GetBucketEncryptionCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutBucketEncryptionCommand,
  PutObjectCommand,
  UploadPartCommand,
  UploadPartCopyCommand,
  type S3Client,
  type ServerSideEncryption,
} from '@aws-sdk/client-s3'
import { getSignedUrl } from '@aws-sdk/s3-request-presigner'
import { createPresignedPost } from '@aws-sdk/s3-presigned-post'
import {
  errorCode,
  postForm,
  rawRequest,
  removeDir,
  ROOT_KEY,
  runCli,
  signRequest,
  sigV2Headers,
  startServer,
  stopAll,
  xmlCode,
  type TestServer,
  allFiles,
} from './helpers.js'

const MiB = 1024 * 1024
const ENC_MARKER = 'ENC-' + randomBytes(12).toString('hex')
const PLAIN_MARKER = 'PLAIN-' + randomBytes(12).toString('hex')
const INSECURE = 'Requests specifying Server Side Encryption with AWS KMS managed keys must be made over a secure connection.'
const NOT_V4 = 'Requests specifying Server Side Encryption with AWS KMS managed keys require AWS Signature Version 4.'

/** Plaintext of `size` bytes with the marker in it (at the start and again every 64 KiB). */
function data(marker: string, size = 1000): Buffer {
  const b = randomBytes(size)
  for (let off = 0; off + marker.length <= size; off += 65536) b.write(marker, off, 'latin1')
  return b
}

const md5hex = (b: Buffer) => createHash('md5').update(b).digest('hex')
const unquote = (etag: string | undefined) => (etag ?? '').replace(/"/g, '')

async function read(s3: S3Client, Bucket: string, Key: string): Promise<Buffer> {
  const out = await s3.send(new GetObjectCommand({ Bucket, Key }))
  return Buffer.from(await out.Body!.transformToByteArray())
}

async function sse(s3: S3Client, Bucket: string, Key: string): Promise<ServerSideEncryption | undefined> {
  return (await s3.send(new HeadObjectCommand({ Bucket, Key }))).ServerSideEncryption
}

const KMS_RULE = { Rules: [{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms' as const } }] }

/** The stored object files and their contents, to show a setting change rewrote nothing. */
function storedObjects(dataDir: string): Map<string, string> {
  return new Map(allFiles(join(dataDir, 'objects')).map((f) => [f, createHash('sha256').update(readFileSync(f)).digest('hex')]))
}

for (const mode of ['oss', 'aws'] as const) {
  describe(`bucket default encryption, ${mode} mode`, () => {
    let server: TestServer
    let s3: S3Client
    let plainHttp: S3Client
    let n = 0
    const bucket = async (encrypted: boolean) => {
      const name = `${mode}-sse-${++n}`
      await s3.send(new CreateBucketCommand({ Bucket: name }))
      if (encrypted) await s3.send(new PutBucketEncryptionCommand({ Bucket: name, ServerSideEncryptionConfiguration: KMS_RULE }))
      return name
    }

    beforeAll(async () => {
      server = await startServer({ args: ['--mode', mode] })
      s3 = server.client()
      plainHttp = server.client({ http: true })
    })

    afterAll(async () => {
      await stopAll()
      removeDir(server.dataDir)
    })

    describe('the ?encryption API', () => {
      it('GET when unset is 404 ServerSideEncryptionConfigurationNotFoundError; DELETE is 204 even then', async () => {
        const b = await bucket(false)
        expect(await errorCode(s3.send(new GetBucketEncryptionCommand({ Bucket: b })))).toBe('ServerSideEncryptionConfigurationNotFoundError')
        const del = await s3.send(new DeleteBucketEncryptionCommand({ Bucket: b }))
        expect(del.$metadata.httpStatusCode).toBe(204)
      })

      it('PUT aws:kms is 200 and GET returns the same configuration; DELETE removes it', async () => {
        const b = await bucket(false)
        const put = await s3.send(new PutBucketEncryptionCommand({
          Bucket: b,
          ServerSideEncryptionConfiguration: { Rules: [{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms' }, BucketKeyEnabled: true }] },
        }))
        expect(put.$metadata.httpStatusCode).toBe(200)
        const got = await s3.send(new GetBucketEncryptionCommand({ Bucket: b }))
        expect(got.ServerSideEncryptionConfiguration?.Rules).toEqual([{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms' }, BucketKeyEnabled: true }])
        await s3.send(new DeleteBucketEncryptionCommand({ Bucket: b }))
        expect(await errorCode(s3.send(new GetBucketEncryptionCommand({ Bucket: b })))).toBe('ServerSideEncryptionConfigurationNotFoundError')
      })

      it('malformed and schema-invalid XML is 400 MalformedXML', async () => {
        const b = await bucket(false)
        for (const xml of ['<ServerSideEncryptionConfiguration><Rule>', '<NotEncryption/>', 'plain text']) {
          const body = Buffer.from(xml)
          const headers = await signRequest(server, {
            method: 'PUT', path: `/${b}?encryption`, body, payloadHash: createHash('sha256').update(body).digest('hex'),
            headers: { 'content-md5': createHash('md5').update(body).digest('base64'), 'content-length': String(body.length) },
          })
          const res = await rawRequest(server, { method: 'PUT', path: `/${b}?encryption`, headers, body })
          expect(res.status, xml).toBe(400)
          expect(xmlCode(res), xml).toBe('MalformedXML')
        }
      })

      it('more than one rule, or an unknown algorithm, is 400 with a message that says which', async () => {
        const b = await bucket(false)
        const two = s3.send(new PutBucketEncryptionCommand({ Bucket: b, ServerSideEncryptionConfiguration: { Rules: [KMS_RULE.Rules[0], KMS_RULE.Rules[0]] } }))
        await expect(two).rejects.toMatchObject({ Code: 'MalformedXML', message: expect.stringMatching(/exactly one Rule, not 2/) })
        const odd = s3.send(new PutBucketEncryptionCommand({ Bucket: b, ServerSideEncryptionConfiguration: { Rules: [{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: 'aes:kms' as never } }] } }))
        await expect(odd).rejects.toMatchObject({ Code: 'MalformedXML', message: expect.stringMatching(/SSEAlgorithm "aes:kms"/) })
        expect(await errorCode(s3.send(new GetBucketEncryptionCommand({ Bucket: b })))).toBe('ServerSideEncryptionConfigurationNotFoundError')
      })

      it('PUT without Content-MD5 or a checksum is refused', async () => {
        const b = await bucket(false)
        const body = Buffer.from('<ServerSideEncryptionConfiguration><Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>aws:kms</SSEAlgorithm></ApplyServerSideEncryptionByDefault></Rule></ServerSideEncryptionConfiguration>')
        const headers = await signRequest(server, {
          method: 'PUT', path: `/${b}?encryption`, body, payloadHash: createHash('sha256').update(body).digest('hex'), headers: { 'content-length': String(body.length) },
        })
        const res = await rawRequest(server, { method: 'PUT', path: `/${b}?encryption`, headers, body })
        expect(res.status).toBe(400)
        expect(xmlCode(res)).toBe('InvalidRequest')
        expect(res.body.toString()).toMatch(/Content-MD5/)
      })

      it('only the bucket owner may read or change it', async () => {
        const b = await bucket(true)
        const added = await runCli(['user', 'add', `eve-${mode}`, '--data-dir', server.dataDir])
        expect(added.code, added.stderr).toBe(0)
        const access = /access key:\s*(\S+)/i.exec(added.stdout)?.[1]
        const secret = /secret key:\s*(\S+)/i.exec(added.stdout)?.[1]
        expect(access && secret, added.stdout).toBeTruthy()
        await new Promise((r) => setTimeout(r, 1100)) // the server rereads the users file within a second
        const eve = server.client({ accessKeyId: access!, secretAccessKey: secret! })
        expect(await errorCode(eve.send(new GetBucketEncryptionCommand({ Bucket: b })))).toBe('AccessDenied')
        expect(await errorCode(eve.send(new PutBucketEncryptionCommand({ Bucket: b, ServerSideEncryptionConfiguration: KMS_RULE })))).toBe('AccessDenied')
        expect(await errorCode(eve.send(new DeleteBucketEncryptionCommand({ Bucket: b })))).toBe('AccessDenied')
        expect((await s3.send(new GetBucketEncryptionCommand({ Bucket: b }))).ServerSideEncryptionConfiguration?.Rules?.[0].ApplyServerSideEncryptionByDefault?.SSEAlgorithm).toBe('aws:kms')
      })
    })

    describe('writes under the setting', () => {
      it('objects written while it is on are SSE-KMS; before and after it, not; changing it rewrites nothing', async () => {
        const b = await bucket(false)
        const before = data(PLAIN_MARKER)
        await s3.send(new PutObjectCommand({ Bucket: b, Key: 'before', Body: before }))
        await s3.send(new PutBucketEncryptionCommand({ Bucket: b, ServerSideEncryptionConfiguration: KMS_RULE }))
        const during = data(ENC_MARKER)
        const put = await s3.send(new PutObjectCommand({ Bucket: b, Key: 'during', Body: during }))
        expect(put.ServerSideEncryption).toBe('aws:kms')
        const stored = storedObjects(server.dataDir)
        await s3.send(new DeleteBucketEncryptionCommand({ Bucket: b }))
        const after = data(PLAIN_MARKER)
        const putAfter = await s3.send(new PutObjectCommand({ Bucket: b, Key: 'after', Body: after }))
        expect(putAfter.ServerSideEncryption).toBeUndefined()
        await s3.send(new PutBucketEncryptionCommand({ Bucket: b, ServerSideEncryptionConfiguration: KMS_RULE }))

        expect(await sse(s3, b, 'before')).toBeUndefined()
        expect(await sse(s3, b, 'during')).toBe('aws:kms')
        expect(await sse(s3, b, 'after')).toBeUndefined()
        // Encrypted objects stay readable after the setting is removed, and everything reads back.
        await s3.send(new DeleteBucketEncryptionCommand({ Bucket: b }))
        expect((await read(s3, b, 'before')).equals(before)).toBe(true)
        expect((await read(s3, b, 'during')).equals(during)).toBe(true)
        expect((await read(s3, b, 'after')).equals(after)).toBe(true)
        // The files stored before the changes are still there, byte for byte.
        const now = storedObjects(server.dataDir)
        for (const [file, hash] of stored) expect(now.get(file), file).toBe(hash)
      })

      it('the SSE-KMS ETag is not the MD5 of the plaintext, nor shaped like one; a plain object\'s is', async () => {
        const enc = await bucket(true)
        const plain = await bucket(false)
        const body = data(ENC_MARKER, 5000)
        const a = await s3.send(new PutObjectCommand({ Bucket: enc, Key: 'x', Body: body }))
        // hex-N (N parts), so rclone and s3cmd do not take it for an MD5 (issue 12 item 4).
        expect(unquote(a.ETag)).toMatch(/^[0-9a-f]{32}-1$/)
        expect(unquote(a.ETag)).not.toContain(md5hex(body))
        const control = data(PLAIN_MARKER, 5000)
        const p = await s3.send(new PutObjectCommand({ Bucket: plain, Key: 'x', Body: control }))
        expect(unquote(p.ETag)).toBe(md5hex(control))
        // A Content-MD5 is still checked against the plaintext of an encrypted upload.
        const wrong = s3.send(new PutObjectCommand({ Bucket: enc, Key: 'bad-md5', Body: body, ContentMD5: createHash('md5').update('other').digest('base64') }))
        expect(await errorCode(wrong)).toBe('BadDigest')
        const right = await s3.send(new PutObjectCommand({ Bucket: enc, Key: 'good-md5', Body: body, ContentMD5: createHash('md5').update(body).digest('base64') }))
        expect(right.ServerSideEncryption).toBe('aws:kms')
      })

      it('multipart: encryption is fixed at CreateMultipartUpload, part ETags are the ones Complete checks, the ETag keeps -N', async () => {
        const b = await bucket(true)
        const create = await s3.send(new CreateMultipartUploadCommand({ Bucket: b, Key: 'mp' }))
        expect(create.ServerSideEncryption).toBe('aws:kms')
        // Removing the setting mid-upload changes nothing for this upload.
        await s3.send(new DeleteBucketEncryptionCommand({ Bucket: b }))
        const p1 = data(ENC_MARKER, 5 * MiB)
        const p2 = data(ENC_MARKER, 1234)
        const u1 = await s3.send(new UploadPartCommand({ Bucket: b, Key: 'mp', UploadId: create.UploadId, PartNumber: 1, Body: p1 }))
        const u2 = await s3.send(new UploadPartCommand({ Bucket: b, Key: 'mp', UploadId: create.UploadId, PartNumber: 2, Body: p2 }))
        expect(u1.ServerSideEncryption).toBe('aws:kms')
        expect(u2.ServerSideEncryption).toBe('aws:kms')
        expect(unquote(u1.ETag)).not.toBe(md5hex(p1))
        const bad = s3.send(new CompleteMultipartUploadCommand({
          Bucket: b, Key: 'mp', UploadId: create.UploadId,
          MultipartUpload: { Parts: [{ PartNumber: 1, ETag: `"${md5hex(p1)}"` }, { PartNumber: 2, ETag: u2.ETag }] },
        }))
        expect(await errorCode(bad)).toBe('InvalidPart')
        const done = await s3.send(new CompleteMultipartUploadCommand({
          Bucket: b, Key: 'mp', UploadId: create.UploadId,
          MultipartUpload: { Parts: [{ PartNumber: 1, ETag: u1.ETag }, { PartNumber: 2, ETag: u2.ETag }] },
        }))
        expect(done.ServerSideEncryption).toBe('aws:kms')
        expect(unquote(done.ETag)).toMatch(/^[0-9a-f]{32}-2$/)
        expect(await sse(s3, b, 'mp')).toBe('aws:kms')
        expect((await read(s3, b, 'mp')).equals(Buffer.concat([p1, p2]))).toBe(true)

        // And the other way: an upload begun in a plain bucket stays plain.
        const plainUpload = await s3.send(new CreateMultipartUploadCommand({ Bucket: b, Key: 'mp-plain' }))
        expect(plainUpload.ServerSideEncryption).toBeUndefined()
        await s3.send(new PutBucketEncryptionCommand({ Bucket: b, ServerSideEncryptionConfiguration: KMS_RULE }))
        const body = data(PLAIN_MARKER, 100)
        const part = await s3.send(new UploadPartCommand({ Bucket: b, Key: 'mp-plain', UploadId: plainUpload.UploadId, PartNumber: 1, Body: body }))
        expect(part.ServerSideEncryption).toBeUndefined()
        const fin = await s3.send(new CompleteMultipartUploadCommand({ Bucket: b, Key: 'mp-plain', UploadId: plainUpload.UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: part.ETag }] } }))
        expect(fin.ServerSideEncryption).toBeUndefined()
        expect(await sse(s3, b, 'mp-plain')).toBeUndefined()
      })

      it('CopyObject in all four directions follows the destination bucket at the time of the copy', async () => {
        const enc = await bucket(true)
        const plain = await bucket(false)
        const e = data(ENC_MARKER, 300_000)
        const p = data(PLAIN_MARKER, 300_000)
        await s3.send(new PutObjectCommand({ Bucket: enc, Key: 'src', Body: e }))
        await s3.send(new PutObjectCommand({ Bucket: plain, Key: 'src', Body: p }))
        const cases: Array<[string, string, string, ServerSideEncryption | undefined, Buffer]> = [
          ['plain → plain', plain, plain, undefined, p],
          ['plain → encrypted', plain, enc, 'aws:kms', p],
          ['encrypted → encrypted', enc, enc, 'aws:kms', e],
        ]
        for (const [name, from, to, expected, body] of cases) {
          const key = `copy-${name.replace(/\W+/g, '-')}`
          const out = await s3.send(new CopyObjectCommand({ Bucket: to, Key: key, CopySource: `${from}/src` }))
          expect(out.ServerSideEncryption, name).toBe(expected)
          expect(await sse(s3, to, key), name).toBe(expected)
          expect((await read(s3, to, key)).equals(body), name).toBe(true)
        }
        // Encrypted → plain: the copy is stored in the clear, so this body must not carry ENC_MARKER.
        const shareable = data(PLAIN_MARKER, 2000)
        await s3.send(new PutObjectCommand({ Bucket: enc, Key: 'to-publish', Body: shareable }))
        const out = await s3.send(new CopyObjectCommand({ Bucket: plain, Key: 'published', CopySource: `${enc}/to-publish` }))
        expect(out.ServerSideEncryption).toBeUndefined()
        expect(await sse(s3, plain, 'published')).toBeUndefined()
        expect((await read(s3, plain, 'published')).equals(shareable)).toBe(true)
      })

      it('an encrypted whole-object copy re-wraps the data key and keeps the sealed bytes (no re-encryption)', async () => {
        const enc = await bucket(true)
        const other = await bucket(true)
        const body = data(ENC_MARKER, 200_000)
        await s3.send(new PutObjectCommand({ Bucket: enc, Key: 'orig', Body: body }))
        const filesBefore = new Set(allFiles(join(server.dataDir, 'objects')))
        await s3.send(new CopyObjectCommand({ Bucket: other, Key: 'copy', CopySource: `${enc}/orig` }))
        const added = allFiles(join(server.dataDir, 'objects')).filter((f) => !filesBefore.has(f))
        expect(added).toHaveLength(1)
        // The new file is another name for the same sealed bytes (a hard link).
        expect(statSync(added[0]).nlink).toBe(2)
        expect((await read(s3, other, 'copy')).equals(body)).toBe(true)
        // Deleting the source leaves the copy whole.
        await s3.send(new DeleteObjectCommand({ Bucket: enc, Key: 'orig' }))
        expect((await read(s3, other, 'copy')).equals(body)).toBe(true)
      })

      it('UploadPartCopy from an encrypted source into a plain upload and from a plain source into an encrypted one', async () => {
        const enc = await bucket(true)
        const plain = await bucket(false)
        const e = data(ENC_MARKER, 6 * MiB)
        const p = data(PLAIN_MARKER, 6 * MiB)
        await s3.send(new PutObjectCommand({ Bucket: enc, Key: 'src', Body: e }))
        await s3.send(new PutObjectCommand({ Bucket: plain, Key: 'src', Body: p }))
        // Encrypted destination, plain source.
        const up = await s3.send(new CreateMultipartUploadCommand({ Bucket: enc, Key: 'assembled' }))
        const c1 = await s3.send(new UploadPartCopyCommand({ Bucket: enc, Key: 'assembled', UploadId: up.UploadId, PartNumber: 1, CopySource: `${plain}/src`, CopySourceRange: `bytes=0-${5 * MiB - 1}` }))
        const c2 = await s3.send(new UploadPartCopyCommand({ Bucket: enc, Key: 'assembled', UploadId: up.UploadId, PartNumber: 2, CopySource: `${enc}/src`, CopySourceRange: 'bytes=100-199' }))
        expect(c1.ServerSideEncryption).toBe('aws:kms')
        expect(c2.ServerSideEncryption).toBe('aws:kms')
        const done = await s3.send(new CompleteMultipartUploadCommand({
          Bucket: enc, Key: 'assembled', UploadId: up.UploadId,
          MultipartUpload: { Parts: [{ PartNumber: 1, ETag: c1.CopyPartResult!.ETag }, { PartNumber: 2, ETag: c2.CopyPartResult!.ETag }] },
        }))
        expect(done.ServerSideEncryption).toBe('aws:kms')
        expect((await read(s3, enc, 'assembled')).equals(Buffer.concat([p.subarray(0, 5 * MiB), e.subarray(100, 200)]))).toBe(true)
        // Plain destination, encrypted source: the bytes copied must not carry ENC_MARKER.
        const clean = data(PLAIN_MARKER, 5 * MiB + 10)
        await s3.send(new PutObjectCommand({ Bucket: enc, Key: 'clean', Body: clean }))
        const up2 = await s3.send(new CreateMultipartUploadCommand({ Bucket: plain, Key: 'assembled' }))
        const d1 = await s3.send(new UploadPartCopyCommand({ Bucket: plain, Key: 'assembled', UploadId: up2.UploadId, PartNumber: 1, CopySource: `${enc}/clean` }))
        expect(d1.ServerSideEncryption).toBeUndefined()
        await s3.send(new CompleteMultipartUploadCommand({ Bucket: plain, Key: 'assembled', UploadId: up2.UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: d1.CopyPartResult!.ETag }] } }))
        expect(await sse(s3, plain, 'assembled')).toBeUndefined()
        expect((await read(s3, plain, 'assembled')).equals(clean)).toBe(true)
      })

      it('one KMS call per encrypted PUT, and about none per PUT with bucket keys (/-/metrics counts them)', async () => {
        const kmsCalls = async () => {
          const res = await rawRequest(server, { method: 'GET', path: '/-/metrics' })
          expect(res.status).toBe(200)
          const text = res.body.toString()
          const count = (m: string) => Number(new RegExp(`s3sse_kms_calls_total\\{method="${m}"\\} (\\d+)`).exec(text)?.[1])
          return { generate: count('generateDataKey'), decrypt: count('decrypt') }
        }
        const plain = await bucket(true)
        const keyed = await bucket(false)
        await s3.send(new PutBucketEncryptionCommand({ Bucket: keyed, ServerSideEncryptionConfiguration: { Rules: [{ ...KMS_RULE.Rules[0], BucketKeyEnabled: true }] } }))
        const body = data(ENC_MARKER, 64)
        await s3.send(new PutObjectCommand({ Bucket: plain, Key: 'warm', Body: body }))
        await s3.send(new PutObjectCommand({ Bucket: keyed, Key: 'warm', Body: body }))
        const a = await kmsCalls()
        for (let i = 0; i < 20; i++) await s3.send(new PutObjectCommand({ Bucket: plain, Key: `o${i}`, Body: body }))
        const b = await kmsCalls()
        for (let i = 0; i < 20; i++) await s3.send(new PutObjectCommand({ Bucket: keyed, Key: `o${i}`, Body: body }))
        const c = await kmsCalls()
        expect(b.generate - a.generate).toBe(20)
        expect(c.generate - b.generate).toBe(0)
        // Reading back: the key cache answers repeated reads of an object.
        for (let i = 0; i < 3; i++) expect((await read(s3, plain, 'o1')).equals(body)).toBe(true)
        const d = await kmsCalls()
        expect(d.decrypt - c.decrypt).toBeLessThanOrEqual(1)
      })

      it('presigned PUT and GET of an encrypted object over HTTPS', async () => {
        const b = await bucket(true)
        const body = data(ENC_MARKER, 4096)
        const putUrl = await getSignedUrl(s3, new PutObjectCommand({ Bucket: b, Key: 'presigned' }), { expiresIn: 300 })
        const put = await rawRequest(server, { method: 'PUT', path: new URL(putUrl).pathname + new URL(putUrl).search, body })
        expect(put.status).toBe(200)
        expect(put.headers['x-amz-server-side-encryption']).toBe('aws:kms')
        const getUrl = await getSignedUrl(s3, new GetObjectCommand({ Bucket: b, Key: 'presigned' }), { expiresIn: 300 })
        const got = await rawRequest(server, { method: 'GET', path: new URL(getUrl).pathname + new URL(getUrl).search })
        expect(got.status).toBe(200)
        expect(got.headers['x-amz-server-side-encryption']).toBe('aws:kms')
        expect(got.body.equals(body)).toBe(true)
        // A presigned GET for the plain-HTTP endpoint is refused.
        const httpUrl = await getSignedUrl(plainHttp, new GetObjectCommand({ Bucket: b, Key: 'presigned' }), { expiresIn: 300 })
        const httpGet = await rawRequest(server, { method: 'GET', path: new URL(httpUrl).pathname + new URL(httpUrl).search, plain: true })
        expect(httpGet.status).toBe(400)
        expect(xmlCode(httpGet)).toBe('InvalidArgument')
        expect(httpGet.body.toString()).toContain(INSECURE)
      })

      it('a browser POST form upload into an encrypted bucket is SSE-KMS and says so', async () => {
        const b = await bucket(true)
        const { fields } = await createPresignedPost(s3, { Bucket: b, Key: 'form/${filename}', Expires: 300, Conditions: [['starts-with', '$key', 'form/']] })
        const file = data(ENC_MARKER, 3000)
        const { body, contentType } = postForm(fields, file, 'a.bin')
        const res = await rawRequest(server, { method: 'POST', path: `/${b}`, headers: { 'content-type': contentType }, body })
        expect(res.status).toBe(204)
        expect(res.headers['x-amz-server-side-encryption']).toBe('aws:kms')
        expect(unquote(res.headers.etag as string)).not.toBe(md5hex(file))
        expect(await sse(s3, b, 'form/a.bin')).toBe('aws:kms')
        expect((await read(s3, b, 'form/a.bin')).equals(file)).toBe(true)
        // Over plain HTTP the same form is refused before anything is stored.
        const again = await createPresignedPost(s3, { Bucket: b, Key: 'form/${filename}', Expires: 300, Conditions: [['starts-with', '$key', 'form/']] })
        const f2 = postForm(again.fields, data(ENC_MARKER, 100), 'b.bin')
        const refused = await rawRequest(server, { method: 'POST', path: `/${b}`, headers: { 'content-type': f2.contentType }, body: f2.body, plain: true })
        expect(refused.status).toBe(400)
        expect(refused.body.toString()).toContain(INSECURE)
        expect(await errorCode(s3.send(new HeadObjectCommand({ Bucket: b, Key: 'form/b.bin' })))).toBe('NotFound')
      })
    })

    describe('HTTPS and SigV4 only for encrypted data', () => {
      it('refuses every request that moves SSE-KMS data over plain HTTP, with S3\'s message', async () => {
        const enc = await bucket(true)
        const plain = await bucket(false)
        const body = data(ENC_MARKER, 100)
        await s3.send(new PutObjectCommand({ Bucket: enc, Key: 'secret', Body: body }))
        await s3.send(new PutObjectCommand({ Bucket: plain, Key: 'public', Body: data(PLAIN_MARKER, 100) }))
        const upload = await s3.send(new CreateMultipartUploadCommand({ Bucket: enc, Key: 'mp' }))
        const refusals: Array<[string, () => Promise<unknown>]> = [
          ['PutObject', () => plainHttp.send(new PutObjectCommand({ Bucket: enc, Key: 'k', Body: body }))],
          ['GetObject', () => plainHttp.send(new GetObjectCommand({ Bucket: enc, Key: 'secret' }))],
          ['CreateMultipartUpload', () => plainHttp.send(new CreateMultipartUploadCommand({ Bucket: enc, Key: 'k' }))],
          ['UploadPart', () => plainHttp.send(new UploadPartCommand({ Bucket: enc, Key: 'mp', UploadId: upload.UploadId, PartNumber: 1, Body: body }))],
          ['UploadPartCopy', () => plainHttp.send(new UploadPartCopyCommand({ Bucket: enc, Key: 'mp', UploadId: upload.UploadId, PartNumber: 1, CopySource: `${plain}/public` }))],
          ['CopyObject out of an encrypted object', () => plainHttp.send(new CopyObjectCommand({ Bucket: plain, Key: 'k', CopySource: `${enc}/secret` }))],
          ['CopyObject into an encrypted bucket', () => plainHttp.send(new CopyObjectCommand({ Bucket: enc, Key: 'k', CopySource: `${plain}/public` }))],
        ]
        for (const [op, call] of refusals) {
          const err = await call().then(() => undefined, (e) => e as { Code?: string; message?: string; $metadata?: { httpStatusCode?: number } })
          expect(err, `${op} over HTTP must be refused`).toBeDefined()
          expect(err!.$metadata?.httpStatusCode, op).toBe(400)
          expect(err!.Code, op).toBe('InvalidArgument')
          expect(err!.message, op).toBe(INSECURE)
        }
        expect(await errorCode(s3.send(new HeadObjectCommand({ Bucket: enc, Key: 'k' })))).toBe('NotFound')
      })

      it('everything else still works over HTTP', async () => {
        const enc = await bucket(true)
        const plain = await bucket(false)
        const body = data(PLAIN_MARKER, 100)
        await plainHttp.send(new PutObjectCommand({ Bucket: plain, Key: 'k', Body: body }))
        expect((await read(plainHttp, plain, 'k')).equals(body)).toBe(true)
        await s3.send(new PutObjectCommand({ Bucket: enc, Key: 'secret', Body: data(ENC_MARKER, 100) }))
        // HEAD moves no object data; bucket operations carry none.
        expect((await plainHttp.send(new HeadObjectCommand({ Bucket: enc, Key: 'secret' }))).ServerSideEncryption).toBe('aws:kms')
        expect((await plainHttp.send(new GetBucketEncryptionCommand({ Bucket: enc }))).ServerSideEncryptionConfiguration?.Rules?.length).toBe(1)
      })

      it('SigV2: oss mode refuses it alike for every object; aws mode verifies it, then refuses it only for SSE-KMS data', async () => {
        const enc = await bucket(true)
        const plain = await bucket(false)
        await s3.send(new PutObjectCommand({ Bucket: enc, Key: 'secret', Body: data(ENC_MARKER, 100) }))
        const forged = { authorization: `AWS ${ROOT_KEY}:c2lnbmF0dXJlLW9mLXNvbWUta2luZA==`, date: new Date().toUTCString() }
        const v2 = (method: string, path: string) => sigV2Headers(method, path)
        if (mode === 'oss') {
          // No SigV2 verifier: whether the object exists or is encrypted must not change the
          // answer (issue 10: an unauthenticated existence-and-encryption oracle).
          const answers = [
            await rawRequest(server, { method: 'PUT', path: `/${enc}/v2`, headers: { ...v2('PUT', `/${enc}/v2`), 'content-length': '5' }, body: 'hello' }),
            await rawRequest(server, { method: 'GET', path: `/${enc}/secret`, headers: v2('GET', `/${enc}/secret`) }),
            await rawRequest(server, { method: 'GET', path: `/${enc}/secret`, headers: forged }),
            await rawRequest(server, { method: 'GET', path: `/${enc}/secret?AWSAccessKeyId=${ROOT_KEY}&Expires=9999999999&Signature=abc` }),
            await rawRequest(server, { method: 'PUT', path: `/${plain}/v2`, headers: { ...v2('PUT', `/${plain}/v2`), 'content-length': '5' }, body: 'hello' }),
            await rawRequest(server, { method: 'GET', path: `/${enc}/secret`, headers: v2('GET', `/${enc}/secret`), plain: true }),
          ]
          for (const res of answers) {
            expect([res.status, xmlCode(res)]).toEqual([400, 'InvalidRequest'])
            expect(res.body.toString()).toMatch(/Please use AWS4-HMAC-SHA256/)
            expect(res.body.toString()).not.toContain(NOT_V4)
          }
          return
        }
        // aws mode: a forged signature learns nothing; a valid one is refused for encrypted data only.
        const forgedGet = await rawRequest(server, { method: 'GET', path: `/${enc}/secret`, headers: forged })
        expect([forgedGet.status, xmlCode(forgedGet)]).toEqual([403, 'SignatureDoesNotMatch'])
        const presignedV2 = await rawRequest(server, { method: 'GET', path: `/${enc}/secret?AWSAccessKeyId=${ROOT_KEY}&Expires=9999999999&Signature=abc` })
        expect([presignedV2.status, xmlCode(presignedV2)]).toEqual([403, 'SignatureDoesNotMatch'])
        const put = await rawRequest(server, { method: 'PUT', path: `/${enc}/v2`, headers: { ...v2('PUT', `/${enc}/v2`), 'content-length': '5' }, body: 'hello' })
        expect([put.status, xmlCode(put)]).toEqual([400, 'InvalidArgument'])
        expect(put.body.toString()).toContain(NOT_V4)
        const get = await rawRequest(server, { method: 'GET', path: `/${enc}/secret`, headers: v2('GET', `/${enc}/secret`) })
        expect([get.status, xmlCode(get)]).toEqual([400, 'InvalidArgument'])
        expect(get.body.toString()).toContain(NOT_V4)
        const other = await rawRequest(server, { method: 'PUT', path: `/${plain}/v2`, headers: { ...v2('PUT', `/${plain}/v2`), 'content-length': '5' }, body: 'hello' })
        expect(other.status).toBe(200)
        expect((await read(s3, plain, 'v2')).toString()).toBe('hello')
        // Over HTTP the connection is the first complaint about a (validly signed) request for encrypted data.
        const both = await rawRequest(server, { method: 'GET', path: `/${enc}/secret`, headers: v2('GET', `/${enc}/secret`), plain: true })
        expect(both.body.toString()).toContain(INSECURE)
      })
    })

    if (mode === 'oss') {
      describe('oss mode: only bucket-level encryption, with the service key', () => {
        it('refuses AES256 and customer master keys in the configuration, with a clear 400', async () => {
          const b = await bucket(false)
          const aes = s3.send(new PutBucketEncryptionCommand({ Bucket: b, ServerSideEncryptionConfiguration: { Rules: [{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] } }))
          await expect(aes).rejects.toMatchObject({ Code: 'InvalidArgument', message: expect.stringMatching(/AES256 is not supported/) })
          const cmk = s3.send(new PutBucketEncryptionCommand({ Bucket: b, ServerSideEncryptionConfiguration: { Rules: [{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms', KMSMasterKeyID: 'alias/mine' } }] } }))
          await expect(cmk).rejects.toMatchObject({ Code: 'InvalidArgument', message: expect.stringMatching(/customer master keys are not offered/) })
        })

        it('an x-amz-server-side-encryption header on a write changes nothing; the response says what happened', async () => {
          const plain = await bucket(false)
          const enc = await bucket(true)
          const asked = await s3.send(new PutObjectCommand({ Bucket: plain, Key: 'asked', Body: data(PLAIN_MARKER, 10), ServerSideEncryption: 'aws:kms' }))
          expect(asked.ServerSideEncryption).toBeUndefined()
          expect(await sse(s3, plain, 'asked')).toBeUndefined()
          const other = await s3.send(new PutObjectCommand({ Bucket: enc, Key: 'aes', Body: data(ENC_MARKER, 10), ServerSideEncryption: 'AES256' }))
          expect(other.ServerSideEncryption).toBe('aws:kms')
          const mp = await s3.send(new CreateMultipartUploadCommand({ Bucket: plain, Key: 'mp', ServerSideEncryption: 'aws:kms' }))
          expect(mp.ServerSideEncryption).toBeUndefined()
          const copy = await s3.send(new CopyObjectCommand({ Bucket: plain, Key: 'copied', CopySource: `${plain}/asked`, ServerSideEncryption: 'aws:kms' }))
          expect(copy.ServerSideEncryption).toBeUndefined()
        })

        it('the first encrypted write in a bucket creates its service key in the KMS', async () => {
          const b = await bucket(true)
          const listBefore = await runCli(['kms', 'list', '--data-dir', server.dataDir, '--json'])
          expect(listBefore.stdout).not.toContain(`s3-sse/bucket/${b}`)
          await s3.send(new PutObjectCommand({ Bucket: b, Key: 'first', Body: data(ENC_MARKER, 10) }))
          await s3.send(new PutObjectCommand({ Bucket: b, Key: 'second', Body: data(ENC_MARKER, 10) }))
          const listAfter = await runCli(['kms', 'list', '--data-dir', server.dataDir, '--json'])
          expect(listAfter.code, listAfter.stderr).toBe(0)
          const keys = JSON.parse(listAfter.stdout) as Array<{ alias?: string; aliases?: string[] }>
          const named = keys.filter((k) => (k.alias ?? '').includes(`bucket/${b}`) || (k.aliases ?? []).some((a) => a.includes(`bucket/${b}`)))
          expect(named).toHaveLength(1)
        })
      })
    } else {
      describe('aws mode: Amazon S3 semantics', () => {
        it('AES256 (SSE-S3) as the bucket default', async () => {
          const b = await bucket(false)
          await s3.send(new PutBucketEncryptionCommand({ Bucket: b, ServerSideEncryptionConfiguration: { Rules: [{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] } }))
          const put = await s3.send(new PutObjectCommand({ Bucket: b, Key: 's3-managed', Body: data(ENC_MARKER, 100) }))
          expect(put.ServerSideEncryption).toBe('AES256')
          expect(put.SSEKMSKeyId).toBeUndefined()
          expect(await sse(s3, b, 's3-managed')).toBe('AES256')
          // SSE-S3 is not KMS data: it may move over HTTP as on Amazon S3.
          const body = data(ENC_MARKER, 50)
          await plainHttp.send(new PutObjectCommand({ Bucket: b, Key: 'over-http', Body: body }))
          expect((await read(plainHttp, b, 'over-http')).equals(body)).toBe(true)
        })

        it('a named KMS key must exist at PUT time and is reported with aws:kms', async () => {
          const b = await bucket(false)
          const missing = s3.send(new PutBucketEncryptionCommand({ Bucket: b, ServerSideEncryptionConfiguration: { Rules: [{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms', KMSMasterKeyID: 'alias/no-such-key' } }] } }))
          await expect(missing).rejects.toMatchObject({ Code: 'InvalidArgument', message: expect.stringMatching(/does not exist/) })
          const created = await runCli(['kms', 'create', '--data-dir', server.dataDir, '--alias', 'team', '--json'])
          expect(created.code, created.stderr).toBe(0)
          const keyId = (JSON.parse(created.stdout) as { keyId: string }).keyId
          await s3.send(new PutBucketEncryptionCommand({ Bucket: b, ServerSideEncryptionConfiguration: { Rules: [{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms', KMSMasterKeyID: 'alias/team' } }] } }))
          const put = await s3.send(new PutObjectCommand({ Bucket: b, Key: 'team', Body: data(ENC_MARKER, 100) }))
          expect(put.ServerSideEncryption).toBe('aws:kms')
          // Named the way the configuration named it (issue 12 item 8), not by the internal id.
          expect(put.SSEKMSKeyId).toBe('alias/team')
          const head = await s3.send(new HeadObjectCommand({ Bucket: b, Key: 'team' }))
          expect(head.SSEKMSKeyId).toBe('alias/team')
          expect(head.SSEKMSKeyId).not.toBe(keyId)
        })

        it('request headers override the bucket default', async () => {
          const plain = await bucket(false)
          const enc = await bucket(true)
          const asked = await s3.send(new PutObjectCommand({ Bucket: plain, Key: 'asked', Body: data(ENC_MARKER, 10), ServerSideEncryption: 'aws:kms' }))
          expect(asked.ServerSideEncryption).toBe('aws:kms')
          expect(asked.SSEKMSKeyId).toBeTruthy()
          const aes = await s3.send(new PutObjectCommand({ Bucket: enc, Key: 'aes', Body: data(ENC_MARKER, 10), ServerSideEncryption: 'AES256' }))
          expect(aes.ServerSideEncryption).toBe('AES256')
          const ctx = Buffer.from(JSON.stringify({ project: 'apollo' })).toString('base64')
          const withCtx = await s3.send(new PutObjectCommand({ Bucket: plain, Key: 'ctx', Body: data(ENC_MARKER, 10), ServerSideEncryption: 'aws:kms', SSEKMSEncryptionContext: ctx }))
          expect(withCtx.ServerSideEncryption).toBe('aws:kms')
          expect((await read(s3, plain, 'ctx')).length).toBe(10)
          const mp = await s3.send(new CreateMultipartUploadCommand({ Bucket: plain, Key: 'mp', ServerSideEncryption: 'aws:kms' }))
          expect(mp.ServerSideEncryption).toBe('aws:kms')
          const copy = await s3.send(new CopyObjectCommand({ Bucket: plain, Key: 'copy', CopySource: `${plain}/asked`, ServerSideEncryption: 'AES256' }))
          expect(copy.ServerSideEncryption).toBe('AES256')
        })

        it('BucketKeyEnabled uses bucket keys and is reported back', async () => {
          const b = await bucket(false)
          await s3.send(new PutBucketEncryptionCommand({ Bucket: b, ServerSideEncryptionConfiguration: { Rules: [{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms' }, BucketKeyEnabled: true }] } }))
          const body = data(ENC_MARKER, 100)
          const put = await s3.send(new PutObjectCommand({ Bucket: b, Key: 'bk', Body: body }))
          expect(put.BucketKeyEnabled).toBe(true)
          const head = await s3.send(new HeadObjectCommand({ Bucket: b, Key: 'bk' }))
          expect(head.BucketKeyEnabled).toBe(true)
          expect((await read(s3, b, 'bk')).equals(body)).toBe(true)
        })

        it('conflicting or malformed SSE headers are 400 InvalidArgument; SSE headers on GET/HEAD are 400', async () => {
          const b = await bucket(false)
          const raw = async (headers: Record<string, string>) => {
            const body = Buffer.from('x')
            const signed = await signRequest(server, { method: 'PUT', path: `/${b}/bad`, body, payloadHash: createHash('sha256').update(body).digest('hex'), headers: { 'content-length': '1', ...headers } })
            return rawRequest(server, { method: 'PUT', path: `/${b}/bad`, headers: signed, body })
          }
          const conflicting: Array<Record<string, string>> = [
            { 'x-amz-server-side-encryption-aws-kms-key-id': 'k' },
            { 'x-amz-server-side-encryption': 'aes:kms' },
            { 'x-amz-server-side-encryption': 'aws:kms', 'x-amz-server-side-encryption-customer-algorithm': 'AES256' },
            { 'x-amz-server-side-encryption': 'AES256', 'x-amz-server-side-encryption-aws-kms-key-id': 'k' },
          ]
          for (const headers of conflicting) {
            const res = await raw(headers)
            expect([res.status, xmlCode(res)], JSON.stringify(headers)).toEqual([400, 'InvalidArgument'])
          }
          await s3.send(new PutObjectCommand({ Bucket: b, Key: 'readable', Body: data(ENC_MARKER, 10), ServerSideEncryption: 'aws:kms' }))
          const path = `/${b}/readable`
          for (const method of ['GET', 'HEAD']) {
            const signed = await signRequest(server, { method, path, payloadHash: 'UNSIGNED-PAYLOAD', headers: { 'x-amz-server-side-encryption': 'aws:kms' } })
            const res = await rawRequest(server, { method, path, headers: signed })
            expect(res.status, method).toBe(400)
          }
        })
      })
    }

    it('leaves no trace of encrypted plaintext anywhere under the data dir; the plain control shows', async () => {
      // Flush the WAL too: a read of every file must find the control's marker in the objects.
      let sawPlain = false
      for (const file of allFiles(server.dataDir)) {
        const bytes = readFileSync(file)
        expect(bytes.includes(ENC_MARKER), `${file} contains encrypted plaintext`).toBe(false)
        if (bytes.includes(PLAIN_MARKER)) sawPlain = true
      }
      expect(sawPlain).toBe(true)
    })
  })
}
