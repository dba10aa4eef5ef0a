/**
 * The console's side of jobs, in real Chromium (Debian's, through playwright-core) against a
 * real server (in process, so its KMS can be slowed down and a progress bar seen moving):
 *
 * - a bucket's Settings count the objects stored unencrypted; once a default encryption is
 *   set, "Encrypt existing objects" starts an encrypt job whose progress bar moves until every
 *   object is encrypted, which the AWS SDK confirms byte for byte;
 * - root sees every job on the Jobs page and pauses, resumes and cancels one;
 * - a user sees no Jobs page, may start only encrypt jobs and only on their own buckets.
 */
import { createHash, randomBytes } from 'node:crypto'
import https from 'node:https'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CreateBucketCommand, GetObjectCommand, HeadObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3'
import { NodeHttpHandler } from '@smithy/node-http-handler'
import type { Browser, Page } from 'playwright-core'
import { openEmbeddedKms, type EmbeddedKms } from '../../src/keys/index.js'
import { adminRequest, type AdminConnection } from '../../src/server/admin/client.js'
import { UserStore } from '../../src/server/credentials.js'
import type { JobView } from '../../src/server/jobs/index.js'
import { startServer, type RunningServer } from '../../src/server/server.js'
import { launchChromium } from './browser.js'
import { FaultyKms } from './faults.js'
import { removeDir, tempDir } from './helpers.js'

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true'

const ALICE = { name: 'alice', accessKey: 'ALICEJOBSKEY00000001', secretKey: 'alice-jobs-secret-0123456789abcd' }
const digest = (b: Uint8Array) => createHash('sha256').update(b).digest('hex')

let dataDir: string
let server: RunningServer
let embedded: EmbeddedKms
let kms: FaultyKms
let browser: Browser
let root: { accessKey: string; secretKey: string }
const problems: string[] = []

function client(accessKeyId: string, secretAccessKey: string): S3Client {
  return new S3Client({
    region: 'us-east-1', endpoint: server.httpsUrl, forcePathStyle: true, credentials: { accessKeyId, secretAccessKey },
    requestHandler: new NodeHttpHandler({ httpsAgent: new https.Agent({ ca: server.tls.cert, keepAlive: true }) }), maxAttempts: 1,
  })
}

const admin = (): AdminConnection => ({ endpoint: new URL(server.httpsUrl), region: 'us-east-1', ...root, ca: Buffer.from(server.tls.cert) })

beforeAll(async () => {
  dataDir = tempDir('s3sse-console-jobs-')
  new UserStore(dataDir).add(ALICE.name, { accessKey: ALICE.accessKey, secretKey: ALICE.secretKey })
  embedded = await openEmbeddedKms(dataDir, { create: true })
  kms = new FaultyKms(embedded)
  server = await startServer({
    config: { dataDir, host: '127.0.0.1', httpsPort: 0, httpPort: null, region: 'us-east-1', mode: 'oss', domains: ['s3.localhost'], jobs: { pollMs: 100, checkpointMs: 100 } },
    kms,
    log: { info: () => {}, error: () => {} },
  })
  root = { accessKey: server.rootCredentials.user.accessKey, secretKey: server.rootCredentials.user.secretKey }
  browser = await launchChromium([server.tls.cert])
})

afterAll(async () => {
  await browser?.close()
  await server?.close()
  await embedded?.close()
  if (dataDir) removeDir(dataDir)
})

