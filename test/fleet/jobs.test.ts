/**
 * Jobs on a fleet: real `s3-sse serve` processes (--store s3 on Ceph RGW, --meta postgres://)
 * behind HAProxy, driven with the `s3-sse job` / `s3-sse kms usage` CLI through single gateways
 * and through the load balancer.
 *
 * - Two jobs started at once through different gateways: each is worked exactly once (one
 *   worker starts it, every object counted once), and either gateway shows it; objects keep
 *   their tags.
 * - Pause through one gateway, resume through the other; a scrub through the load balancer
 *   finds a blob damaged in the backend bucket.
 * - A gateway killed (SIGKILL) mid-job: its claim holds until the lease runs out, then the other
 *   gateway takes the job over from the last checkpoint and finishes it, every object counted once.
 */
import { createHash, randomBytes } from 'node:crypto'
import { afterAll, beforeAll, expect, it } from 'vitest'
import pg from 'pg'
import { CreateBucketCommand, GetObjectCommand, GetObjectTaggingCommand, HeadObjectCommand, PutBucketEncryptionCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3'
import { adminRequest } from '../../src/server/admin/client.js'
import type { JobView } from '../../src/server/jobs/index.js'
import type { JobFinding, KeyUsage } from '../../src/server/meta/index.js'
import { clientFor, processFleet, type ProcessFleet } from '../helpers/fleet.js'
import { describeWithServices } from '../helpers/services.js'
import { ROOT_KEY, ROOT_SECRET, runCli, type TestServer } from '../server/helpers.js'

const ROOT_ENV = { S3SSE_ACCESS_KEY: ROOT_KEY, S3SSE_SECRET_KEY: ROOT_SECRET }
/** A short lease, so a dead gateway's job is taken over within seconds; frequent polls. */
const LEASE_MS = 3000
const JOB_ARGS = ['--job-lease-ms', String(LEASE_MS), '--job-poll-ms', '200']
const KMS_RULE = { Rules: [{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms' as const } }] }

const digest = (b: Buffer) => createHash('sha256').update(b).digest('hex')
const keyOf = (i: number) => `k${String(i).padStart(3, '0')}`

describeWithServices('jobs on a fleet of s3-sse processes', ['rgw', 'postgres'], () => {
  let fleet: ProcessFleet
  const clients: S3Client[] = []

  beforeAll(async () => {
    fleet = await processFleet(2, { lb: true, args: JOB_ARGS })
  })

  afterAll(async () => {
    for (const c of clients) c.destroy()
    await fleet?.stop()
  })

  const s3Of = (url: string) => {
    const c = clientFor(url, fleet.cert.pem, { keepAlive: false, maxAttempts: 3 })
    clients.push(c)
    return c
  }

  /** `s3-sse job …` (or another command) as root against `url` (a gateway or the load balancer). */
  async function cli(url: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string; json: any }> {
    const r = await runCli([...args, '--endpoint', url, '--ca', fleet.cert.certPath, '--json'], ROOT_ENV)
    let json: unknown
    try {
      json = JSON.parse(r.stdout)
    } catch {
      json = undefined
    }
    return { ...r, json }
  }

  async function status(url: string, id: string): Promise<JobView> {
    const r = await cli(url, ['job', 'status', id])
    expect(r.code, r.stderr).toBe(0)
    return r.json.job
  }

  async function until(url: string, id: string, done: (j: JobView) => boolean, timeoutMs = 60_000): Promise<JobView> {
    const end = Date.now() + timeoutMs
    for (;;) {
      const j = await status(url, id)
      if (done(j)) return j
      if (Date.now() > end) throw new Error(`job ${id} is still ${j.state}: ${JSON.stringify(j.done)}`)
      await new Promise((r) => setTimeout(r, 100))
    }
  }

  /** Every fifth object is tagged: a job's new row keeps the tags. */
  const tagged = (i: number) => i % 5 === 0

  /** n small plaintext objects (some tagged), then the bucket's default encryption on. */
  async function fill(s3: S3Client, bucket: string, n: number): Promise<Map<string, Buffer>> {
    await s3.send(new CreateBucketCommand({ Bucket: bucket }))
    const data = new Map<string, Buffer>()
    for (let start = 0; start < n; start += 10) {
      await Promise.all(
        Array.from({ length: Math.min(10, n - start) }, async (_, j) => {
          const body = randomBytes(300 + (start + j) * 17)
          data.set(keyOf(start + j), body)
          const i = start + j
          await s3.send(new PutObjectCommand({ Bucket: bucket, Key: keyOf(i), Body: body, ...(tagged(i) ? { Tagging: `n=${i}` } : {}) }))
        }),
      )
    }
    await s3.send(new PutBucketEncryptionCommand({ Bucket: bucket, ServerSideEncryptionConfiguration: KMS_RULE }))
    return data
  }

  /** Every object is stored encrypted, reads back as written and keeps its tags. */
  async function expectEncrypted(s3: S3Client, bucket: string, data: Map<string, Buffer>): Promise<void> {
    for (const [key, body] of data) {
      const i = Number(key.slice(1))
      if (tagged(i)) expect((await s3.send(new GetObjectTaggingCommand({ Bucket: bucket, Key: key }))).TagSet, key).toEqual([{ Key: 'n', Value: String(i) }])
      const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }))
      expect(head.ServerSideEncryption, key).toBe('aws:kms')
      const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }))
      expect(digest(Buffer.from(await got.Body!.transformToByteArray())), key).toBe(digest(body))
    }
  }

  /** How many times any gateway began working `id` from the start, and resumed it. */
  function starts(id: string, gateways: TestServer[] = fleet.gateways): { started: number; resumed: number } {
    const out = gateways.map((g) => g.output()).join('\n')
    return {
      started: out.split('\n').filter((l) => l.includes(`job ${id}: `) && l.includes(' started (worker ')).length,
      resumed: out.split('\n').filter((l) => l.includes(`job ${id}: `) && l.includes(' resumed after ')).length,
    }
  }

  it('two jobs started at once through different gateways are each worked exactly once, and every gateway shows them', async () => {
    const [g1, g2] = fleet.gateways
    const [a, b] = await Promise.all([fill(s3Of(g1.httpsUrl), 'fleet-a', 24), fill(s3Of(g2.httpsUrl), 'fleet-b', 24)])
    // Paced, so each gateway polls the job table many times while the other one works.
    const [startA, startB] = await Promise.all([
      cli(g1.httpsUrl, ['job', 'start', 'encrypt', '--bucket', 'fleet-a', '--rate', '20/s']),
      cli(g2.httpsUrl, ['job', 'start', 'encrypt', '--bucket', 'fleet-b', '--rate', '20/s']),
    ])
    expect([startA.code, startB.code], startA.stderr + startB.stderr).toEqual([0, 0])
    const ids = [startA.json.job.id as string, startB.json.job.id as string]
    for (const id of ids) {
      const waited = await runCli(['job', 'status', id, '--wait', '--json', '--poll-ms', '100', '--endpoint', fleet.lb!.url, '--ca', fleet.cert.certPath], ROOT_ENV)
      expect(waited.code, waited.stderr).toBe(0)
      const { job } = JSON.parse(waited.stdout) as { job: JobView }
      expect(job).toMatchObject({ state: 'completed', error: null, done: { objects: 24, changed: 24, skipped: 0, errors: 0, damaged: 0 }, worker: null })
      expect(starts(id)).toEqual({ started: 1, resumed: 0 })
      // The same row through the other gateway.
      expect(await status(fleet.gateways[ids.indexOf(id) === 0 ? 1 : 0].httpsUrl, id)).toMatchObject({ state: 'completed', done: job.done })
    }
    await expectEncrypted(s3Of(g2.httpsUrl), 'fleet-a', a)
    await expectEncrypted(s3Of(g1.httpsUrl), 'fleet-b', b)
    const list = await cli(g2.httpsUrl, ['job', 'list'])
    expect(list.code, list.stderr).toBe(0)
    expect((list.json.jobs as JobView[]).filter((j) => ids.includes(j.id)).map((j) => j.state)).toEqual(['completed', 'completed'])
    // kms usage counts the rows of the shared database, through any gateway.
    const usage = await cli(fleet.lb!.url, ['kms', 'usage'])
    expect(usage.code, usage.stderr).toBe(0)
    expect((usage.json.usage as KeyUsage[]).reduce((n, u) => n + u.objects, 0)).toBe(48)
  })

  it('pause through one gateway, resume through the other; a scrub through the load balancer finds a blob damaged in the backend bucket', async () => {
    const [g1, g2] = fleet.gateways
    const data = await fill(s3Of(fleet.lb!.url), 'fleet-ctl', 24)
    // Slow enough that a CLI process (a second or so to start) pauses it halfway.
    const started = await cli(g1.httpsUrl, ['job', 'start', 'encrypt', '--bucket', 'fleet-ctl', '--rate', '4/s'])
    expect(started.code, started.stderr).toBe(0)
    const id = started.json.job.id as string
    await until(g2.httpsUrl, id, (j) => j.done.objects >= 2)
    const paused = await cli(g2.httpsUrl, ['job', 'pause', id])
    expect(paused.code, paused.stderr).toBe(0)
    const stopped = await until(g1.httpsUrl, id, (j) => j.state === 'paused' && j.worker === null)
    expect(stopped.done.objects).toBeLessThan(24)
    // Paused means nobody works it: its counts stay.
    await new Promise((r) => setTimeout(r, 600))
    expect((await status(g2.httpsUrl, id)).done).toEqual(stopped.done)
    const resumed = await cli(g1.httpsUrl, ['job', 'resume', id])
    expect(resumed.code, resumed.stderr).toBe(0)
    const done = await until(fleet.lb!.url, id, (j) => j.state === 'completed')
    expect(done.done).toMatchObject({ objects: 24, changed: 24, skipped: 0, errors: 0 })
    await expectEncrypted(s3Of(fleet.lb!.url), 'fleet-ctl', data)

    // One package of one object's blob damaged where it is kept: the backend bucket.
    const db = new pg.Client({ connectionString: fleet.db.url })
    await db.connect()
    const [row] = (await db.query('SELECT blobs FROM objects WHERE bucket = $1 AND key = $2', ['fleet-ctl', Buffer.from(keyOf(7))])).rows
    await db.end()
    const blobKey = `blobs/${(JSON.parse(row.blobs) as string[])[0]}`
    const stored = await fleet.bucket.get(blobKey)
    stored[Math.floor(stored.length / 2)] ^= 0x01
    await fleet.bucket.client.send(new PutObjectCommand({ Bucket: fleet.bucket.name, Key: blobKey, Body: stored }))
    const scrub = await runCli(['job', 'start', 'scrub', '--bucket', 'fleet-ctl', '--wait', '--json', '--poll-ms', '100', '--endpoint', fleet.lb!.url, '--ca', fleet.cert.certPath], ROOT_ENV)
    expect(scrub.code, scrub.stderr).toBe(3)
    const report = JSON.parse(scrub.stdout) as { job: JobView; findings: JobFinding[] }
    expect(report.job.done).toMatchObject({ objects: 24, changed: 23, damaged: 1, errors: 0 })
    expect(report.findings).toMatchObject([{ key: keyOf(7), kind: 'damaged', part: 1 }])
    const findings = await cli(g2.httpsUrl, ['job', 'findings', report.job.id])
    expect(findings.json.findings).toEqual(report.findings)
  })

  it('a gateway killed mid-job: its claim holds until the lease runs out, then the other gateway finishes the job from the last checkpoint, every object counted once', async () => {
    const data = await fill(s3Of(fleet.lb!.url), 'fleet-kill', 30)
    const started = await cli(fleet.lb!.url, ['job', 'start', 'encrypt', '--bucket', 'fleet-kill', '--rate', '10/s'])
    expect(started.code, started.stderr).toBe(0)
    const id = started.json.job.id as string
    const working = await until(fleet.lb!.url, id, (j) => j.worker !== null && j.done.objects >= 5)
    const victim = fleet.gateways.find((g) => working.worker!.endsWith(`:${g.proc.pid}`))!
    const survivor = fleet.gateways.find((g) => g !== victim)!
    expect(victim).toBeDefined()
    victim.proc.kill('SIGKILL')
    await new Promise((r) => victim.proc.once('exit', r))
    // The dead gateway's claim is still live: nobody else works the job yet (asked over the
    // admin API straight away: a CLI process may take longer to start than the lease has left).
    const admin = { endpoint: new URL(survivor.httpsUrl), region: 'us-east-1', accessKey: ROOT_KEY, secretKey: ROOT_SECRET, ca: Buffer.from(fleet.cert.pem) }
    expect(((await adminRequest(admin, 'GET', `/jobs/${id}`)) as { job: JobView }).job.worker).toBe(working.worker)
    const done = await until(survivor.httpsUrl, id, (j) => j.state === 'completed', 90_000)
    // What the victim recorded is not done again; what it did after its last checkpoint is
    // looked at again and found encrypted already. Each object is counted once.
    expect(done.done.objects).toBe(30)
    expect(done.done.changed + done.done.skipped).toBe(30)
    expect(done.done).toMatchObject({ errors: 0, damaged: 0 })
    expect(done.error).toBeNull()
    expect(starts(id, [survivor]).resumed).toBe(1)
    await expectEncrypted(s3Of(survivor.httpsUrl), 'fleet-kill', data)
  })
})
