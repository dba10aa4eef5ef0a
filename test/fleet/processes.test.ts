/**
 * A fleet of real `s3-sse serve` processes (--store s3 on Ceph RGW, --meta postgres://) behind a
 * real HAProxy (TCP passthrough, round robin, health checks, redispatch):
 *
 * - they start together (schema migrations under the advisory lock) and share users added with
 *   `s3-sse user add --meta …`;
 * - a console session opened through the load balancer works on every gateway, and a logout on
 *   one ends it on all;
 * - `kill -9` of one gateway while a client is uploading through it and others upload through the
 *   load balancer: the others keep serving, the client's retry through another gateway succeeds,
 *   and every acknowledged object is there, byte for byte.
 */
import { randomBytes } from 'node:crypto'
import https from 'node:https'
import { Readable } from 'node:stream'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { CreateBucketCommand, DeleteBucketCommand, GetObjectCommand, ListObjectsV2Command, PutBucketEncryptionCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3'
import { clientFor, processFleet, type ProcessFleet } from '../helpers/fleet.js'
import { describeWithServices } from '../helpers/services.js'
import { ROOT_KEY, ROOT_SECRET, runCli } from '../server/helpers.js'

async function get(s3: S3Client, Bucket: string, Key: string): Promise<Buffer> {
  const o = await s3.send(new GetObjectCommand({ Bucket, Key }))
  return Buffer.from(await o.Body!.transformToByteArray())
}

/** A console API call over HTTPS to `url` (a gateway or the load balancer). */
function consoleCall(url: string, ca: string, opts: { method: string; path: string; cookie?: string; body?: unknown }): Promise<{ status: number; setCookie?: string; json: unknown }> {
  const u = new URL(url)
  const payload = opts.body === undefined ? undefined : Buffer.from(JSON.stringify(opts.body))
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: u.hostname,
        port: u.port,
        method: opts.method,
        path: `/-/console/api/${opts.path}`,
        ca,
        agent: false,
        headers: {
          'x-s3sse-console': '1',
          ...(opts.cookie ? { cookie: opts.cookie } : {}),
          ...(payload ? { 'content-type': 'application/json', 'content-length': String(payload.length) } : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c) => chunks.push(c))
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString()
          resolve({ status: res.statusCode ?? 0, setCookie: res.headers['set-cookie']?.[0], json: text ? JSON.parse(text) : null })
        })
      },
    )
    req.on('error', reject)
    req.end(payload)
  })
}

