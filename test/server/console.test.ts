/**
 * The web console end to end: the real server process (oss and aws mode), real Chromium
 * (Debian's, through playwright-core) trusting only the servers' own certificates, and
 * @aws-sdk/client-s3 checking that what the console did is what S3 clients see.
 *
 * S3SSE_CONSOLE_SCREENSHOT=docs/console.png npx vitest run test/server/console.test.ts
 * refreshes the README's picture of the Default Encryption dialog.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  CreateBucketCommand,
  GetBucketEncryptionCommand,
  GetBucketPolicyCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  PutBucketEncryptionCommand,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3'
import type { Browser, BrowserContext, Page } from 'playwright-core'
import { openEmbeddedKms } from '../../src/keys/index.js'
import { UserStore } from '../../src/server/credentials.js'
import { launchChromium } from './browser.js'
import { errorCode, rawRequest, removeDir, ROOT, ROOT_KEY, ROOT_SECRET, startServer, stopAll, tempDir, type TestServer } from './helpers.js'

const ALICE = { name: 'alice', accessKey: 'ALICECONSOLEKEY00001', secretKey: 'alice-console-secret-0123456789' }
const CAROL = { name: 'carol', accessKey: 'CAROLCONSOLEKEY00001', secretKey: 'carol-console-secret-0123456789' }
const WRONG_SECRET = 'not-the-secret-' + Date.now()
const API = '/-/console/api'

interface ApiResponse {
  status: number
  headers: Record<string, string | string[] | undefined>
  /** Parsed JSON; the tests look into it freely. */
  json: any
}

/** A console API call as a script would send it (cookie, the custom header, JSON). */
async function call(
  server: TestServer,
  method: string,
  path: string,
  opts: { cookie?: string; header?: boolean; body?: unknown; origin?: string; plain?: boolean } = {},
): Promise<ApiResponse> {
  const headers: Record<string, string> = { accept: 'application/json' }
  if (opts.cookie) headers.cookie = opts.cookie
  if (opts.header ?? method !== 'GET') headers['x-s3sse-console'] = '1'
  if (opts.origin) headers.origin = opts.origin
  let body: string | undefined
  if (opts.body !== undefined) {
    body = JSON.stringify(opts.body)
    headers['content-type'] = 'application/json'
  }
  const res = await rawRequest(server, { method, path: API + path, headers, body, plain: opts.plain })
  const text = res.body.toString('utf8')
  return { status: res.status, headers: res.headers, json: text ? JSON.parse(text) : null }
}

/** Signs in through the API; returns the cookie to send back ("name=token"). */
async function apiLogin(server: TestServer, accessKey: string, secretKey: string): Promise<string> {
  const res = await call(server, 'POST', '/session', { body: { accessKey, secretKey } })
  expect(res.status).toBe(200)
  const set = [res.headers['set-cookie']].flat()[0] as string
  return set.split(';')[0]
}

async function signIn(page: Page, server: TestServer, accessKey: string, secretKey: string): Promise<void> {
  await page.goto(server.httpsUrl + '/-/console/')
  await page.getByLabel('Access key').fill(accessKey)
  await page.getByLabel('Secret key').fill(secretKey)
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.getByRole('heading', { name: 'Buckets', level: 1 }).waitFor()
}

/** Bucket → Settings → Default Encryption → Modify: the dialog, open. */
async function openModify(page: Page, bucket: string): Promise<void> {
  await page.getByRole('link', { name: 'Buckets', exact: true }).first().click()
  await page.getByRole('link', { name: bucket, exact: true }).click()
  await page.getByRole('tab', { name: 'Settings' }).click()
  await page.getByRole('heading', { name: 'Default Encryption', level: 2 }).waitFor()
  await page.getByRole('button', { name: 'Modify' }).click()
  await page.getByRole('dialog', { name: 'Default Encryption' }).waitFor()
}

async function pressOk(page: Page): Promise<void> {
  await page.getByRole('dialog').getByRole('button', { name: 'OK' }).click()
  await page.getByRole('dialog').waitFor({ state: 'hidden' })
}

async function encryptionState(page: Page): Promise<string> {
  return (await page.locator('#enc-state').textContent()) ?? ''
}

