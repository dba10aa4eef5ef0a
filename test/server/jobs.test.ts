/**
 * Jobs end to end, as an operator runs them: the real server process, `s3-sse job` and
 * `s3-sse kms` as separate processes, objects written and read with the AWS SDK, and the aws CLI.
 *
 * - encrypt while a client overwrites and deletes keys: no overwrite lost, nothing deleted
 *   comes back, every other object encrypted and byte-identical, with its metadata, content
 *   headers, checksum and parts;
 * - a server stopped (SIGTERM) or killed (SIGKILL) mid-job resumes at the next start, each
 *   object counted once;
 * - rewrap to another key, then to a rotated key's current version: the stored blobs stay
 *   byte-identical, the objects readable, `kms usage` shows the old key unused, and it can be
 *   disabled;
 * - scrub finds a corrupted package (key, part, package) and a damaged plaintext object,
 *   `job status --wait` exits 3, and the metric counts them;
 * - the admin API is root-only, SigV4-signed, HTTPS-only;
 * - aws mode: `aws s3 cp s3://b/ s3://b/ --recursive --sse aws:kms` encrypts in place.
 */
import { execFile, spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import Database from 'better-sqlite3'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutBucketEncryptionCommand,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3'
import { Upload } from '@aws-sdk/lib-storage'
import { adminRequest, type AdminConnection } from '../../src/server/admin/client.js'
import { UserStore } from '../../src/server/credentials.js'
import type { JobView } from '../../src/server/jobs/index.js'
import { openEmbeddedKms } from '../../src/keys/index.js'
import type { JobFinding, KeyUsage } from '../../src/server/meta/index.js'
import {
  allFiles, errorCode, rawRequest, removeDir, ROOT, ROOT_KEY, ROOT_SECRET, runCli, signRequest, startServer, stopAll, tempDir, type TestServer,
} from './helpers.js'

const KMS_RULE = { Rules: [{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms' as const } }] }
const ROOT_ENV = { S3SSE_ACCESS_KEY: ROOT_KEY, S3SSE_SECRET_KEY: ROOT_SECRET }
const BOB = { name: 'bob', accessKey: 'BOBJOBSKEY0000000001', secretKey: 'bob-jobs-secret-0123456789abcdef' }

const adminOf = (s: TestServer, accessKey = ROOT_KEY, secretKey = ROOT_SECRET): AdminConnection => ({
  endpoint: new URL(s.httpsUrl), region: 'us-east-1', accessKey, secretKey, ca: s.ca,
})

/** A CLI command on a pseudo-terminal (script(1)), as root: its exit code and everything it drew. */
function onTerminal(s: TestServer, args: string[]): Promise<{ code: number | null; output: string }> {
  const cli = [process.execPath, '--import', 'tsx', join(ROOT, 'test/server/serve-entry.ts'), ...args, '--endpoint', s.httpsUrl, '--data-dir', s.dataDir]
  return new Promise((resolve, reject) => {
    const p = spawn('script', ['-qec', cli.map((a) => `'${a}'`).join(' '), '/dev/null'], { cwd: ROOT, env: { ...process.env, ...ROOT_ENV, COLUMNS: '200' } })
    let output = ''
    p.stdout.on('data', (d) => (output += d))
    p.stderr.on('data', (d) => (output += d))
    p.on('error', reject)
    p.on('exit', (code) => resolve({ code, output }))
  })
}

/** `s3-sse job …` against a server, as root. */
function job(s: TestServer, ...args: string[]) {
  return runCli(['job', ...args, '--endpoint', s.httpsUrl, '--data-dir', s.dataDir, '--poll-ms', '100'], ROOT_ENV)
}

async function jobOf(s: TestServer, id: string): Promise<JobView> {
  return ((await adminRequest(adminOf(s), 'GET', `/jobs/${id}`)) as { job: JobView }).job
}

async function until(s: TestServer, id: string, done: (j: JobView) => boolean, timeoutMs = 30_000): Promise<JobView> {
  const end = Date.now() + timeoutMs
  for (;;) {
    const j = await jobOf(s, id)
    if (done(j)) return j
    if (Date.now() > end) throw new Error(`job ${id} is still ${j.state}: ${JSON.stringify(j.done)}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

/** Buffers compared by digest: a deep equality of megabytes is slow and its diff unreadable. */
const digest = (b: Buffer) => createHash('sha256').update(b).digest('hex')

async function read(s3: S3Client, bucket: string, key: string): Promise<Buffer> {
  const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }))
  return Buffer.from(await got.Body!.transformToByteArray())
}

const keyOf = (i: number) => `obj/${String(i).padStart(4, '0')}`

/** n plaintext objects with metadata and a content type, then default encryption on. */
async function fill(s3: S3Client, bucket: string, n: number, size = (i: number) => 200 + i * 13): Promise<Map<string, Buffer>> {
  await s3.send(new CreateBucketCommand({ Bucket: bucket }))
  const data = new Map<string, Buffer>()
  for (let start = 0; start < n; start += 25) {
    await Promise.all(
      Array.from({ length: Math.min(25, n - start) }, async (_, j) => {
        const i = start + j
        const body = randomBytes(size(i))
        data.set(keyOf(i), body)
        await s3.send(new PutObjectCommand({ Bucket: bucket, Key: keyOf(i), Body: body, ContentType: 'application/x-test', Metadata: { n: String(i) } }))
      }),
    )
  }
  await s3.send(new PutBucketEncryptionCommand({ Bucket: bucket, ServerSideEncryptionConfiguration: KMS_RULE }))
  return data
}

/** sha256 of every stored blob file, by path. */
function blobHashes(dataDir: string): Map<string, string> {
  return new Map(allFiles(join(dataDir, 'objects')).map((f) => [f, createHash('sha256').update(readFileSync(f)).digest('hex')]))
}

/** A row's blob files (the data dir's SQLite, read-only beside the running server). */
function blobPaths(dataDir: string, bucket: string, key: string): string[] {
  const db = new Database(join(dataDir, 'meta.sqlite'), { readonly: true })
  try {
    const row = db.prepare('SELECT files FROM objects WHERE bucket = ? AND key = ?').get(bucket, key) as { files: string }
    return (JSON.parse(row.files) as string[]).map((id) => join(dataDir, 'objects', id.slice(0, 2), id))
  } finally {
    db.close()
  }
}

afterAll(async () => {
  await stopAll()
})

describe('jobs on a running server (oss mode)', () => {
  let server: TestServer
  let s3: S3Client
  const dataDir = tempDir('s3sse-jobs-')

  beforeAll(async () => {
    new UserStore(dataDir).add(BOB.name, { accessKey: BOB.accessKey, secretKey: BOB.secretKey })
    server = await startServer({ dataDir })
    s3 = server.client()
  })

  afterAll(async () => {
    s3?.destroy()
    await server?.stop()
    removeDir(dataDir)
  })

  it('encrypts a bucket while a client overwrites and deletes some of its keys: no write is lost', async () => {
    const data = await fill(s3, 'photos', 100)
    // Written under the default encryption: encrypted already, the job skips it.
    const big = randomBytes(5 * 1024 * 1024 + 3000)
    await new Upload({ client: s3, params: { Bucket: 'photos', Key: 'big', Body: big, ContentType: 'video/x-test' }, partSize: 5 * 1024 * 1024 }).done()
    const before = new Map<string, { checksum?: string; lastModified?: Date }>()
    for (const key of [keyOf(2), keyOf(60)]) {
      const h = await s3.send(new HeadObjectCommand({ Bucket: 'photos', Key: key, ChecksumMode: 'ENABLED' }))
      before.set(key, { checksum: h.ChecksumCRC32, lastModified: h.LastModified })
    }
    const started = await job(server, 'start', 'encrypt', '--bucket', 'photos', '--rate', '20/s', '--json')
    expect(started.code, started.stderr).toBe(0)
    const id = (JSON.parse(started.stdout) as { job: JobView }).job.id
    // While it runs: overwrite 15 keys and delete 5, spread over the key space.
    await until(server, id, (j) => j.done.objects >= 5)
    const overwritten = new Map<string, Buffer>()
    const deleted = new Set<string>()
    for (let round = 0; round < 20; round++) {
      const i = (round * 37 + 11) % 100
      if (round % 4 === 3) {
        await s3.send(new DeleteObjectCommand({ Bucket: 'photos', Key: keyOf(i) }))
        deleted.add(keyOf(i))
        overwritten.delete(keyOf(i))
      } else {
        const body = randomBytes(900)
        await s3.send(new PutObjectCommand({ Bucket: 'photos', Key: keyOf(i), Body: body }))
        overwritten.set(keyOf(i), body)
        deleted.delete(keyOf(i))
      }
      await new Promise((r) => setTimeout(r, 40))
    }
    // The writes came while the job was under way.
    expect((await jobOf(server, id)).state).toBe('running')
    const waited = await job(server, 'status', id, '--wait', '--json')
    expect(waited.code, waited.stderr).toBe(0)
    const done = (JSON.parse(waited.stdout) as { job: JobView }).job
    expect(done.state).toBe('completed')
    expect(done.done).toMatchObject({ errors: 0, damaged: 0 })
    expect(done.done.changed).toBeGreaterThanOrEqual(100 - overwritten.size - deleted.size)

    for (const [key, body] of overwritten) expect(digest(await read(s3, 'photos', key)), `overwritten ${key}`).toBe(digest(body))
    for (const key of deleted) expect(await errorCode(s3.send(new HeadObjectCommand({ Bucket: 'photos', Key: key }))), `deleted ${key}`).toBe('NotFound')
    for (const [key, body] of data) {
      if (overwritten.has(key) || deleted.has(key)) continue
      const h = await s3.send(new HeadObjectCommand({ Bucket: 'photos', Key: key, ChecksumMode: 'ENABLED' }))
      expect(h.ServerSideEncryption, key).toBe('aws:kms')
      expect(h.ContentType, key).toBe('application/x-test')
      expect(h.Metadata, key).toEqual({ n: String(Number(key.slice(4))) })
      expect(digest(await read(s3, 'photos', key)), key).toBe(digest(body))
      const b = before.get(key)
      if (b) {
        // The checksum stays; Last-Modified moves, as with S3's copy in place.
        expect(h.ChecksumCRC32, key).toBe(b.checksum)
        expect(h.LastModified!.getTime()).toBeGreaterThanOrEqual(b.lastModified!.getTime())
      }
    }
    expect(digest(await read(s3, 'photos', 'big'))).toBe(digest(big))
  })

  it('keeps a multipart object’s parts and checksum when it encrypts it', async () => {
    await s3.send(new CreateBucketCommand({ Bucket: 'parts' }))
    const big = randomBytes(5 * 1024 * 1024 + 3000)
    await new Upload({ client: s3, params: { Bucket: 'parts', Key: 'big', Body: big, ContentType: 'video/x-test', ChecksumAlgorithm: 'SHA256' }, partSize: 5 * 1024 * 1024 }).done()
    const plain = await s3.send(new HeadObjectCommand({ Bucket: 'parts', Key: 'big', ChecksumMode: 'ENABLED' }))
    expect(plain.ChecksumSHA256).toMatch(/-2$/)
    await s3.send(new PutBucketEncryptionCommand({ Bucket: 'parts', ServerSideEncryptionConfiguration: KMS_RULE }))
    const r = await job(server, 'start', 'encrypt', '--bucket', 'parts', '--wait')
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/1 encrypted, 0 skipped, 0 errors/)
    const h = await s3.send(new HeadObjectCommand({ Bucket: 'parts', Key: 'big', ChecksumMode: 'ENABLED' }))
    expect(h).toMatchObject({ ServerSideEncryption: 'aws:kms', ContentType: 'video/x-test', ChecksumSHA256: plain.ChecksumSHA256 })
    const part2 = await s3.send(new HeadObjectCommand({ Bucket: 'parts', Key: 'big', PartNumber: 2 }))
    expect(part2).toMatchObject({ PartsCount: 2, ContentLength: 3000 })
    expect(h.ETag).toMatch(/^"[0-9a-f]{32}-2"$/)
    expect(h.ETag).not.toBe(plain.ETag)
    expect(digest(await read(s3, 'parts', 'big'))).toBe(digest(big))
  })

  it('rewraps to another key and then to a rotated key’s current version; the stored bytes stay as they were', async () => {
    const hashes = blobHashes(dataDir)
    // Keys are managed beside the running server, as `s3-sse kms create|rotate|disable` do.
    const keyring = await openEmbeddedKms(dataDir)
    try {
      const archive = await keyring.createKey({ alias: 'archive' })
      const usageOf = async () => ((await adminRequest(adminOf(server), 'GET', '/kms/usage')) as { usage: KeyUsage[]; keys: Array<{ keyId: string; alias: string | null }> })
      const first = await usageOf()
      const serviceKey = first.keys.find((k) => k.alias === 'alias/s3-sse/bucket/photos')!.keyId
      const service = first.usage.find((u) => u.keyId === serviceKey)!
      expect(service.objects).toBeGreaterThan(70)

      const moved = await job(server, 'start', 'rewrap', '--bucket', 'photos', '--to-key', 'alias/archive', '--wait', '--json')
      expect(moved.code, moved.stderr).toBe(0)
      expect((JSON.parse(moved.stdout) as { job: JobView }).job.done).toMatchObject({ changed: service.objects, errors: 0, damaged: 0 })
      // Byte for byte the same files: only the wrapped keys in the rows changed.
      expect(blobHashes(dataDir)).toEqual(hashes)
      const usage = await runCli(['kms', 'usage', '--endpoint', server.httpsUrl, '--data-dir', dataDir], ROOT_ENV)
      expect(usage.code, usage.stderr).toBe(0)
      expect(usage.stdout).toMatch(new RegExp(`${archive.keyId}\\s+alias/archive\\s+1 \\(current\\)\\s+${service.objects}\\s`))
      expect(usage.stdout).toMatch(new RegExp(`${serviceKey}\\s+alias/s3-sse/bucket/photos\\s+1 \\(current\\)\\s+0\\s+0\\s+0`))
      // Nothing uses the bucket's service key any more: disable it; every object still reads.
      await keyring.disableKey(serviceKey)
      expect((await read(s3, 'photos', 'big')).length).toBe(5 * 1024 * 1024 + 3000)

      // A rotation, then a rewrap without --to-key: each data key to its key's current version.
      await keyring.rotateKey(archive.keyId)
      const rotated = await job(server, 'start', 'rewrap', '--bucket', 'photos', '--wait')
      expect(rotated.code, rotated.stderr).toBe(0)
      expect(blobHashes(dataDir)).toEqual(hashes)
      expect((await usageOf()).usage.filter((u) => u.keyId === archive.keyId)).toEqual([
        expect.objectContaining({ version: 2, objects: service.objects }),
      ])
      expect(await read(s3, 'photos', keyOf(2))).toHaveLength(200 + 2 * 13)
      await keyring.enableKey(serviceKey)
    } finally {
      await keyring.close()
    }
  })

  it('scrub reports a corrupted package with its key, part and package, and a damaged plaintext object; --wait exits 3', async () => {
    await s3.send(new CreateBucketCommand({ Bucket: 'scrubbed' }))
    await s3.send(new PutObjectCommand({ Bucket: 'scrubbed', Key: 'plain-ok', Body: randomBytes(3000) }))
    await s3.send(new PutObjectCommand({ Bucket: 'scrubbed', Key: 'plain-bad', Body: randomBytes(3000) }))
    await s3.send(new PutBucketEncryptionCommand({ Bucket: 'scrubbed', ServerSideEncryptionConfiguration: KMS_RULE }))
    await s3.send(new PutObjectCommand({ Bucket: 'scrubbed', Key: 'sealed-ok', Body: randomBytes(300_000) }))
    await new Upload({ client: s3, params: { Bucket: 'scrubbed', Key: 'video', Body: randomBytes(5 * 1024 * 1024 + 400_000) }, partSize: 5 * 1024 * 1024 }).done()
    // Package 3 of part 2 of video (sealed packages are 64 KiB + a 16-byte tag), and one byte of plain-bad.
    const [, part2] = blobPaths(dataDir, 'scrubbed', 'video')
    const sealed = readFileSync(part2)
    sealed[3 * (65536 + 16) + 1000] ^= 0x20
    writeFileSync(part2, sealed)
    const [plainFile] = blobPaths(dataDir, 'scrubbed', 'plain-bad')
    const plain = readFileSync(plainFile)
    plain[10] ^= 1
    writeFileSync(plainFile, plain)

    const r = await job(server, 'start', 'scrub', '--bucket', 'scrubbed', '--wait', '--json')
    expect(r.code, r.stderr).toBe(3)
    const out = JSON.parse(r.stdout) as { job: JobView; findings: JobFinding[] }
    expect(out.job.done).toMatchObject({ objects: 4, changed: 2, damaged: 2, errors: 0 })
    expect(out.findings.map((f) => [f.key, f.kind, f.part, f.package, f.code])).toEqual([
      ['plain-bad', 'damaged', null, null, 'S3SSE_ETAG_MISMATCH'],
      ['plain-bad', 'damaged', null, null, 'S3SSE_CHECKSUM_MISMATCH'],
      ['video', 'damaged', 2, 3, 'S3SSE_AUTH_FAILED'],
    ])
    const listed = await job(server, 'findings', out.job.id)
    expect(listed.stdout).toContain('DAMAGED  video part 2, package 3  S3SSE_AUTH_FAILED')
    const metrics = (await rawRequest(server, { method: 'GET', path: '/-/metrics' })).body.toString()
    expect(metrics).toMatch(/^s3sse_scrub_damaged_objects_total 2$/m)
    expect(metrics).toContain(`s3sse_job_outcomes{job="${out.job.id}",kind="scrub",outcome="damaged"} 2`)
    expect(metrics).toContain(`s3sse_job_objects{job="${out.job.id}",kind="scrub",of="done"} 4`)
    // A GET of the damaged object fails rather than hand out bad bytes (what scrub warns about).
    expect(await errorCode(read(s3, 'scrubbed', 'video'))).toBeDefined()
  })

  it('the admin API is HTTPS-only, SigV4-signed and root-only, and says what is wrong', async () => {
    const plain = await rawRequest(server, { method: 'GET', path: '/-/admin/jobs', plain: true })
    expect(plain.status).toBe(403)
    expect(JSON.parse(plain.body.toString()).error.code).toBe('HttpsRequired')
    const anonymous = await rawRequest(server, { method: 'GET', path: '/-/admin/jobs' })
    expect([anonymous.status, JSON.parse(anonymous.body.toString()).error.code]).toEqual([403, 'AccessDenied'])
    await expect(adminRequest(adminOf(server, BOB.accessKey, BOB.secretKey), 'GET', '/jobs')).rejects.toMatchObject({ status: 403, code: 'AccessDenied', message: expect.stringMatching(/root only/) })
    await expect(adminRequest(adminOf(server, ROOT_KEY, 'wrong-secret-0123456789'), 'GET', '/jobs')).rejects.toMatchObject({ status: 403, code: 'SignatureDoesNotMatch' })
    // A body that is not the one signed is refused before it is read as JSON.
    const body = Buffer.from(JSON.stringify({ kind: 'scrub', bucket: 'photos' }))
    const headers = await signRequest(server, { method: 'POST', path: '/-/admin/jobs', body, payloadHash: createHash('sha256').update('{}').digest('hex'), headers: { 'content-type': 'application/json' } })
    const tampered = await rawRequest(server, { method: 'POST', path: '/-/admin/jobs', headers, body })
    expect([tampered.status, JSON.parse(tampered.body.toString()).error.code]).toEqual([400, 'XAmzContentSHA256Mismatch'])
    const root = adminOf(server)
    await expect(adminRequest(root, 'POST', '/jobs', {}, { kind: 'defrag', bucket: 'photos' })).rejects.toMatchObject({ status: 400, code: 'InvalidArgument' })
    await expect(adminRequest(root, 'POST', '/jobs', {}, { kind: 'scrub', bucket: 'no-such-bucket' })).rejects.toMatchObject({ status: 404, code: 'NoSuchBucket' })
    await s3.send(new CreateBucketCommand({ Bucket: 'unset' }))
    await expect(adminRequest(root, 'POST', '/jobs', {}, { kind: 'encrypt', bucket: 'unset' })).rejects.toMatchObject({ status: 400, message: expect.stringMatching(/no default encryption/) })
    await expect(adminRequest(root, 'POST', '/jobs', {}, { kind: 'rewrap', bucket: 'photos', toKey: 'alias/nope' })).rejects.toMatchObject({ status: 400, message: expect.stringMatching(/no KMS key/) })
    await expect(adminRequest(root, 'GET', '/jobs/0123456789ab')).rejects.toMatchObject({ status: 404, code: 'NoSuchJob' })
    await expect(adminRequest(root, 'GET', '/nothing')).rejects.toMatchObject({ status: 404, code: 'NotFound' })
    await expect(adminRequest(root, 'DELETE', '/jobs')).rejects.toMatchObject({ status: 405, code: 'MethodNotAllowed' })
    // One job of a kind per bucket at a time; a finished one can no longer be paused.
    const slow = ((await adminRequest(root, 'POST', '/jobs', {}, { kind: 'scrub', bucket: 'photos', rate: 5 })) as { job: JobView }).job
    await expect(adminRequest(root, 'POST', '/jobs', {}, { kind: 'scrub', bucket: 'photos' })).rejects.toMatchObject({ status: 409, code: 'InvalidJobState' })
    // On a terminal (script(1) gives it one), status --wait draws a live bar until the job stops.
    const watching = onTerminal(server, ['job', 'status', slow.id, '--wait', '--poll-ms', '200'])
    await until(server, slow.id, (j) => j.done.objects >= 8)
    await new Promise((r) => setTimeout(r, 500))
    await adminRequest(root, 'POST', `/jobs/${slow.id}/cancel`)
    await until(server, slow.id, (j) => j.state === 'cancelled')
    const terminal = await watching
    expect(terminal.code).toBe(4)
    const frames = new Set([...terminal.output.matchAll(/scrub \[[█░]+\] \d+% \| ([\d,]+) of [\d,]+ objects/g)].map((m) => m[1]))
    expect(frames.size, terminal.output).toBeGreaterThan(1)
    expect(terminal.output).toMatch(/objects\/s, [\d.]+ (B|KiB|MiB)\/s \| about .* left \| 0 errors, 0 damaged/)
    await expect(adminRequest(root, 'POST', `/jobs/${slow.id}/pause`)).rejects.toMatchObject({ status: 409, code: 'InvalidJobState' })
    // The CLI: a list, an unknown job, and usage errors.
    const list = await job(server, 'list')
    expect(list.stdout).toMatch(new RegExp(`${slow.id}\\s+scrub\\s+photos\\s+cancelled`))
    const missing = await job(server, 'status', 'ffffffffffff')
    expect([missing.code, missing.stderr]).toEqual([1, expect.stringContaining('NoSuchJob')])
    expect((await runCli(['job', 'start', 'encrypt'])).code).toBe(2)
  })
})

describe('restarts', () => {
  it('a job stopped with the server (SIGTERM) or killed with it (SIGKILL) resumes at the next start and counts each object once', async () => {
    const dataDir = tempDir('s3sse-jobs-restart-')
    try {
      let server = await startServer({ dataDir })
      let s3 = server.client()
      const data = await fill(s3, 'resume', 120)
      const id = ((await adminRequest(adminOf(server), 'POST', '/jobs', {}, { kind: 'encrypt', bucket: 'resume', rate: 60 })) as { job: JobView }).job.id
      await until(server, id, (j) => j.done.objects >= 20)
      s3.destroy()
      expect(await server.stop()).toBe(0)
      // What the job recorded before the stop is exactly what is encrypted, in key order.
      const db = new Database(join(dataDir, 'meta.sqlite'), { readonly: true })
      const saved = JSON.parse((db.prepare('SELECT body FROM jobs WHERE id = ?').get(id) as { body: string }).body) as { state: string; done: { objects: number; changed: number }; claim: unknown; cursor: string }
      const encrypted = db.prepare(`SELECT key, etag FROM objects WHERE bucket = 'resume' AND encryption IS NOT NULL ORDER BY key`).all() as Array<{ key: string; etag: string }>
      db.close()
      expect(saved).toMatchObject({ state: 'queued', claim: null })
      expect(saved.done.objects).toBeLessThan(120)
      expect(encrypted.length).toBe(saved.done.changed)
      expect(encrypted[encrypted.length - 1].key).toBe(saved.cursor)

      server = await startServer({ dataDir })
      s3 = server.client()
      await until(server, id, (j) => j.done.objects >= saved.done.objects + 10)
      server.proc.kill('SIGKILL')
      await server.stop()

      server = await startServer({ dataDir })
      s3 = server.client()
      const done = await until(server, id, (j) => j.state === 'completed')
      // Each key once; what the kill cut off before it was recorded is found encrypted and skipped.
      expect(done.done.objects).toBe(120)
      expect(done.done.changed + done.done.skipped).toBe(120)
      expect(done.done.errors).toBe(0)
      const db2 = new Database(join(dataDir, 'meta.sqlite'), { readonly: true })
      const etags = new Map((db2.prepare(`SELECT key, etag FROM objects WHERE bucket = 'resume'`).all() as Array<{ key: string; etag: string }>).map((r) => [r.key, r.etag]))
      const plainLeft = (db2.prepare(`SELECT COUNT(*) AS n FROM objects WHERE bucket = 'resume' AND encryption IS NULL`).get() as { n: number }).n
      db2.close()
      expect(plainLeft).toBe(0)
      // Objects encrypted before the first stop were not encrypted again.
      for (const e of encrypted) expect(etags.get(e.key), e.key).toBe(e.etag)
      for (const [key, body] of data) expect(digest(await read(s3, 'resume', key)), key).toBe(digest(body))
      s3.destroy()
      await server.stop()
    } finally {
      removeDir(dataDir)
    }
  })
})

describe('aws mode', () => {
  it('aws s3 cp s3://b/ s3://b/ --recursive --sse aws:kms encrypts every object in place, multipart ones too', async () => {
    const server = await startServer({ args: ['--mode', 'aws'] })
    try {
      const s3 = server.client()
      await s3.send(new CreateBucketCommand({ Bucket: 'inplace' }))
      const small = new Map<string, Buffer>()
      for (const key of ['a.txt', 'dir/b.bin', 'dir/c d.bin']) {
        small.set(key, randomBytes(2000))
        await s3.send(new PutObjectCommand({ Bucket: 'inplace', Key: key, Body: small.get(key), ContentType: 'text/x-mine', Metadata: { owner: 'me' } }))
      }
      const big = randomBytes(6 * 1024 * 1024)
      await s3.send(new PutObjectCommand({ Bucket: 'inplace', Key: 'big.bin', Body: big }))
      const config = join(server.dataDir, 'aws-config')
      writeFileSync(config, '[default]\nregion = us-east-1\ns3 =\n  multipart_threshold = 5MB\n  multipart_chunksize = 5MB\n')
      const env = {
        ...process.env, AWS_ACCESS_KEY_ID: ROOT_KEY, AWS_SECRET_ACCESS_KEY: ROOT_SECRET, AWS_CA_BUNDLE: join(server.dataDir, 'tls-cert.pem'),
        AWS_CONFIG_FILE: config, AWS_SHARED_CREDENTIALS_FILE: '/dev/null', AWS_EC2_METADATA_DISABLED: 'true',
      }
      const { stdout } = await promisify(execFile)('/usr/bin/aws', ['--endpoint-url', server.httpsUrl, 's3', 'cp', 's3://inplace/', 's3://inplace/', '--recursive', '--sse', 'aws:kms', '--only-show-errors'], { env })
      expect(stdout).toBe('')
      for (const [key, body] of small) {
        const h = await s3.send(new HeadObjectCommand({ Bucket: 'inplace', Key: key }))
        expect(h).toMatchObject({ ServerSideEncryption: 'aws:kms', ContentType: 'text/x-mine', Metadata: { owner: 'me' } })
        expect(digest(await read(s3, 'inplace', key))).toBe(digest(body))
      }
      expect((await s3.send(new HeadObjectCommand({ Bucket: 'inplace', Key: 'big.bin' }))).ServerSideEncryption).toBe('aws:kms')
      expect(digest(await read(s3, 'inplace', 'big.bin'))).toBe(digest(big))
      s3.destroy()
    } finally {
      await server.stop()
      removeDir(server.dataDir)
    }
  })
})
