/**
 * Bucket replication end to end: the real server process, @aws-sdk/client-s3 over HTTPS,
 * the embedded KMS. The point (the product brief): replicas in a target bucket with default
 * encryption are encrypted, whether or not the source object was.
 *
 * Where a test must see a write still PENDING, its destination bucket is deleted first: the
 * worker cannot finish until the test creates it again. Waiting is polling with a timeout.
 */
import { createHash, randomBytes } from 'node:crypto'
import { readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteBucketCommand,
  DeleteBucketReplicationCommand,
  DeleteObjectCommand,
  GetBucketReplicationCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListBucketsCommand,
  PutBucketEncryptionCommand,
  PutBucketReplicationCommand,
  PutObjectCommand,
  UploadPartCommand,
  type HeadObjectCommandOutput,
  type ReplicationRule,
  type S3Client,
} from '@aws-sdk/client-s3'
import { createPresignedPost } from '@aws-sdk/s3-presigned-post'
import {
  errorCode,
  postForm,
  rawRequest,
  removeDir,
  runCli,
  signRequest,
  startServer,
  stopAll,
  tempDir,
  xmlCode,
  type TestServer,
  allFiles,
} from './helpers.js'

const MiB = 1024 * 1024
const ROLE = 'arn:aws:iam::000000000000:role/replication'
const KMS_RULE = { Rules: [{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms' as const } }] }

/** Random bytes with `marker` at the start and every 64 KiB. */
function data(marker: string, size = 200_000): Buffer {
  const b = randomBytes(size)
  for (let off = 0; off + marker.length <= size; off += 65536) b.write(marker, off, 'latin1')
  return b
}

const newMarker = () => 'MARK-' + randomBytes(12).toString('hex')
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex')

async function read(s3: S3Client, Bucket: string, Key: string, PartNumber?: number): Promise<Buffer> {
  const out = await s3.send(new GetObjectCommand({ Bucket, Key, PartNumber }))
  return Buffer.from(await out.Body!.transformToByteArray())
}

const head = (s3: S3Client, Bucket: string, Key: string) => s3.send(new HeadObjectCommand({ Bucket, Key, ChecksumMode: 'ENABLED' }))

/** Polls `probe` until it returns a value (not undefined), or fails after `timeoutMs`. */
async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  for (;;) {
    try {
      const v = await probe()
      if (v !== undefined) return v
    } catch (err) {
      last = err
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

/** Waits for the source's x-amz-replication-status to become `status`. */
function waitForStatus(s3: S3Client, Bucket: string, Key: string, status: string, timeoutMs?: number): Promise<HeadObjectCommandOutput> {
  return waitFor(`${Bucket}/${Key} to be ${status}`, async () => {
    const h = await head(s3, Bucket, Key)
    return h.ReplicationStatus === status ? h : undefined
  }, timeoutMs)
}

/** The stored files of an object, from the server's metadata (read-only, WAL readers never block it). */
function objectFiles(server: TestServer, bucket: string, key: string): string[] {
  const db = new Database(join(server.dataDir, 'meta.sqlite'), { readonly: true, fileMustExist: true })
  try {
    const row = db.prepare('SELECT files FROM objects WHERE bucket = ? AND key = ?').get(bucket, key) as { files: string } | undefined
    if (!row) throw new Error(`no row for ${bucket}/${key}`)
    return (JSON.parse(row.files) as string[]).map((id) => join(server.dataDir, 'objects', id.slice(0, 2), id))
  } finally {
    db.close()
  }
}

/** Every file under the data dir (objects, SQLite and its WAL, keyring, tmp) that contains `marker`. */
function filesContaining(dataDir: string, marker: string): string[] {
  const needle = Buffer.from(marker, 'latin1')
  return allFiles(dataDir).filter((f) => readFileSync(f).includes(needle)).sort()
}

async function metric(server: TestServer, name: string): Promise<number> {
  const res = await rawRequest(server, { method: 'GET', path: '/-/metrics' })
  const m = new RegExp(`^${name.replace(/[{}"]/g, '\\$&')} (\\d+)$`, 'm').exec(res.body.toString())
  if (!m) throw new Error(`${name} not in /-/metrics`)
  return Number(m[1])
}

function rule(id: string, priority: number, prefix: string, destination: string, status: 'Enabled' | 'Disabled' = 'Enabled'): ReplicationRule {
  return {
    ID: id,
    Priority: priority,
    Filter: { Prefix: prefix },
    Status: status,
    DeleteMarkerReplication: { Status: 'Disabled' },
    Destination: { Bucket: `arn:aws:s3:::${destination}` },
  }
}

async function replicate(s3: S3Client, source: string, rules: ReplicationRule[]): Promise<void> {
  await s3.send(new PutBucketReplicationCommand({ Bucket: source, ReplicationConfiguration: { Role: ROLE, Rules: rules } }))
}

/** An S3 error from the SDK: code, HTTP status and message. */
async function failure(p: Promise<unknown>): Promise<{ code?: string; status?: number; message: string }> {
  try {
    await p
  } catch (err) {
    const e = err as { Code?: string; name?: string; message: string; $metadata?: { httpStatusCode?: number } }
    return { code: e.Code ?? e.name, status: e.$metadata?.httpStatusCode, message: e.message }
  }
  throw new Error('expected the request to fail')
}

describe('bucket replication (oss mode)', () => {
  let server: TestServer
  let s3: S3Client
  let n = 0
  const bucket = async (encrypted: boolean, name = `repl-${++n}-${encrypted ? 'enc' : 'plain'}`) => {
    await s3.send(new CreateBucketCommand({ Bucket: name }))
    if (encrypted) await s3.send(new PutBucketEncryptionCommand({ Bucket: name, ServerSideEncryptionConfiguration: KMS_RULE }))
    return name
  }

  let mallory: S3Client | undefined
  /** A second user, made once and only when a test needs one. */
  const otherUser = async () => {
    if (mallory) return mallory
    const added = await runCli(['user', 'add', 'mallory', '--data-dir', server.dataDir])
    expect(added.code, added.stderr).toBe(0)
    const client = server.client({
      accessKeyId: /access key:\s*(\S+)/.exec(added.stdout)![1],
      secretAccessKey: /secret key:\s*(\S+)/.exec(added.stdout)![1],
    })
    await waitFor('the new user to be known', async () => (await client.send(new ListBucketsCommand({}))) ?? undefined)
    return (mallory = client)
  }

  beforeAll(async () => {
    server = await startServer({ args: ['--replication-backoff-ms', '100'] })
    s3 = server.client()
  })

  afterAll(async () => {
    await stopAll()
    removeDir(server.dataDir)
  })

  describe('the ?replication API', () => {
    it('GET when unset is 404 ReplicationConfigurationNotFoundError; PUT stores it, GET returns it, DELETE (204) removes it', async () => {
      const src = await bucket(false)
      const dst = await bucket(false)
      const unset = await failure(s3.send(new GetBucketReplicationCommand({ Bucket: src })))
      expect([unset.code, unset.status]).toEqual(['ReplicationConfigurationNotFoundError', 404])
      expect((await s3.send(new DeleteBucketReplicationCommand({ Bucket: src }))).$metadata.httpStatusCode).toBe(204)

      const rules: ReplicationRule[] = [
        { ...rule('logs', 2, 'logs/', dst), Destination: { Bucket: `arn:aws:s3:::${dst}`, StorageClass: 'STANDARD_IA' } },
        { ID: 'all', Priority: 1, Filter: { And: { Prefix: 'a/' } }, Status: 'Disabled', Destination: { Bucket: `arn:aws:s3:::${dst}` },
          SourceSelectionCriteria: { SseKmsEncryptedObjects: { Status: 'Enabled' } } },
      ]
      const put = await s3.send(new PutBucketReplicationCommand({ Bucket: src, ReplicationConfiguration: { Role: ROLE, Rules: rules } }))
      expect(put.$metadata.httpStatusCode).toBe(200)
      const got = await s3.send(new GetBucketReplicationCommand({ Bucket: src }))
      expect(got.ReplicationConfiguration?.Role).toBe(ROLE)
      expect(got.ReplicationConfiguration?.Rules).toEqual(rules)

      expect((await s3.send(new DeleteBucketReplicationCommand({ Bucket: src }))).$metadata.httpStatusCode).toBe(204)
      expect(await errorCode(s3.send(new GetBucketReplicationCommand({ Bucket: src })))).toBe('ReplicationConfigurationNotFoundError')
    })

    it('every invalid configuration gets its S3 error, says which, and leaves the stored one as it was', async () => {
      const src = await bucket(false)
      const dst = await bucket(false)
      await replicate(s3, src, [rule('kept', 1, '', dst)])
      const cases: Array<[string, ReplicationRule[], string, number, RegExp]> = [
        ['missing destination', [rule('r', 1, '', 'no-such-bucket-here')], 'InvalidRequest', 400, /Destination bucket must exist.*no-such-bucket-here/],
        ['destination = source', [rule('r', 1, '', src)], 'InvalidRequest', 400, /must not be the source bucket/],
        ['duplicate IDs', [rule('twice', 1, 'a', dst), rule('twice', 2, 'b', dst)], 'InvalidArgument', 400, /ID must be unique: "twice"/],
        ['duplicate priorities', [rule('a', 4, 'a', dst), rule('b', 4, 'b', dst)], 'InvalidArgument', 400, /same Priority 4/],
        ['not an ARN', [{ ...rule('r', 1, '', dst), Destination: { Bucket: dst } }], 'InvalidArgument', 400, /arn:aws:s3:::BUCKET-NAME/],
        ['another region/account ARN', [{ ...rule('r', 1, '', dst), Destination: { Bucket: `arn:aws:s3:us-west-2:123456789012:${dst}` } }], 'InvalidArgument', 400, /a bucket on this server/],
        ['1001 rules', Array.from({ length: 1001 }, (_, i) => rule(`r${i}`, i, `p${i}/`, dst)), 'InvalidArgument', 400, /at most 1000 rules/],
        ['tag filter', [{ ...rule('r', 1, '', dst), Filter: { Tag: { Key: 'k', Value: 'v' } } }], 'NotImplemented', 501, /object tags/],
        ['delete markers', [{ ...rule('r', 1, '', dst), DeleteMarkerReplication: { Status: 'Enabled' } }], 'NotImplemented', 501, /deletes are not replicated/],
      ]
      for (const [what, rules, code, status, message] of cases) {
        const e = await failure(replicate(s3, src, rules))
        expect([e.code, e.status], what).toEqual([code, status])
        expect(e.message, what).toMatch(message)
      }
      expect((await failure(replicate(s3, 'no-such-source', [rule('r', 1, '', dst)]))).code).toBe('NoSuchBucket')

      // What SDKs never send: broken XML, and a body without an integrity check.
      const signedPut = async (body: Buffer, md5: boolean) => {
        const path = `/${src}?replication`
        const headers = await signRequest(server, {
          method: 'PUT', path, body, payloadHash: sha256(body),
          headers: { 'content-length': String(body.length), ...(md5 ? { 'content-md5': createHash('md5').update(body).digest('base64') } : {}) },
        })
        return rawRequest(server, { method: 'PUT', path, headers, body })
      }
      for (const xml of ['<ReplicationConfiguration><Rule>', '<Replication/>', '<ReplicationConfiguration><Rule><ID>x</ID></Rule></ReplicationConfiguration>']) {
        const res = await signedPut(Buffer.from(xml), true)
        expect([res.status, xmlCode(res)], xml).toEqual([400, 'MalformedXML'])
      }
      const good = Buffer.from(`<ReplicationConfiguration><Rule><ID>x</ID><Prefix></Prefix><Status>Enabled</Status><Destination><Bucket>arn:aws:s3:::${dst}</Bucket></Destination></Rule></ReplicationConfiguration>`)
      const noDigest = await signedPut(good, false)
      expect([noDigest.status, xmlCode(noDigest)]).toEqual([400, 'InvalidRequest'])
      expect(noDigest.body.toString()).toMatch(/Content-MD5/)

      const still = await s3.send(new GetBucketReplicationCommand({ Bucket: src }))
      expect(still.ReplicationConfiguration?.Rules?.map((r) => r.ID)).toEqual(['kept'])
    })

    it("a user may not replicate into a bucket they do not own, nor read or change another's configuration", async () => {
      const mallory = await otherUser()
      const rootOwned = await bucket(false)
      const mine = 'mallory-src'
      await mallory.send(new CreateBucketCommand({ Bucket: mine }))
      const e = await failure(replicate(mallory, mine, [rule('steal', 1, '', rootOwned)]))
      expect([e.code, e.status]).toEqual(['AccessDenied', 403])
      expect(e.message).toMatch(new RegExp(`do not own the destination bucket ${rootOwned}`))
      expect(await errorCode(mallory.send(new GetBucketReplicationCommand({ Bucket: mine })))).toBe('ReplicationConfigurationNotFoundError')
      expect(await errorCode(mallory.send(new GetBucketReplicationCommand({ Bucket: rootOwned })))).toBe('AccessDenied')
      expect(await errorCode(mallory.send(new DeleteBucketReplicationCommand({ Bucket: rootOwned })))).toBe('AccessDenied')
    })

    it('a destination deleted and re-created by another user gets no replicas: the write is FAILED at once', async () => {
      const mallory = await otherUser()
      const src = await bucket(false)
      const dst = await bucket(false)
      await replicate(s3, src, [rule('all', 1, '', dst)])
      await s3.send(new DeleteBucketCommand({ Bucket: dst }))
      await mallory.send(new CreateBucketCommand({ Bucket: dst }))
      await s3.send(new PutObjectCommand({ Bucket: src, Key: 'private', Body: 'not for mallory' }))
      await waitForStatus(s3, src, 'private', 'FAILED')
      // The log line reaches this process through a pipe, possibly after the status is visible.
      const logged = new RegExp(`${src}/private to ${dst} FAILED after 1 attempt: the destination bucket ${dst} no longer belongs to the owner`)
      for (let i = 0; i < 50 && !logged.test(server.output()); i++) await new Promise((r) => setTimeout(r, 100))
      expect(server.output()).toMatch(logged)
      expect(await errorCode(head(mallory, dst, 'private'))).toBe('NotFound')
    })
  })

  describe('replicas and encryption', () => {
    it('a plaintext source into an encrypted target: the replica is SSE-KMS, REPLICA, byte-equal, with metadata and checksum; its plaintext is nowhere on disk but in the source', async () => {
      const src = await bucket(false)
      const dst = await bucket(true)
      await replicate(s3, src, [rule('all', 1, '', dst)])
      const marker = newMarker()
      const body = data(marker)
      const put = await s3.send(new PutObjectCommand({
        Bucket: src, Key: 'docs/report.bin', Body: body, ContentType: 'application/x-report', CacheControl: 'no-cache',
        Metadata: { owner: 'finance' }, ChecksumAlgorithm: 'SHA256',
      }))
      expect(put.ServerSideEncryption).toBeUndefined()
      const first = await head(s3, src, 'docs/report.bin')
      expect(['PENDING', 'COMPLETED']).toContain(first.ReplicationStatus)
      const done = await waitForStatus(s3, src, 'docs/report.bin', 'COMPLETED')
      expect(done.ServerSideEncryption).toBeUndefined()

      const replica = await head(s3, dst, 'docs/report.bin')
      expect(replica.ReplicationStatus).toBe('REPLICA')
      expect(replica.ServerSideEncryption).toBe('aws:kms')
      expect(replica.ContentType).toBe('application/x-report')
      expect(replica.CacheControl).toBe('no-cache')
      expect(replica.Metadata).toEqual({ owner: 'finance' })
      expect(replica.ChecksumSHA256).toBe(put.ChecksumSHA256)
      expect(replica.ContentLength).toBe(body.length)
      expect(replica.LastModified).toEqual(done.LastModified)
      // An encrypted object's ETag is not the MD5 of its data.
      expect(replica.ETag).not.toBe(put.ETag)
      expect(sha256(await read(s3, dst, 'docs/report.bin'))).toBe(sha256(body))

      const [sourceFile] = objectFiles(server, src, 'docs/report.bin')
      const [replicaFile] = objectFiles(server, dst, 'docs/report.bin')
      expect(statSync(replicaFile).ino).not.toBe(statSync(sourceFile).ino)
      expect(filesContaining(server.dataDir, marker)).toEqual([sourceFile])
    })

    it('an encrypted source into an encrypted target: the data key is re-wrapped and the sealed file hard-linked, not re-encrypted', async () => {
      const src = await bucket(true)
      const dst = await bucket(true)
      await replicate(s3, src, [rule('all', 1, '', dst)])
      const marker = newMarker()
      const body = data(marker)
      await s3.send(new PutObjectCommand({ Bucket: src, Key: 'k', Body: body, Metadata: { a: 'b' } }))
      await waitForStatus(s3, src, 'k', 'COMPLETED')
      const replica = await head(s3, dst, 'k')
      expect([replica.ReplicationStatus, replica.ServerSideEncryption]).toEqual(['REPLICA', 'aws:kms'])
      expect(replica.Metadata).toEqual({ a: 'b' })
      expect(sha256(await read(s3, dst, 'k'))).toBe(sha256(body))
      const [sourceFile] = objectFiles(server, src, 'k')
      const [replicaFile] = objectFiles(server, dst, 'k')
      expect(replicaFile).not.toBe(sourceFile)
      expect(statSync(replicaFile).ino).toBe(statSync(sourceFile).ino)
      expect(statSync(replicaFile).nlink).toBe(2)
      expect(filesContaining(server.dataDir, marker)).toEqual([])
    })

    it("an encrypted source into a plaintext target: the replica stays encrypted, under the target's own service key", async () => {
      const src = await bucket(true)
      const dst = await bucket(false)
      await replicate(s3, src, [rule('all', 1, '', dst)])
      const marker = newMarker()
      const body = data(marker)
      await s3.send(new PutObjectCommand({ Bucket: src, Key: 'secret', Body: body }))
      await waitForStatus(s3, src, 'secret', 'COMPLETED')
      const replica = await head(s3, dst, 'secret')
      expect([replica.ReplicationStatus, replica.ServerSideEncryption]).toEqual(['REPLICA', 'aws:kms'])
      expect(sha256(await read(s3, dst, 'secret'))).toBe(sha256(body))
      expect(statSync(objectFiles(server, dst, 'secret')[0]).nlink).toBe(2)
      expect(filesContaining(server.dataDir, marker)).toEqual([])
      const keys = await runCli(['kms', 'list', '--data-dir', server.dataDir, '--json'])
      expect(keys.code, keys.stderr).toBe(0)
      expect(keys.stdout).toContain(`s3-sse/bucket/${dst}`)
      // A plaintext write into that target is still plaintext: only the replica kept its encryption.
      await s3.send(new PutObjectCommand({ Bucket: dst, Key: 'direct', Body: 'plain' }))
      expect((await head(s3, dst, 'direct')).ServerSideEncryption).toBeUndefined()
    })

    it('a plaintext source into a plaintext target: the same bytes, hard-linked, with the same ETag', async () => {
      const src = await bucket(false)
      const dst = await bucket(false)
      await replicate(s3, src, [rule('all', 1, '', dst)])
      const put = await s3.send(new PutObjectCommand({ Bucket: src, Key: 'p', Body: 'plain text' }))
      await waitForStatus(s3, src, 'p', 'COMPLETED')
      const replica = await head(s3, dst, 'p')
      expect([replica.ReplicationStatus, replica.ServerSideEncryption, replica.ETag]).toEqual(['REPLICA', undefined, put.ETag])
      expect((await read(s3, dst, 'p')).toString()).toBe('plain text')
      expect(statSync(objectFiles(server, dst, 'p')[0]).nlink).toBe(2)
    })

    it('a multipart object keeps its parts and checksum, and is sealed into the encrypted target', async () => {
      const src = await bucket(false)
      const dst = await bucket(true)
      await replicate(s3, src, [rule('all', 1, '', dst)])
      const marker = newMarker()
      const parts = [data(marker, 5 * MiB), data(marker, MiB + 123)]
      const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: src, Key: 'big', ChecksumAlgorithm: 'CRC32', ContentType: 'video/mp4' }))
      const uploaded = []
      for (const [i, Body] of parts.entries()) {
        const r = await s3.send(new UploadPartCommand({ Bucket: src, Key: 'big', UploadId, PartNumber: i + 1, Body, ChecksumAlgorithm: 'CRC32' }))
        uploaded.push({ PartNumber: i + 1, ETag: r.ETag, ChecksumCRC32: r.ChecksumCRC32 })
      }
      const done = await s3.send(new CompleteMultipartUploadCommand({ Bucket: src, Key: 'big', UploadId, MultipartUpload: { Parts: uploaded } }))
      await waitForStatus(s3, src, 'big', 'COMPLETED')
      const replica = await head(s3, dst, 'big')
      expect([replica.ReplicationStatus, replica.ServerSideEncryption, replica.ContentType]).toEqual(['REPLICA', 'aws:kms', 'video/mp4'])
      expect(replica.ChecksumCRC32).toBe(done.ChecksumCRC32)
      expect(replica.ETag).toMatch(/^"[0-9a-f]{32}-2"$/)
      expect(replica.ETag).not.toBe(done.ETag)
      expect(sha256(await read(s3, dst, 'big'))).toBe(sha256(Buffer.concat(parts)))
      expect(sha256(await read(s3, dst, 'big', 2))).toBe(sha256(parts[1]))
      expect(filesContaining(server.dataDir, marker)).toEqual(objectFiles(server, src, 'big').sort())
    })
  })

  describe('which writes are replicated, and when', () => {
    it('prefix filters and priorities choose the destination; Disabled rules and unmatched keys replicate nowhere', async () => {
      const src = await bucket(false)
      const general = await bucket(false)
      const important = await bucket(true)
      await replicate(s3, src, [
        rule('logs', 1, 'logs/', general),
        rule('important', 5, 'logs/important/', important),
        rule('paused', 9, 'logs/paused/', important, 'Disabled'),
      ])
      const keys = ['logs/a', 'logs/important/b', 'logs/paused/c', 'other/d']
      for (const Key of keys) await s3.send(new PutObjectCommand({ Bucket: src, Key, Body: Key }))
      await waitForStatus(s3, src, 'logs/a', 'COMPLETED')
      await waitForStatus(s3, src, 'logs/important/b', 'COMPLETED')
      await waitForStatus(s3, src, 'logs/paused/c', 'COMPLETED') // the Disabled rule is skipped: 'logs' applies
      expect((await head(s3, src, 'other/d')).ReplicationStatus).toBeUndefined()
      expect((await read(s3, general, 'logs/a')).toString()).toBe('logs/a')
      expect((await read(s3, general, 'logs/paused/c')).toString()).toBe('logs/paused/c')
      expect(await errorCode(head(s3, general, 'logs/important/b'))).toBe('NotFound')
      expect((await head(s3, important, 'logs/important/b')).ServerSideEncryption).toBe('aws:kms')
      for (const b of [general, important]) expect(await errorCode(head(s3, b, 'other/d'))).toBe('NotFound')
      expect(await errorCode(head(s3, important, 'logs/paused/c'))).toBe('NotFound')
    })

    it('CopyObject and PostObject writes, and an empty object, are replicated too', async () => {
      const src = await bucket(false)
      const dst = await bucket(true)
      await replicate(s3, src, [rule('all', 1, '', dst)])
      await s3.send(new PutObjectCommand({ Bucket: src, Key: 'orig', Body: 'original' }))
      await s3.send(new PutObjectCommand({ Bucket: src, Key: 'empty', Body: new Uint8Array(0) }))
      await s3.send(new CopyObjectCommand({ Bucket: src, Key: 'copy', CopySource: `${src}/orig` }))
      const post = await createPresignedPost(s3, { Bucket: src, Key: 'posted', Expires: 300 })
      const form = postForm(post.fields, Buffer.from('from a form'))
      const url = new URL(post.url)
      const res = await rawRequest(server, { method: 'POST', path: url.pathname, headers: { 'content-type': form.contentType }, body: form.body })
      expect(res.status, res.body.toString()).toBe(204)
      for (const [key, text] of [['copy', 'original'], ['posted', 'from a form'], ['empty', '']]) {
        await waitForStatus(s3, src, key, 'COMPLETED')
        expect((await head(s3, dst, key)).ServerSideEncryption).toBe('aws:kms')
        expect((await read(s3, dst, key)).toString()).toBe(text)
      }
    })

    it('a newer write supersedes one still pending; deletes are not replicated; replicas are not replicated again', async () => {
      const src = await bucket(false)
      const dst = await bucket(true)
      const onward = await bucket(false)
      await replicate(s3, src, [rule('all', 1, '', dst)])
      await replicate(s3, dst, [rule('onward', 1, '', onward)])
      // Without its destination the write stays PENDING.
      await s3.send(new DeleteBucketCommand({ Bucket: dst }))
      await s3.send(new PutObjectCommand({ Bucket: src, Key: 'doc', Body: 'version 1' }))
      expect((await head(s3, src, 'doc')).ReplicationStatus).toBe('PENDING')
      await s3.send(new PutObjectCommand({ Bucket: src, Key: 'doc', Body: 'version 2' }))
      expect((await head(s3, src, 'doc')).ReplicationStatus).toBe('PENDING')
      expect(await metric(server, 's3sse_replication_queued')).toBeGreaterThanOrEqual(1)
      await bucket(true, dst)
      await replicate(s3, dst, [rule('onward', 1, '', onward)])
      await waitForStatus(s3, src, 'doc', 'COMPLETED')
      await waitFor('the queue to drain', async () => ((await metric(server, 's3sse_replication_queued')) === 0 ? true : undefined))
      expect((await read(s3, dst, 'doc')).toString()).toBe('version 2')
      expect((await head(s3, dst, 'doc')).ReplicationStatus).toBe('REPLICA')
      expect(await errorCode(head(s3, onward, 'doc'))).toBe('NotFound')

      await s3.send(new DeleteObjectCommand({ Bucket: src, Key: 'doc' }))
      expect(await errorCode(head(s3, src, 'doc'))).toBe('NotFound')
      expect((await read(s3, dst, 'doc')).toString()).toBe('version 2')
    })
  })
})

describe('bucket replication across a restart', () => {
  const dataDir = tempDir('s3sse-repl-restart-')
  afterAll(async () => {
    await stopAll()
    removeDir(dataDir)
  })

  it('writes still pending when the server is killed, or stopped with SIGTERM, are replicated after it starts again', async () => {
    const args = ['--replication-backoff-ms', '100']
    const first = await startServer({ dataDir, args })
    const s3 = first.client()
    await s3.send(new CreateBucketCommand({ Bucket: 'src' }))
    await s3.send(new PutBucketEncryptionCommand({ Bucket: 'src', ServerSideEncryptionConfiguration: KMS_RULE }))
    await s3.send(new CreateBucketCommand({ Bucket: 'dst' }))
    await replicate(s3, 'src', [rule('all', 1, '', 'dst')])
    await s3.send(new DeleteBucketCommand({ Bucket: 'dst' }))
    const bodies = { killed: data(newMarker(), 300_000), stopped: data(newMarker(), 1000) }
    await s3.send(new PutObjectCommand({ Bucket: 'src', Key: 'killed', Body: bodies.killed }))
    expect((await head(s3, 'src', 'killed')).ReplicationStatus).toBe('PENDING')
    // A crash: no chance to finish anything.
    const killed = new Promise((resolve) => first.proc.once('exit', resolve))
    first.proc.kill('SIGKILL')
    await killed

    const second = await startServer({ dataDir, args })
    expect(second.output()).toMatch(/replication: 1 write queued before the last stop, replicating now/)
    const s3b = second.client()
    expect((await head(s3b, 'src', 'killed')).ReplicationStatus).toBe('PENDING')
    await s3b.send(new PutObjectCommand({ Bucket: 'src', Key: 'stopped', Body: bodies.stopped }))
    await waitFor('a failed attempt', async () => (/attempt \d+ failed .*does not exist/.test(second.output()) ? true : undefined))
    expect(await second.stop()).toBe(0)

    const third = await startServer({ dataDir, args })
    expect(third.output()).toMatch(/replication: 2 writes queued before the last stop, replicating now/)
    const s3c = third.client()
    await s3c.send(new CreateBucketCommand({ Bucket: 'dst' }))
    for (const [key, body] of Object.entries(bodies)) {
      await waitForStatus(s3c, 'src', key, 'COMPLETED')
      const replica = await head(s3c, 'dst', key)
      expect([replica.ReplicationStatus, replica.ServerSideEncryption]).toEqual(['REPLICA', 'aws:kms'])
      expect(sha256(await read(s3c, 'dst', key))).toBe(sha256(body))
    }
    expect(await third.stop()).toBe(0)
  })
})

describe('bucket replication, aws mode and failures', () => {
  let server: TestServer
  let s3: S3Client
  beforeAll(async () => {
    server = await startServer({ args: ['--mode', 'aws', '--replication-attempts', '2', '--replication-backoff-ms', '50'] })
    s3 = server.client()
  })
  afterAll(async () => {
    await stopAll()
    removeDir(server.dataDir)
  })

  it('a replica keeps an SSE-S3 (AES256) source encrypted with AES256 in a plaintext target', async () => {
    await s3.send(new CreateBucketCommand({ Bucket: 'aws-src' }))
    await s3.send(new CreateBucketCommand({ Bucket: 'aws-dst' }))
    await replicate(s3, 'aws-src', [rule('all', 1, '', 'aws-dst')])
    await s3.send(new PutObjectCommand({ Bucket: 'aws-src', Key: 'k', Body: 'sse-s3 data', ServerSideEncryption: 'AES256' }))
    await waitForStatus(s3, 'aws-src', 'k', 'COMPLETED')
    const replica = await head(s3, 'aws-dst', 'k')
    expect([replica.ReplicationStatus, replica.ServerSideEncryption]).toEqual(['REPLICA', 'AES256'])
    expect((await read(s3, 'aws-dst', 'k')).toString()).toBe('sse-s3 data')
  })

  it('a write that cannot be replicated in the allowed attempts is FAILED; a later write of the key is tried afresh', async () => {
    await s3.send(new CreateBucketCommand({ Bucket: 'fail-src' }))
    await s3.send(new CreateBucketCommand({ Bucket: 'fail-dst' }))
    await replicate(s3, 'fail-src', [rule('all', 1, '', 'fail-dst')])
    await s3.send(new DeleteBucketCommand({ Bucket: 'fail-dst' }))
    await s3.send(new PutObjectCommand({ Bucket: 'fail-src', Key: 'k', Body: 'one' }))
    await waitForStatus(s3, 'fail-src', 'k', 'FAILED')
    expect(server.output()).toMatch(/replication of fail-src\/k to fail-dst FAILED after 2 attempts: the destination bucket fail-dst does not exist/)
    expect(await metric(server, 's3sse_replication_total{outcome="failed"}')).toBe(1)

    await s3.send(new CreateBucketCommand({ Bucket: 'fail-dst' }))
    await s3.send(new PutObjectCommand({ Bucket: 'fail-src', Key: 'k', Body: 'two' }))
    await waitForStatus(s3, 'fail-src', 'k', 'COMPLETED')
    expect((await read(s3, 'fail-dst', 'k')).toString()).toBe('two')
  })
})