describeWithServices('a fleet of s3-sse processes behind HAProxy', ['rgw', 'postgres'], () => {
  let fleet: ProcessFleet

  beforeAll(async () => {
    fleet = await processFleet(3, { lb: true })
  })

  afterAll(async () => {
    await fleet?.stop()
  })

  it('started together on one fresh database, and share the users `s3-sse user add --meta` adds', async () => {
    const added = await runCli(['user', 'add', 'carol', '--meta', fleet.db.url])
    expect(added.code).toBe(0)
    const accessKeyId = /access key: (\S+)/.exec(added.stdout)![1]
    const secretAccessKey = /secret key: (\S+)/.exec(added.stdout)![1]
    for (const [i, g] of fleet.gateways.entries()) {
      const s3 = clientFor(g.httpsUrl, fleet.cert.pem, { accessKeyId, secretAccessKey })
      await s3.send(new CreateBucketCommand({ Bucket: `carol-${i}` }))
      s3.destroy()
    }
    const list = await runCli(['user', 'list', '--meta', fleet.db.url])
    expect(list.stdout).toContain(`carol\t${accessKeyId}`)
    // The secret never shows in a listing.
    expect(list.stdout).not.toContain(secretAccessKey)
    // Buckets are owned by the user's id: a user who still owns some is not removed.
    const refused = await runCli(['user', 'remove', 'carol', '--meta', fleet.db.url])
    expect(refused.code).not.toBe(0)
    expect(refused.stderr).toContain('owns 3 bucket(s)')
    for (const [i, g] of fleet.gateways.entries()) {
      const s3 = clientFor(g.httpsUrl, fleet.cert.pem, { accessKeyId, secretAccessKey })
      await s3.send(new DeleteBucketCommand({ Bucket: `carol-${(i + 1) % 3}` }))
      s3.destroy()
    }
    const removed = await runCli(['user', 'remove', 'carol', '--meta', fleet.db.url])
    expect(removed.code, removed.stderr).toBe(0)
    await new Promise((r) => setTimeout(r, 1200)) // each gateway's user cache holds a second
    const s3 = clientFor(fleet.lb!.url, fleet.cert.pem, { accessKeyId, secretAccessKey, keepAlive: false })
    await expect(s3.send(new CreateBucketCommand({ Bucket: 'carol-again' }))).rejects.toMatchObject({ name: 'InvalidAccessKeyId' })
    s3.destroy()
  })

  it('a console session opened through the load balancer works on every gateway; a logout ends it everywhere', async () => {
    const lb = fleet.lb!.url
    const login = await consoleCall(lb, fleet.cert.pem, { method: 'POST', path: 'session', body: { accessKey: ROOT_KEY, secretKey: ROOT_SECRET } })
    expect(login.status).toBe(200)
    // Named after the load balancer's port, the one the browser sees.
    expect(login.setCookie).toMatch(new RegExp(`^s3sse_console_${fleet.lb!.port}=`))
    const cookie = login.setCookie!.split(';')[0]
    // Each request on a new connection: round robin takes them to every gateway in turn.
    for (let i = 0; i < 6; i++) {
      const r = await consoleCall(lb, fleet.cert.pem, { method: 'GET', path: 'session', cookie })
      expect(r.json).toMatchObject({ user: { name: 'root' } })
    }
    for (const g of fleet.gateways) {
      const r = await consoleCall(g.httpsUrl, fleet.cert.pem, { method: 'GET', path: 'buckets', cookie })
      expect(r.status).toBe(200)
    }
    const out = await consoleCall(fleet.gateways[2].httpsUrl, fleet.cert.pem, { method: 'DELETE', path: 'session', cookie })
    expect(out.status).toBe(200)
    for (const g of fleet.gateways) {
      const r = await consoleCall(g.httpsUrl, fleet.cert.pem, { method: 'GET', path: 'buckets', cookie })
      expect(r.status).toBe(401)
    }
  })

  it('kill -9 of a gateway mid-upload: the others keep serving, the retry through another gateway succeeds, nothing acknowledged is lost', async () => {
    const lbClient = clientFor(fleet.lb!.url, fleet.cert.pem, { keepAlive: false, maxAttempts: 4 })
    await lbClient.send(new CreateBucketCommand({ Bucket: 'survive' }))
    await lbClient.send(new PutBucketEncryptionCommand({ Bucket: 'survive', ServerSideEncryptionConfiguration: { Rules: [{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms' } }] } }))
    const victim = fleet.gateways[1]
    const acknowledged = new Map<string, Buffer>()

    // Load through the load balancer, before, during and after the kill.
    let stop = false
    const load = (async () => {
      for (let i = 0; !stop || i < 12; i++) {
        const data = randomBytes(50_000 + i)
        await lbClient.send(new PutObjectCommand({ Bucket: 'survive', Key: `load/${i}`, Body: data }))
        acknowledged.set(`load/${i}`, data)
      }
    })()

    // A client uploading straight to the victim, slowly: it is mid-body when the victim dies.
    const big = randomBytes(2 * 1024 * 1024)
    let sent = 0
    let midBody!: () => void
    const reached = new Promise<void>((r) => (midBody = r))
    const slow = Readable.from((async function* () {
      for (let i = 0; i < big.length; i += 64 * 1024) {
        if (sent > 512 * 1024) midBody()
        await new Promise((r) => setTimeout(r, 40))
        sent += 64 * 1024
        yield big.subarray(i, i + 64 * 1024)
      }
    })())
    const direct = clientFor(victim.httpsUrl, fleet.cert.pem, { maxAttempts: 1 })
    const upload = direct.send(new PutObjectCommand({ Bucket: 'survive', Key: 'big', Body: slow, ContentLength: big.length }))
    await reached
    victim.proc.kill('SIGKILL')
    await expect(upload).rejects.toBeDefined()
    direct.destroy()
    // The client retries through the load balancer: another gateway takes it.
    await lbClient.send(new PutObjectCommand({ Bucket: 'survive', Key: 'big', Body: big }))
    acknowledged.set('big', big)
    stop = true
    await load
    expect(acknowledged.size).toBeGreaterThanOrEqual(13)

    // Every acknowledged object, through every surviving gateway and the load balancer.
    const survivors = fleet.gateways.filter((g) => g !== victim).map((g) => clientFor(g.httpsUrl, fleet.cert.pem))
    for (const [key, data] of acknowledged) {
      expect((await get(lbClient, 'survive', key)).equals(data)).toBe(true)
      for (const s of survivors) expect((await get(s, 'survive', key)).equals(data)).toBe(true)
    }
    const listed = await lbClient.send(new ListObjectsV2Command({ Bucket: 'survive' }))
    expect(new Set(listed.Contents!.map((c) => c.Key))).toEqual(new Set(acknowledged.keys()))
    for (const s of survivors) s.destroy()
    lbClient.destroy()
  })
})