async function signIn(accessKey: string, secretKey: string): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1200, height: 800 } })
  const page = await context.newPage()
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`))
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy|Trusted Type/i.test(m.text())) problems.push(m.text())
  })
  await page.goto(server.httpsUrl + '/-/console/')
  await page.getByLabel('Access key').fill(accessKey)
  await page.getByLabel('Secret key').fill(secretKey)
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.getByRole('heading', { name: 'Buckets', level: 1 }).waitFor()
  return page
}

async function settingsOf(page: Page, bucket: string): Promise<void> {
  await page.getByRole('link', { name: 'Buckets', exact: true }).first().click()
  await page.getByRole('link', { name: bucket, exact: true }).click()
  await page.getByRole('tab', { name: 'Settings' }).click()
  await page.getByRole('heading', { name: 'Existing objects', level: 2 }).waitFor()
}

describe('console: encrypting existing objects', () => {
  it('counts the unencrypted objects, and encrypts them with a live progress bar once default encryption is on', async () => {
    const s3 = client(ALICE.accessKey, ALICE.secretKey)
    await s3.send(new CreateBucketCommand({ Bucket: 'albums' }))
    const data = new Map<string, Buffer>()
    await Promise.all(Array.from({ length: 40 }, async (_, i) => {
      const key = `photo-${String(i).padStart(2, '0')}.jpg`
      data.set(key, randomBytes(5000 + i))
      await s3.send(new PutObjectCommand({ Bucket: 'albums', Key: key, Body: data.get(key), ContentType: 'image/jpeg' }))
    }))
    const page = await signIn(ALICE.accessKey, ALICE.secretKey)
    expect(await page.locator('[data-nav="jobs"]').isHidden()).toBe(true)
    await settingsOf(page, 'albums')
    const summary = page.locator('#existing-summary')
    await expect.poll(() => summary.textContent()).toMatch(/^40 of 40 objects \(19\d KiB\) are stored unencrypted\. Set a default encryption/)
    expect(await page.getByRole('button', { name: 'Encrypt existing objects' }).isHidden()).toBe(true)

    // Default Encryption → Modify → SSE-KMS → OK: the offer appears.
    await page.getByRole('button', { name: 'Modify' }).click()
    await page.getByRole('dialog', { name: 'Default Encryption' }).getByLabel('SSE-KMS').check()
    await page.getByRole('dialog').getByRole('button', { name: 'OK' }).click()
    await page.getByRole('dialog').waitFor({ state: 'hidden' })
    await expect.poll(() => summary.textContent()).toMatch(/^40 of 40 objects .* are stored unencrypted: they were written before the default encryption was set\.$/)

    // A slow KMS (every call 150 ms) makes the job take a few seconds: the bar is seen moving.
    kms.delayMs = 150
    kms.fault = 'slow'
    try {
      await page.getByRole('button', { name: 'Encrypt existing objects' }).click()
      const bar = page.locator('#job-progress')
      await bar.waitFor()
      const seen = new Set<string>()
      const label = page.locator('#job-progress-label')
      for (let i = 0; i < 400 && (await label.textContent()) !== 'Existing objects encrypted'; i++) {
        const value = `${await bar.getAttribute('value')}/${await bar.getAttribute('max')}`
        // S3SSE_CONSOLE_JOB_SCREENSHOT=docs/console-jobs.png refreshes docs/CONSOLE.md's picture of a job under way.
        if (!seen.has(value) && /^[1-3]\d\/40$/.test(value) && process.env.S3SSE_CONSOLE_JOB_SCREENSHOT) {
          await page.locator('#panel-settings').screenshot({ path: process.env.S3SSE_CONSOLE_JOB_SCREENSHOT })
        }
        seen.add(value)
        await page.waitForTimeout(25)
      }
      expect(await label.textContent()).toBe('Existing objects encrypted')
      const middle = [...seen].filter((v) => /^\d+\/40$/.test(v) && !v.startsWith('0/') && !v.startsWith('40/'))
      expect(middle.length, `progress values seen: ${[...seen].join(' ')}`).toBeGreaterThan(0)
      expect(await bar.evaluate((b) => [(b as HTMLProgressElement).value, (b as HTMLProgressElement).max])).toEqual([40, 40])
      expect(await page.locator('#job-progress-text').textContent()).toMatch(/^40 of 40 objects · 19\d KiB of 19\d KiB · 0 errors$/)
    } finally {
      kms.fault = 'none'
    }
    await expect.poll(() => summary.textContent()).toBe('All 40 objects in this bucket are stored encrypted.')
    expect(await page.getByRole('button', { name: 'Encrypt existing objects' }).isHidden()).toBe(true)
    expect(await page.getByRole('status').textContent()).toBe('Done: 40 objects encrypted, 0 skipped, 0 errors.')

    // The Objects tab and the SDK agree.
    await page.getByRole('tab', { name: 'Objects' }).click()
    const cells = page.locator('#object-rows tr td:nth-child(4)')
    await expect.poll(() => cells.count()).toBe(40)
    expect(new Set(await cells.allTextContents())).toEqual(new Set(['SSE-KMS']))
    for (const [key, body] of data) {
      const head = await s3.send(new HeadObjectCommand({ Bucket: 'albums', Key: key }))
      expect([head.ServerSideEncryption, head.ContentType]).toEqual(['aws:kms', 'image/jpeg'])
      const got = await s3.send(new GetObjectCommand({ Bucket: 'albums', Key: key }))
      expect(digest(await got.Body!.transformToByteArray())).toBe(digest(body))
    }
    s3.destroy()
    await page.context().close()
  })

  it('root sees every job and pauses, resumes and cancels one; a user sees none of that', async () => {
    const s3 = client(root.accessKey, root.secretKey)
    await s3.send(new CreateBucketCommand({ Bucket: 'archive' }))
    await Promise.all(Array.from({ length: 30 }, (_, i) => s3.send(new PutObjectCommand({ Bucket: 'archive', Key: `a${i}`, Body: randomBytes(100) }))))
    const { job } = (await adminRequest(admin(), 'POST', '/jobs', {}, { kind: 'scrub', bucket: 'archive', rate: 3 })) as { job: JobView }

    const page = await signIn(root.accessKey, root.secretKey)
    await page.getByRole('link', { name: 'Jobs' }).click()
    await page.getByRole('heading', { name: 'Jobs', level: 1 }).waitFor()
    const row = (id: string) => page.locator(`#job-rows tr[data-job="${id}"]`)
    const state = (id: string) => row(id).locator('td').nth(3).textContent()
    // Alice's encrypt job from the first test, done; root's scrub, running.
    const encrypt = row((await page.locator('#job-rows tr').filter({ hasText: 'albums' }).getAttribute('data-job'))!)
    expect(await encrypt.locator('td').nth(3).textContent()).toBe('completed')
    expect(await encrypt.locator('td').nth(4).textContent()).toMatch(/^40 of 40 objects/)
    await expect.poll(() => state(job.id)).toBe('running')
    await page.getByRole('button', { name: `pause job ${job.id}` }).click()
    await expect.poll(() => state(job.id)).toBe('paused')
    expect((await adminRequest(admin(), 'GET', `/jobs/${job.id}`)).job.state).toBe('paused')
    await page.getByRole('button', { name: `resume job ${job.id}` }).click()
    await expect.poll(async () => (await adminRequest(admin(), 'GET', `/jobs/${job.id}`)).job.state).toMatch(/^(queued|running)$/)
    await page.getByRole('button', { name: `cancel job ${job.id}` }).click()
    await expect.poll(() => state(job.id)).toBe('cancelled')
    expect(await row(job.id).getByRole('button').count()).toBe(0)
    await page.context().close()

    // Alice: no Jobs page, no other bucket's jobs, no scrub of her own.
    const alice = await signIn(ALICE.accessKey, ALICE.secretKey)
    const call = (method: string, path: string, body?: unknown) =>
      alice.evaluate(async ([m, p, b]) => {
        const res = await fetch(`api/${p}`, { method: m as string, headers: { 'X-S3SSE-Console': '1', 'Content-Type': 'application/json' }, body: b === undefined ? undefined : JSON.stringify(b) })
        return { status: res.status, json: await res.json() }
      }, [method, path, body] as const)
    expect(await call('GET', 'jobs')).toMatchObject({ status: 403, json: { error: { code: 'AccessDenied' } } })
    expect(await call('GET', `jobs/${job.id}`)).toMatchObject({ status: 403 })
    expect(await call('GET', 'buckets/archive/jobs')).toMatchObject({ status: 403 })
    expect(await call('POST', 'buckets/albums/jobs', { kind: 'scrub' })).toMatchObject({ status: 403, json: { error: { code: 'AccessDenied' } } })
    expect(await call('POST', `jobs/${job.id}/resume`)).toMatchObject({ status: 403 })
    await alice.goto(server.httpsUrl + '/-/console/#/jobs')
    await alice.getByRole('heading', { name: 'Buckets', level: 1 }).waitFor()
    await alice.context().close()
    s3.destroy()
    expect(problems).toEqual([])
  })
})