/** The Encryption cell of an object's row in the Objects tab. */
async function objectEncryption(page: Page, key: string): Promise<string> {
  const row = page.locator('#object-rows tr', { has: page.getByRole('cell', { name: key, exact: true }) })
  await row.waitFor()
  return (await row.locator('td').nth(3).textContent()) ?? ''
}

/** Cell `n` of an object's row in the Objects tab. */
async function objectCell(page: Page, key: string, n: number): Promise<string> {
  const row = page.locator('#object-rows tr', { has: page.getByRole('cell', { name: key, exact: true }) })
  await row.waitFor()
  return (await row.locator('td').nth(n).textContent()) ?? ''
}

const bucketRule = async (s3: S3Client, Bucket: string) =>
  (await s3.send(new GetBucketEncryptionCommand({ Bucket }))).ServerSideEncryptionConfiguration?.Rules?.[0]

let oss: TestServer
let aws: TestServer
let browser: Browser
/** A page error or a CSP violation anywhere fails the run. */
const pageProblems: string[] = []

async function newPage(): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({ viewport: { width: 1100, height: 760 } })
  const page = await context.newPage()
  page.on('pageerror', (e) => pageProblems.push(`page error: ${e.message}`))
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy|Trusted Type/i.test(m.text())) pageProblems.push(m.text())
  })
  return { context, page }
}

beforeAll(async () => {
  const ossDir = tempDir('s3sse-console-')
  new UserStore(ossDir).add(ALICE.name, { accessKey: ALICE.accessKey, secretKey: ALICE.secretKey })
  new UserStore(ossDir).add(CAROL.name, { accessKey: CAROL.accessKey, secretKey: CAROL.secretKey })
  ;[oss, aws] = await Promise.all([startServer({ dataDir: ossDir }), startServer({ args: ['--mode', 'aws'] })])
  browser = await launchChromium([oss.ca, aws.ca])
})

afterAll(async () => {
  await browser?.close()
  await stopAll()
  for (const s of [oss, aws]) if (s) removeDir(s.dataDir)
})

