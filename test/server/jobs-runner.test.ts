/**
 * The job runner inside a real server (in process, the embedded components injected through
 * the seams so a test can hold or fail them), driven over HTTPS: the admin API signed with the
 * CLI's client, objects with the AWS SDK.
 *
 * - A client overwrites or deletes an object while the encrypt job has it in hand: the job's
 *   commit is refused (it is conditional on the row it read), nothing of it stays.
 * - A KMS that stops answering makes the job retry, then fail; resume finishes it.
 * - Pause, resume and cancel, with everything done before the pause counted once.
 * - Two gateways on one metadata store: one works the job; when its lease runs out (its
 *   database connection died), the other takes the job over, and the first one's late work
 *   is refused.
 */
import { createHash, randomBytes } from 'node:crypto'
import https from 'node:https'
import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutBucketEncryptionCommand,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3'
import { NodeHttpHandler } from '@smithy/node-http-handler'
import { S3sseError } from '../../src/errors.js'
import { openEmbeddedKms, type EmbeddedKms } from '../../src/keys/index.js'
import { adminRequest, type AdminConnection } from '../../src/server/admin/client.js'
import type { JobView } from '../../src/server/jobs/index.js'
import { newJob } from '../../src/server/jobs/model.js'
import { JobRunner } from '../../src/server/jobs/runner.js'
import type { MetaStore } from '../../src/server/meta/index.js'
import { SqliteMetaStore } from '../../src/server/meta/sqlite/index.js'
import { startServer, type RunningServer } from '../../src/server/server.js'
import { DEFAULT_JOBS, type JobSettings } from '../../src/server/state.js'
import type { BlobId, BlobReader, BlobStore } from '../../src/server/store/blob.js'
import { FileBlobStore } from '../../src/server/store/files.js'
import { FaultyKms } from './faults.js'
import { errorCode, removeDir, tempDir } from './helpers.js'

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true'

const KMS_RULE = { Rules: [{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms' as const } }] }

/** The file store, with opens of chosen blobs held until the test lets them go. */
class HoldingBlobStore implements BlobStore {
  private readonly holds = new Map<BlobId, { reached: () => void; release: Promise<void> }>()
  constructor(readonly inner: BlobStore) {}

  /** Holds the next open of `id`: resolves `reached` when it happens; the open waits for `release`. */
  hold(id: BlobId): { reached: Promise<void>; release: () => void } {
    let reached!: () => void
    let release!: () => void
    const r = new Promise<void>((ok) => (reached = ok))
    const gate = new Promise<void>((ok) => (release = ok))
    this.holds.set(id, { reached, release: gate })
    return { reached: r, release }
  }

  async open(ids: BlobId[]): Promise<BlobReader> {
    for (const id of ids) {
      const h = this.holds.get(id)
      if (h) {
        this.holds.delete(id)
        h.reached()
        await h.release
      }
    }
    return this.inner.open(ids)
  }
  stage = (s: AsyncIterable<Uint8Array>) => this.inner.stage(s)
  copy = (ids: BlobId[]) => this.inner.copy(ids)
  publish = (s: Parameters<BlobStore['publish']>[0]) => this.inner.publish(s)
  discard = (s: Parameters<BlobStore['discard']>[0]) => this.inner.discard(s)
  remove = (ids: BlobId[]) => this.inner.remove(ids)
  list = () => this.inner.list()
  close = () => this.inner.close()
}

interface Harness {
  dataDir: string
  server: RunningServer
  s3: S3Client
  admin: AdminConnection
  kms: FaultyKms
  embedded: EmbeddedKms
  blobs: HoldingBlobStore
  meta: SqliteMetaStore
  stop(): Promise<void>
}

const FAST: Partial<JobSettings> = { pollMs: 50, leaseMs: 2_000, checkpointMs: 50, retryDelaysMs: [20, 20, 20] }

async function start(dataDir: string, jobs: Partial<JobSettings> = FAST): Promise<Harness> {
  const embedded = await openEmbeddedKms(dataDir, { create: true })
  const kms = new FaultyKms(embedded)
  const blobs = new HoldingBlobStore(await FileBlobStore.open(dataDir))
  const meta = new SqliteMetaStore(dataDir)
  const server = await startServer({
    config: { dataDir, host: '127.0.0.1', httpsPort: 0, httpPort: null, region: 'us-east-1', mode: 'oss', domains: ['s3.localhost'], jobs },
    kms,
    blobs,
    meta,
    log: process.env.JOBS_TEST_LOG ? { info: (m) => console.log(m), error: (m) => console.error(m) } : { info: () => {}, error: () => {} },
  })
  const { accessKey, secretKey } = server.rootCredentials.user
  const s3 = new S3Client({
    region: 'us-east-1',
    endpoint: server.httpsUrl,
    forcePathStyle: true,
    credentials: { accessKeyId: accessKey, secretAccessKey: secretKey },
    requestHandler: new NodeHttpHandler({ httpsAgent: new https.Agent({ ca: server.tls.cert, keepAlive: true }) }),
    maxAttempts: 1,
  })
  const admin: AdminConnection = { endpoint: new URL(server.httpsUrl), region: 'us-east-1', accessKey, secretKey, ca: Buffer.from(server.tls.cert) }
  return {
    dataDir, server, s3, admin, kms, embedded, blobs, meta,
    async stop() {
      s3.destroy()
      await server.close()
      await meta.close()
      await blobs.close()
      await embedded.close()
    },
  }
}

/** Buffers compared by digest: a deep equality of megabytes is slow and its diff unreadable. */
const digest = (b: Buffer) => createHash('sha256').update(b).digest('hex')

async function read(s3: S3Client, bucket: string, key: string): Promise<Buffer> {
  const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }))
  return Buffer.from(await got.Body!.transformToByteArray())
}