describe('web console, oss mode', () => {
  let s3: S3Client
  beforeAll(() => {
    s3 = oss.client()
  })

  it('is served over HTTPS with a strict CSP, no inline script and nothing from the network', async () => {
    const page = await rawRequest(oss, { method: 'GET', path: '/-/console/' })
    expect(page.status).toBe(200)
    expect(page.headers['content-type']).toMatch(/^text\/html/)
    const csp = String(page.headers['content-security-policy'])
    expect(csp).toContain("default-src 'none'")
    expect(csp).toContain("script-src 'self'")
    expect(csp).not.toContain('unsafe-inline')
    expect(csp).toContain("frame-ancestors 'none'")
    expect(page.headers['x-frame-options']).toBe('DENY')
    expect(page.headers['x-content-type-options']).toBe('nosniff')
    const html = page.body.toString()
    // Every script is a file of the console; no inline handlers or styles.
    expect(html.match(/<script\b[^>]*>/g)).toEqual(['<script type="module" src="app.js">'])
    expect(html).not.toMatch(/\son[a-z]+=|\sstyle=/i)
    for (const name of ['app.js', 'console.css', 'favicon.svg']) {
      const res = await rawRequest(oss, { method: 'GET', path: `/-/console/${name}` })
      expect(res.status, name).toBe(200)
      expect(res.headers['content-security-policy']).toBe(csp)
    }
    for (const name of ['index.html', 'app.js', 'console.css']) {
      // No absolute URL to load from: everything is relative to /-/console/.
      const text = readFileSync(join(ROOT, 'console', name), 'utf8')
      expect(text, name).not.toMatch(/(src|href)="(https?:)?\/\//)
      expect(text, name).not.toMatch(/@import|url\(\s*['"]?https?:/)
      expect(text, name).not.toMatch(/fetch\(\s*['"`]https?:/)
    }
    expect((await rawRequest(oss, { method: 'GET', path: '/-/console/../root-credentials.json' })).status).not.toBe(200)
    expect((await rawRequest(oss, { method: 'GET', path: '/-/console/tls-key.pem' })).status).toBe(404)
  })

  it('over plain HTTP, pages redirect to HTTPS and the API refuses a correct login', async () => {
    const page = await rawRequest(oss, { method: 'GET', path: '/-/console/', plain: true })
    expect(page.status).toBe(302)
    expect(page.headers.location).toBe(`${oss.httpsUrl}/-/console/`)
    const login = await call(oss, 'POST', '/session', { plain: true, body: { accessKey: ROOT_KEY, secretKey: ROOT_SECRET } })
    expect(login.status).toBe(403)
    expect(login.json.error.code).toBe('HttpsRequired')
    expect(login.headers['set-cookie']).toBeUndefined()

    // A browser sent to the http:// address ends up on the HTTPS console.
    const { context, page: tab } = await newPage()
    await tab.goto(`${oss.httpUrl}/-/console/`)
    expect(tab.url()).toBe(`${oss.httpsUrl}/-/console/`)
    await tab.getByRole('heading', { name: 'Sign in' }).waitFor()
    await context.close()
  })

  it('refuses wrong credentials, in the page and in the API, and echoes no secret', async () => {
    const { context, page } = await newPage()
    await page.goto(oss.httpsUrl + '/-/console/')
    await page.getByLabel('Access key').fill(ROOT_KEY)
    await page.getByLabel('Secret key').fill(WRONG_SECRET)
    await page.getByRole('button', { name: 'Sign in' }).click()
    const alert = page.getByRole('alert').filter({ hasText: 'wrong' })
    await alert.waitFor()
    expect(await alert.textContent()).toBe('The access key or the secret key is wrong.')
    expect(await page.getByRole('heading', { name: 'Buckets' }).count()).toBe(0)
    expect(await context.cookies()).toEqual([])
    await context.close()

    const res = await call(oss, 'POST', '/session', { body: { accessKey: 'NOSUCHKEY', secretKey: WRONG_SECRET } })
    expect(res.status).toBe(401)
    expect(res.json.error.code).toBe('LoginFailed')
    expect(res.headers['set-cookie']).toBeUndefined()
    expect(JSON.stringify(res.json)).not.toContain(WRONG_SECRET)
    // Without a session nothing is listed.
    expect((await call(oss, 'GET', '/buckets')).status).toBe(401)
  })

  it("the brief's flow: sign in → bucket → Settings → Default Encryption → Modify → SSE-KMS → OK, and back to Disabled", async () => {
    const { context, page } = await newPage()
    await signIn(page, oss, ROOT_KEY, ROOT_SECRET)
    expect(await page.evaluate(() => document.cookie)).toBe('') // HttpOnly: no script reads the session

    // Create the bucket in the console; a bad name is explained.
    await page.getByLabel('New bucket name').fill('Bad_Name')
    await page.getByRole('button', { name: 'Create bucket' }).click()
    const createError = page.locator('#create-error')
    await createError.waitFor()
    expect(await createError.textContent()).toMatch(/not a valid bucket name/)
    await page.getByLabel('New bucket name').fill('photos')
    await page.getByRole('button', { name: 'Create bucket' }).click()
    await page.getByRole('link', { name: 'photos', exact: true }).waitFor()
    expect((await s3.send(new HeadBucketCommand({ Bucket: 'photos' }))).$metadata.httpStatusCode).toBe(200)
    await s3.send(new PutObjectCommand({ Bucket: 'photos', Key: 'before.txt', Body: 'written before encryption' }))

    await openModify(page, 'photos')
    expect(await encryptionState(page)).toBe('Disabled')
    const dialog = page.getByRole('dialog', { name: 'Default Encryption' })
    // oss mode: only Disabled and SSE-KMS with the bucket's service key.
    expect(await dialog.getByRole('radio').evaluateAll((rs) => rs.filter((r) => (r as HTMLElement).offsetParent !== null).length)).toBe(2)
    expect(await dialog.getByRole('radio', { name: 'Disabled' }).isChecked()).toBe(true)
    expect(await dialog.getByRole('radio', { name: 'SSE-S3 (AES256)' }).isVisible()).toBe(false)
    expect(await dialog.getByLabel('KMS key').isVisible()).toBe(false)
    expect(await dialog.getByLabel('Bucket Key').isVisible()).toBe(false)
    expect(await dialog.textContent()).toMatch(/only to objects written from now on/)
    expect(await dialog.textContent()).toMatch(/Signature Version 4 and sent over HTTPS/)

    // Cancel discards the choice.
    await dialog.getByRole('radio', { name: 'SSE-KMS' }).check()
    await dialog.getByRole('button', { name: 'Cancel' }).click()
    await dialog.waitFor({ state: 'hidden' })
    expect(await errorCode(s3.send(new GetBucketEncryptionCommand({ Bucket: 'photos' })))).toBe('ServerSideEncryptionConfigurationNotFoundError')

    await page.getByRole('button', { name: 'Modify' }).click()
    await dialog.getByRole('radio', { name: 'SSE-KMS' }).check()
    const shot = await dialog.screenshot({ path: join(oss.dataDir, 'dialog.png') })
    expect(shot.subarray(0, 8).toString('hex')).toBe('89504e470d0a1a0a')
    if (process.env.S3SSE_CONSOLE_SCREENSHOT) {
      writeFileSync(resolve(ROOT, process.env.S3SSE_CONSOLE_SCREENSHOT), await page.screenshot())
    }
    await pressOk(page)
    expect(await encryptionState(page)).toBe('SSE-KMS')
    expect(await page.locator('#enc-key').textContent()).toMatch(/service key.*s3-sse\/bucket\/photos/)

    // What S3 clients see: the same configuration; new objects are SSE-KMS, old ones not.
    expect((await bucketRule(s3, 'photos'))?.ApplyServerSideEncryptionByDefault?.SSEAlgorithm).toBe('aws:kms')
    const put = await s3.send(new PutObjectCommand({ Bucket: 'photos', Key: 'after.txt', Body: 'written after encryption was set' }))
    expect(put.ServerSideEncryption).toBe('aws:kms')
    await s3.send(new PutObjectCommand({ Bucket: 'photos', Key: 'tagged.txt', Body: 'with tags', Tagging: 'camera=leica&year=2026' }))
    await page.getByRole('tab', { name: 'Objects' }).click()
    expect(await objectEncryption(page, 'after.txt')).toBe('SSE-KMS')
    expect(await objectEncryption(page, 'before.txt')).toBe('none')
    // The Objects tab shows each object's tags (issue 12 item 2).
    expect(await objectCell(page, 'tagged.txt', 4)).toBe('camera=leica, year=2026')
    expect(await objectCell(page, 'before.txt', 4)).toBe('—')

    // Settings again: Modify → Disabled → OK; GetBucketEncryption is 404 again.
    await page.getByRole('tab', { name: 'Settings' }).click()
    await page.getByRole('button', { name: 'Modify' }).click()
    expect(await dialog.getByRole('radio', { name: 'SSE-KMS' }).isChecked()).toBe(true)
    await dialog.getByRole('radio', { name: 'Disabled' }).check()
    await pressOk(page)
    expect(await encryptionState(page)).toBe('Disabled')
    expect(await errorCode(s3.send(new GetBucketEncryptionCommand({ Bucket: 'photos' })))).toBe('ServerSideEncryptionConfigurationNotFoundError')
    // Objects keep what they were written with.
    expect((await s3.send(new HeadObjectCommand({ Bucket: 'photos', Key: 'after.txt' }))).ServerSideEncryption).toBe('aws:kms')
    await page.getByRole('tab', { name: 'Objects' }).click()
    expect(await objectEncryption(page, 'after.txt')).toBe('SSE-KMS')

    // Keyboard: arrow keys move between the tabs.
    await page.getByRole('tab', { name: 'Objects' }).focus()
    await page.keyboard.press('ArrowRight')
    await page.getByRole('button', { name: 'Modify' }).waitFor()
    expect(await page.getByRole('tab', { name: 'Settings' }).getAttribute('aria-selected')).toBe('true')

    // Sign out: the session is gone on the server too.
    const [cookie] = await context.cookies()
    expect(cookie).toMatchObject({ httpOnly: true, secure: true, sameSite: 'Strict', path: '/-/console' })
    await page.getByRole('button', { name: 'Sign out' }).click()
    await page.getByRole('heading', { name: 'Sign in' }).waitFor()
    expect((await call(oss, 'GET', '/buckets', { cookie: `${cookie.name}=${cookie.value}` })).status).toBe(401)
    await context.close()
  })

  it('Settings → Bucket policy shows and edits the policy; a saved policy grants another user access', async () => {
    await s3.send(new CreateBucketCommand({ Bucket: 'shared-docs' }))
    await s3.send(new PutObjectCommand({ Bucket: 'shared-docs', Key: 'readme.txt', Body: 'for carol' }))
    const carol = oss.client({ accessKeyId: CAROL.accessKey, secretAccessKey: CAROL.secretKey })
    expect(await errorCode(carol.send(new GetObjectCommand({ Bucket: 'shared-docs', Key: 'readme.txt' })))).toBe('AccessDenied')
    const { context, page } = await newPage()
    await signIn(page, oss, ROOT_KEY, ROOT_SECRET)
    await page.getByRole('link', { name: 'shared-docs', exact: true }).click()
    await page.getByRole('tab', { name: 'Settings' }).click()
    await page.getByRole('heading', { name: 'Bucket policy', level: 2 }).waitFor()
    // The state line fills in once the policy has been fetched.
    await page.locator('#policy-state', { hasText: 'No policy' }).waitFor()
    // A malformed document is explained and not stored.
    await page.getByLabel('Policy document (JSON)').fill('{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:Teleport", "Resource": "arn:aws:s3:::shared-docs/*"}]}')
    await page.getByRole('button', { name: 'Save policy' }).click()
    await page.locator('#policy-error').waitFor()
    expect(await page.locator('#policy-error').textContent()).toMatch(/invalid action/)
    expect(await errorCode(s3.send(new GetBucketPolicyCommand({ Bucket: 'shared-docs' })))).toBe('NoSuchBucketPolicy')
    const policy = { Version: '2012-10-17', Statement: [{ Sid: 'CarolReads', Effect: 'Allow', Principal: { AWS: 'carol' }, Action: 's3:GetObject', Resource: 'arn:aws:s3:::shared-docs/*' }] }
    await page.getByLabel('Policy document (JSON)').fill(JSON.stringify(policy))
    await page.getByRole('button', { name: 'Save policy' }).click()
    await page.locator('#policy-state', { hasText: 'This bucket has a policy.' }).waitFor()
    expect(JSON.parse((await s3.send(new GetBucketPolicyCommand({ Bucket: 'shared-docs' }))).Policy!)).toEqual(policy)
    expect(await (await carol.send(new GetObjectCommand({ Bucket: 'shared-docs', Key: 'readme.txt' }))).Body!.transformToString()).toBe('for carol')
    // Shown again on the next visit, and deleted from here.
    await page.reload()
    await page.getByRole('heading', { name: 'Bucket policy', level: 2 }).waitFor()
    await page.locator('#policy-state', { hasText: 'This bucket has a policy.' }).waitFor()
    expect(JSON.parse(await page.getByLabel('Policy document (JSON)').inputValue())).toEqual(policy)
    await page.getByRole('button', { name: 'Delete policy' }).click()
    await page.locator('#policy-state', { hasText: 'No policy' }).waitFor()
    expect(await errorCode(s3.send(new GetBucketPolicyCommand({ Bucket: 'shared-docs' })))).toBe('NoSuchBucketPolicy')
    expect(await errorCode(carol.send(new GetObjectCommand({ Bucket: 'shared-docs', Key: 'readme.txt' })))).toBe('AccessDenied')
    carol.destroy()
    await context.close()
    expect(pageProblems).toEqual([])
  })

  it("another user sees only their own buckets and can neither read nor change root's", async () => {
    await s3.send(new CreateBucketCommand({ Bucket: 'root-only' }))
    await s3.send(new PutBucketEncryptionCommand({ Bucket: 'root-only', ServerSideEncryptionConfiguration: { Rules: [{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms' } }] } }))
    await s3.send(new PutObjectCommand({ Bucket: 'root-only', Key: 'secret.txt', Body: 'root data' }))

    const { context, page } = await newPage()
    await signIn(page, oss, ALICE.accessKey, ALICE.secretKey)
    await page.getByLabel('New bucket name').fill('alice-docs')
    await page.getByRole('button', { name: 'Create bucket' }).click()
    await page.getByRole('link', { name: 'alice-docs', exact: true }).waitFor()
    const names = await page.locator('#bucket-rows tr td:first-child').allTextContents()
    expect(names).toEqual(['alice-docs'])
    // Typing root's bucket into the address bar gets a plain refusal.
    await page.goto(`${oss.httpsUrl}/-/console/#/buckets/root-only/settings`)
    await page.getByText('You do not have access to this bucket', { exact: false }).waitFor()
    await context.close()

    const alice = await apiLogin(oss, ALICE.accessKey, ALICE.secretKey)
    const forbidden = [
      await call(oss, 'GET', '/buckets/root-only/objects', { cookie: alice }),
      await call(oss, 'GET', '/buckets/root-only/encryption', { cookie: alice }),
      await call(oss, 'DELETE', '/buckets/root-only/encryption', { cookie: alice }),
      await call(oss, 'PUT', '/buckets/root-only/encryption', { cookie: alice, body: { algorithm: 'aws:kms' } }),
    ]
    for (const r of forbidden) expect(r.json.error.code).toBe('AccessDenied')
    expect(forbidden.map((r) => r.status)).toEqual([403, 403, 403, 403])
    expect((await bucketRule(s3, 'root-only'))?.ApplyServerSideEncryptionByDefault?.SSEAlgorithm).toBe('aws:kms')
    // A taken name is refused without saying whose it is.
    const taken = await call(oss, 'POST', '/buckets', { cookie: alice, body: { name: 'root-only' } })
    expect([taken.status, taken.json.error.code]).toEqual([409, 'BucketAlreadyExists'])

    // The KMS view: root sees root-only's service key, alice does not (its alias names the bucket).
    const root = await apiLogin(oss, ROOT_KEY, ROOT_SECRET)
    const rootKeys = (await call(oss, 'GET', '/kms/keys', { cookie: root })).json.keys as Array<Record<string, unknown>>
    const aliceKeys = (await call(oss, 'GET', '/kms/keys', { cookie: alice })).json.keys as Array<Record<string, unknown>>
    expect(rootKeys.map((k) => k.alias)).toContain('s3-sse/bucket/root-only')
    expect(aliceKeys.map((k) => k.alias)).not.toContain('s3-sse/bucket/root-only')
    // Id, alias, versions, state: never key material.
    for (const k of rootKeys) {
      expect(Object.keys(k).sort()).toEqual(expect.arrayContaining(['createdAt', 'current', 'enabled', 'keyId', 'managed', 'versions']))
      expect(Object.keys(k).every((f) => ['keyId', 'alias', 'description', 'createdAt', 'enabled', 'versions', 'current', 'managed'].includes(f))).toBe(true)
    }

    // Removing the user (`s3-sse user remove`) ends their open session: the server re-reads
    // the users file within a second.
    new UserStore(oss.dataDir).remove(ALICE.name)
    const deadline = Date.now() + 5000
    let status = 200
    while (status === 200 && Date.now() < deadline) {
      status = (await call(oss, 'GET', '/buckets', { cookie: alice })).status
      if (status === 200) await new Promise((r) => setTimeout(r, 100))
    }
    expect(status).toBe(401)
  })

  it('a change needs the session and the X-S3SSE-Console header, from this origin', async () => {
    const root = await apiLogin(oss, ROOT_KEY, ROOT_SECRET)
    await s3.send(new CreateBucketCommand({ Bucket: 'guarded' }))
    const set = { algorithm: 'aws:kms' }

    const noSession = await call(oss, 'PUT', '/buckets/guarded/encryption', { body: set })
    expect([noSession.status, noSession.json.error.code]).toEqual([401, 'NoSession'])
    const noHeader = await call(oss, 'PUT', '/buckets/guarded/encryption', { cookie: root, header: false, body: set })
    expect([noHeader.status, noHeader.json.error.code]).toEqual([403, 'Forbidden'])
    const otherSite = await call(oss, 'PUT', '/buckets/guarded/encryption', { cookie: root, body: set, origin: 'https://evil.example' })
    expect([otherSite.status, otherSite.json.error.code]).toEqual([403, 'Forbidden'])
    const forged = await call(oss, 'PUT', '/buckets/guarded/encryption', { cookie: 's3sse_console_1=' + 'A'.repeat(43), body: set })
    expect(forged.status).toBe(401)
    expect(await errorCode(s3.send(new GetBucketEncryptionCommand({ Bucket: 'guarded' })))).toBe('ServerSideEncryptionConfigurationNotFoundError')

    const create = await call(oss, 'POST', '/buckets', { cookie: root, header: false, body: { name: 'forged-bucket' } })
    expect(create.status).toBe(403)
    expect(await errorCode(s3.send(new HeadBucketCommand({ Bucket: 'forged-bucket' })))).toBe('NotFound')
    const logout = await call(oss, 'DELETE', '/session', { cookie: root, header: false })
    expect(logout.status).toBe(403)
    const login = await call(oss, 'POST', '/session', { header: false, body: { accessKey: ROOT_KEY, secretKey: ROOT_SECRET } })
    expect([login.status, login.headers['set-cookie']]).toEqual([403, undefined])

    // With all three, the same call works; oss mode's rules are PutBucketEncryption's.
    const ok = await call(oss, 'PUT', '/buckets/guarded/encryption', { cookie: root, body: set, origin: oss.httpsUrl })
    expect(ok.status).toBe(200)
    expect(ok.json.encryption).toMatchObject({ algorithm: 'aws:kms', keyId: 's3-sse/bucket/guarded', key: null })
    expect((await bucketRule(s3, 'guarded'))?.ApplyServerSideEncryptionByDefault?.SSEAlgorithm).toBe('aws:kms')
    const aes = await call(oss, 'PUT', '/buckets/guarded/encryption', { cookie: root, body: { algorithm: 'AES256' } })
    expect([aes.status, aes.json.error.code]).toEqual([400, 'InvalidArgument'])
    expect(aes.json.error.message).toMatch(/SSEAlgorithm AES256 is not supported/)
    const named = await call(oss, 'PUT', '/buckets/guarded/encryption', { cookie: root, body: { algorithm: 'aws:kms', kmsMasterKeyId: 'my-key' } })
    expect([named.status, named.json.error.message]).toEqual([400, expect.stringMatching(/customer master keys are not offered/)])
  })

  it('the session cookie is HttpOnly, Secure, SameSite=Strict on /-/console, with a 256-bit token; logout clears it', async () => {
    const res = await call(oss, 'POST', '/session', { body: { accessKey: ROOT_KEY, secretKey: ROOT_SECRET } })
    const set = [res.headers['set-cookie']].flat()[0] as string
    const [pair, ...attrs] = set.split(';').map((s) => s.trim())
    expect(pair).toMatch(new RegExp(`^s3sse_console_${oss.httpsPort}=[A-Za-z0-9_-]{43}$`))
    expect(attrs.sort()).toEqual(['HttpOnly', 'Path=/-/console', 'SameSite=Strict', 'Secure'])
    expect(res.json).toEqual({ user: { name: 'root', accessKey: ROOT_KEY, root: true }, mode: 'oss', region: 'us-east-1' })
    expect((await call(oss, 'GET', '/session', { cookie: pair })).json.user.name).toBe('root')
    const out = await call(oss, 'DELETE', '/session', { cookie: pair })
    expect([out.headers['set-cookie']].flat()[0]).toMatch(/=; .*Max-Age=0/)
    expect((await call(oss, 'GET', '/session', { cookie: pair })).json).toEqual({ user: null })
  })

  it('never writes a secret to the server log', () => {
    const log = oss.output()
    expect(log).toContain('console: failed sign-in from')
    for (const secret of [ROOT_SECRET, ALICE.secretKey, WRONG_SECRET]) expect(log).not.toContain(secret)
  })
})

describe('web console, aws mode', () => {
  let s3: S3Client
  let keyId: string

  beforeAll(async () => {
    s3 = aws.client()
    // `s3-sse kms create` beside the running server does the same: the server sees new keys at once.
    const kms = await openEmbeddedKms(aws.dataDir)
    keyId = (await kms.createKey({ alias: 'console-key' })).keyId
    await kms.disableKey((await kms.createKey({ alias: 'retired-key' })).keyId)
    await kms.close()
    await s3.send(new CreateBucketCommand({ Bucket: 'reports' }))
  })

  it('offers SSE-S3 (AES256), SSE-KMS with a chosen key and a Bucket Key, as PutBucketEncryption takes them', async () => {
    const { context, page } = await newPage()
    await signIn(page, aws, ROOT_KEY, ROOT_SECRET)
    await openModify(page, 'reports')
    const dialog = page.getByRole('dialog', { name: 'Default Encryption' })
    for (const name of ['Disabled', 'SSE-KMS', 'SSE-S3 (AES256)']) expect(await dialog.getByRole('radio', { name }).isVisible(), name).toBe(true)
    const select = dialog.getByLabel('KMS key')
    const options = await select.locator('option').allTextContents()
    expect(options).toContain(`console-key (${keyId})`)
    expect(options.some((o) => o.includes('retired-key'))).toBe(false) // disabled keys are not offered

    await dialog.getByRole('radio', { name: 'SSE-KMS' }).check()
    await select.selectOption({ label: `console-key (${keyId})` })
    await dialog.getByLabel('Bucket Key').check()
    await pressOk(page)
    expect(await encryptionState(page)).toBe('SSE-KMS')
    expect(await page.locator('#enc-key').textContent()).toBe(`console-key (${keyId})`)
    expect(await page.locator('#enc-bk').textContent()).toBe('On')
    expect(await bucketRule(s3, 'reports')).toEqual({
      ApplyServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms', KMSMasterKeyID: keyId },
      BucketKeyEnabled: true,
    })
    const kmsPut = await s3.send(new PutObjectCommand({ Bucket: 'reports', Key: 'kms.txt', Body: 'under console-key' }))
    expect([kmsPut.ServerSideEncryption, kmsPut.SSEKMSKeyId]).toEqual(['aws:kms', keyId])

    // SSE-S3: the key choice is off, the result is AES256.
    await page.getByRole('button', { name: 'Modify' }).click()
    await dialog.getByRole('radio', { name: 'SSE-S3 (AES256)' }).check()
    expect(await select.isDisabled()).toBe(true)
    await pressOk(page)
    expect(await encryptionState(page)).toBe('SSE-S3 (AES256)')
    expect((await bucketRule(s3, 'reports'))?.ApplyServerSideEncryptionByDefault).toEqual({ SSEAlgorithm: 'AES256' })
    await s3.send(new PutObjectCommand({ Bucket: 'reports', Key: 'aes.txt', Body: 'sse-s3' }))
    await page.getByRole('tab', { name: 'Objects' }).click()
    expect(await objectEncryption(page, 'aes.txt')).toBe('AES256')
    expect(await objectEncryption(page, 'kms.txt')).toBe('SSE-KMS')

    // The server's refusal reaches the dialog in plain words, and nothing changes: the
    // chosen key is disabled between opening the dialog and pressing OK.
    await page.getByRole('tab', { name: 'Settings' }).click()
    await page.getByRole('button', { name: 'Modify' }).click()
    await dialog.getByRole('radio', { name: 'SSE-KMS' }).check()
    await select.selectOption({ label: `console-key (${keyId})` })
    const kms = await openEmbeddedKms(aws.dataDir)
    await kms.disableKey(keyId)
    await kms.close()
    await dialog.getByRole('button', { name: 'OK' }).click()
    const alert = dialog.getByRole('alert')
    await alert.filter({ hasText: 'disabled' }).waitFor()
    expect(await alert.textContent()).toBe(`The KMS key ${keyId} is disabled.`)
    expect(await dialog.isVisible()).toBe(true)
    expect((await bucketRule(s3, 'reports'))?.ApplyServerSideEncryptionByDefault).toEqual({ SSEAlgorithm: 'AES256' })
    await dialog.getByRole('button', { name: 'Cancel' }).click()
    await context.close()
  })

  it('a key that does not exist is refused as PutBucketEncryption refuses it', async () => {
    const root = await apiLogin(aws, ROOT_KEY, ROOT_SECRET)
    const res = await call(aws, 'PUT', '/buckets/reports/encryption', { cookie: root, body: { algorithm: 'aws:kms', kmsMasterKeyId: 'alias/no-such-key' } })
    expect([res.status, res.json.error]).toEqual([400, { code: 'InvalidArgument', message: 'The KMS key alias/no-such-key named by KMSMasterKeyID does not exist.' }])
    const who = await call(aws, 'GET', '/session', { cookie: root })
    expect(who.json.mode).toBe('aws')
  })
})

afterAll(() => {
  expect(pageProblems).toEqual([])
})