async function jobOf(h: Harness, id: string): Promise<JobView> {
  return ((await adminRequest(h.admin, 'GET', `/jobs/${id}`)) as { job: JobView }).job
}

async function until(h: Harness, id: string, done: (j: JobView) => boolean, timeoutMs = 20_000): Promise<JobView> {
  const end = Date.now() + timeoutMs
  for (;;) {
    const j = await jobOf(h, id)
    if (done(j)) return j
    if (Date.now() > end) throw new Error(`job ${id} is still ${j.state} (${JSON.stringify(j.done)})`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

async function startJob(h: Harness, body: Record<string, unknown>): Promise<JobView> {
  return ((await adminRequest(h.admin, 'POST', '/jobs', {}, body)) as { job: JobView }).job
}

/** Every stored blob is one a row references, and nothing is left staged. */
async function expectNoOrphans(h: Harness): Promise<void> {
  const stored: string[] = []
  for (const shard of readdirSync(join(h.dataDir, 'objects'))) for (const f of readdirSync(join(h.dataDir, 'objects', shard))) stored.push(f)
  expect({ stored: stored.sort(), staged: readdirSync(join(h.dataDir, 'tmp')) }).toEqual({ stored: [...(await h.meta.referencedBlobs())].sort(), staged: [] })
}

async function plainBucket(h: Harness, bucket: string, n: number): Promise<Map<string, Buffer>> {
  await h.s3.send(new CreateBucketCommand({ Bucket: bucket }))
  const data = new Map<string, Buffer>()
  await Promise.all(
    Array.from({ length: n }, async (_, i) => {
      const key = `k${String(i).padStart(3, '0')}`
      const body = randomBytes(1000 + i * 37)
      data.set(key, body)
      await h.s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }))
    }),
  )
  await h.s3.send(new PutBucketEncryptionCommand({ Bucket: bucket, ServerSideEncryptionConfiguration: KMS_RULE }))
  return data
}

describe('the job runner', () => {
  let h: Harness
  const dirs: string[] = []

  beforeAll(async () => {
    const dataDir = tempDir('s3sse-jobs-runner-')
    dirs.push(dataDir)
    h = await start(dataDir)
  })

  afterAll(async () => {
    await h?.stop()
    for (const d of dirs) removeDir(d)
  })

  it('never clobbers an object a client overwrites or deletes while the encrypt job has it in hand', async () => {
    const data = await plainBucket(h, 'race', 20)
    const overwritten = await h.meta.getObject('race', 'k005')
    const deleted = await h.meta.getObject('race', 'k011')
    const holdA = h.blobs.hold(overwritten!.blobs[0])
    const holdB = h.blobs.hold(deleted!.blobs[0])
    const job = await startJob(h, { kind: 'encrypt', bucket: 'race' })
    // The job has read both rows and is about to read their data: the client writes now.
    await Promise.all([holdA.reached, holdB.reached])
    const fresh = randomBytes(4321)
    await h.s3.send(new PutObjectCommand({ Bucket: 'race', Key: 'k005', Body: fresh }))
    await h.s3.send(new DeleteObjectCommand({ Bucket: 'race', Key: 'k011' }))
    holdA.release()
    holdB.release()
    const done = await until(h, job.id, (j) => j.state === 'completed')
    expect(done.done).toMatchObject({ objects: 20, changed: 18, skipped: 2, errors: 0, damaged: 0 })
    expect(digest(await read(h.s3, 'race', 'k005'))).toBe(digest(fresh))
    expect(await errorCode(h.s3.send(new HeadObjectCommand({ Bucket: 'race', Key: 'k011' })))).toBe('NotFound')
    for (const [key, body] of data) {
      if (key === 'k005' || key === 'k011') continue
      const head = await h.s3.send(new HeadObjectCommand({ Bucket: 'race', Key: key }))
      expect(head.ServerSideEncryption, key).toBe('aws:kms')
      expect(digest(await read(h.s3, 'race', key)), key).toBe(digest(body))
    }
    await expectNoOrphans(h)
  })

  it('waits out a KMS that stops answering, then fails resumable; resume finishes the job', async () => {
    const data = await plainBucket(h, 'outage', 6)
    h.kms.fault = 'unavailable'
    let job: JobView
    try {
      job = await startJob(h, { kind: 'encrypt', bucket: 'outage' })
      job = await until(h, job.id, (j) => j.state === 'failed')
    } finally {
      h.kms.fault = 'none'
    }
    expect(job.error).toMatch(/S3SSE_KMS_UNAVAILABLE.*4 tries.*resume/)
    expect(job.done.objects).toBe(0)
    await adminRequest(h.admin, 'POST', `/jobs/${job.id}/resume`)
    const done = await until(h, job.id, (j) => j.state === 'completed')
    expect(done).toMatchObject({ error: null, done: { objects: 6, changed: 6 } })
    for (const [key, body] of data) expect(digest(await read(h.s3, 'outage', key))).toBe(digest(body))
    await expectNoOrphans(h)
  })

  it('pause stops the job with everything it did counted once; resume finishes it; cancel leaves the rest as it is', async () => {
    await plainBucket(h, 'paced', 40)
    const job = await startJob(h, { kind: 'encrypt', bucket: 'paced', rate: '40/s' })
    await until(h, job.id, (j) => j.done.objects >= 5)
    await adminRequest(h.admin, 'POST', `/jobs/${job.id}/pause`)
    const paused = await until(h, job.id, (j) => j.state === 'paused' && j.worker === null)
    await new Promise((r) => setTimeout(r, 300))
    const still = await jobOf(h, job.id)
    expect(still.done).toEqual(paused.done)
    expect(paused.done.objects).toBeLessThan(40)
    // What the job counted is exactly what is encrypted, in key order.
    const encrypted = (await h.meta.listObjectDetails('paced', '', '', 100)).filter((o) => o.encryption).length
    expect(encrypted).toBe(paused.done.changed)
    await expect(adminRequest(h.admin, 'POST', `/jobs/${job.id}/pause`)).rejects.toMatchObject({ status: 409, code: 'InvalidJobState' })
    await adminRequest(h.admin, 'POST', `/jobs/${job.id}/resume`)
    const done = await until(h, job.id, (j) => j.state === 'completed')
    expect(done.done).toMatchObject({ objects: 40, changed: 40, skipped: 0 })

    await plainBucket(h, 'stopped', 30)
    const other = await startJob(h, { kind: 'encrypt', bucket: 'stopped', rate: 30 })
    await until(h, other.id, (j) => j.done.objects >= 3)
    await adminRequest(h.admin, 'POST', `/jobs/${other.id}/cancel`)
    const cancelled = await until(h, other.id, (j) => j.state === 'cancelled' && j.worker === null)
    const left = (await h.meta.listObjectDetails('stopped', '', '', 100)).filter((o) => !o.encryption).length
    expect(left).toBe(30 - cancelled.done.changed)
    expect(left).toBeGreaterThan(0)
  })
})

/** A MetaStore whose job calls fail while `down` (a gateway that lost its database connection). */
function cutOff(inner: MetaStore): MetaStore & { down: boolean } {
  const m = Object.create(inner) as MetaStore & { down: boolean }
  m.down = false
  const lost = () => Promise.reject(new S3sseError('S3SSE_META_UNAVAILABLE', 'connection lost (simulated)'))
  m.updateJob = (...args) => (m.down ? lost() : inner.updateJob(...args))
  m.claimJob = (...args) => (m.down ? lost() : inner.claimJob(...args))
  return m
}

describe('two gateways on one metadata store', () => {
  it('one works a job; when its lease runs out the other takes it over, and the first one’s late work is refused', async () => {
    const dataDir = tempDir('s3sse-jobs-fleet-')
    // The server's own runner (gateway B) looks for work only when kicked.
    const h = await start(dataDir, { ...FAST, pollMs: 3_600_000, leaseMs: 400 })
    try {
      const data = await plainBucket(h, 'fleet', 12)
      const metaA = cutOff(h.meta)
      const settings = { ...DEFAULT_JOBS, ...FAST, leaseMs: 400, parallel: 1 }
      const a = new JobRunner({ ...h.server.state, meta: metaA }, settings, 'gateway-a')
      // Gateway A gets stuck on the first object, and loses its database meanwhile.
      const first = await h.meta.getObject('fleet', 'k000')
      const stuck = h.blobs.hold(first!.blobs[0])
      const job = newJob({ kind: 'encrypt', bucket: 'fleet' }, { id: 'f1ee7000', createdBy: 'root', now: Date.now() })
      await h.meta.createJob(job)
      await a.start()
      await stuck.reached
      expect((await h.meta.getJob(job.id))?.claim?.worker).toBe('gateway-a')
      metaA.down = true
      await new Promise((r) => setTimeout(r, 600))
      // B takes the expired claim and does the whole job.
      h.server.state.jobs!.kick()
      const done = await until(h, job.id, (j) => j.state === 'completed')
      expect(done.done).toMatchObject({ objects: 12, changed: 12 })
      // A comes back: its commit of k000 is refused (B encrypted it), its progress is refused.
      metaA.down = false
      stuck.release()
      await a.stop()
      expect(a.objects).toBe(0)
      const after = await jobOf(h, job.id)
      expect(after.done).toEqual(done.done)
      for (const [key, body] of data) expect(digest(await read(h.s3, 'fleet', key))).toBe(digest(body))
      await expectNoOrphans(h)
    } finally {
      await h.stop()
      removeDir(dataDir)
    }
  })
})
