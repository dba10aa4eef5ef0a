/**
 * One request must never crash the server, hang a connection, answer 500 or leak a file
 * descriptor: the cases found by hand (issue 10, items 3, 4, 5, 11, 12), each against the
 * real server process, each followed by a check that the process still serves.
 */
import { readdirSync } from 'node:fs'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3'
import { createPresignedPost } from '@aws-sdk/s3-presigned-post'
import { getSignedUrl } from '@aws-sdk/s3-request-presigner'
import {
  postForm,
  rawRequest,
  removeDir,
  ROOT_KEY,
  ROOT_SECRET,
  signingKey,
  signRequest,
  startServer,
  stopAll,
  xmlCode,
  type TestServer,
} from '../server/helpers.js'
import { createHmac } from 'node:crypto'
import { expectAlive, makeBucket, oneConnection, rawExchange, statuses, within } from './helpers.js'

let server: TestServer
let s3: S3Client

async function fresh(): Promise<void> {
  s3?.destroy()
  if (server) removeDir(server.dataDir)
  server = await startServer()
  s3 = server.client()
  await makeBucket(s3, 'plain', false)
  await makeBucket(s3, 'secret', true)
  await s3.send(new PutObjectCommand({ Bucket: 'plain', Key: 'obj', Body: 'plain object body' }))
  await s3.send(new PutObjectCommand({ Bucket: 'secret', Key: 'obj', Body: 'encrypted object body' }))
}

beforeAll(fresh)
// A test that kills the server fails itself, not every test after it.
beforeEach(async () => {
  if (server.proc.exitCode !== null || server.proc.signalCode !== null) await fresh()
})

afterAll(async () => {
  s3?.destroy()
  await stopAll()
  if (server) removeDir(server.dataDir)
})

/** A multipart/form-data body from raw part texts (for what browsers never send). */
function rawForm(boundary: string, parts: string[], close = true): string {
  return parts.map((p) => `--${boundary}\r\n${p}\r\n`).join('') + (close ? `--${boundary}--\r\n` : '')
}

function formRequest(path: string, boundary: string, body: string): string {
  return (
    `POST ${path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: multipart/form-data; boundary=${boundary}\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`
  )
}

/** A POST policy signed with the root key, as a browser form carries it. */
function signedPolicyFields(policy: string, key = 'up/${filename}'): Record<string, string> {
  const now = new Date()
  const amzDate = now.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '')
  const date = amzDate.slice(0, 8)
  const credential = `${ROOT_KEY}/${date}/us-east-1/s3/aws4_request`
  const policyB64 = Buffer.from(policy, 'utf8').toString('base64')
  const signature = createHmac('sha256', signingKey(ROOT_SECRET, date)).update(policyB64).digest('hex')
  return { key, policy: policyB64, 'x-amz-algorithm': 'AWS4-HMAC-SHA256', 'x-amz-credential': credential, 'x-amz-date': amzDate, 'x-amz-signature': signature }
}

function openFds(): number {
  return readdirSync(`/proc/${server.proc.pid}/fd`).length
}

describe('POST forms (PostObject) that are malformed', () => {
  it('a part whose Content-Disposition has no name is a 400, not a crash (unauthenticated)', async () => {
    const body = rawForm('b', ['Content-Disposition: form-data\r\n\r\nvalue', 'Content-Disposition: form-data; name="file"; filename="x"\r\n\r\ndata'])
    const res = await rawExchange(server, formRequest('/anything', 'b', body))
    const got = statuses(res.data)
    expect(got).toHaveLength(1)
    expect(got[0]).toBeGreaterThanOrEqual(400)
    expect(got[0]).toBeLessThan(500)
    await expectAlive(server, 'after a nameless form part')
  })

  it('a file part without its closing boundary answers once and does not kill the process (unauthenticated)', async () => {
    const body = rawForm('b', ['Content-Disposition: form-data; name="key"\r\n\r\nk', 'Content-Disposition: form-data; name="file"; filename="x"\r\n\r\n' + 'x'.repeat(5000)], false)
    const res = await rawExchange(server, formRequest('/plain', 'b', body))
    const got = statuses(res.data)
    expect(got).toHaveLength(1)
    expect([400, 403]).toContain(got[0])
    await expectAlive(server, 'after a form cut inside the file part')
  })

  it('a signed form cut inside the file part is 400 MalformedPOSTRequest and stores nothing', async () => {
    const { fields } = await createPresignedPost(s3, { Bucket: 'plain', Key: 'up/${filename}', Expires: 300 })
    const parts = Object.entries(fields).map(([n, v]) => `Content-Disposition: form-data; name="${n}"\r\n\r\n${v}`)
    parts.push('Content-Disposition: form-data; name="file"; filename="cut.bin"\r\nContent-Type: application/octet-stream\r\n\r\n' + 'y'.repeat(20_000))
    const res = await rawExchange(server, formRequest('/plain', 'b', rawForm('b', parts, false)))
    expect(statuses(res.data)).toEqual([400])
    expect(res.data).toContain('<Code>MalformedPOSTRequest</Code>')
    const head = await rawRequest(server, { method: 'HEAD', path: '/plain/up/cut.bin', headers: await signRequest(server, { method: 'HEAD', path: '/plain/up/cut.bin', payloadHash: 'UNSIGNED-PAYLOAD' }) })
    expect(head.status).toBe(404)
    await expectAlive(server)
  })

  it('signed policies that decode to null, a number, or nest 5,000 deep are 400 InvalidPolicyDocument', async () => {
    const deep = `{"expiration":"${new Date(Date.now() + 600_000).toISOString()}","conditions":[${'['.repeat(5000)}${']'.repeat(5000)}]}`
    const huge = '['.repeat(100_000) + ']'.repeat(100_000)
    const cases: Array<[string, string]> = [['null', 'InvalidPolicyDocument'], ['42', 'InvalidPolicyDocument'], ['"text"', 'InvalidPolicyDocument'], ['[]', 'InvalidPolicyDocument'], [deep, 'InvalidPolicyDocument'], [huge, 'MaxPostPreDataLengthExceededError']]
    for (const [policy, code] of cases) {
      const { body, contentType } = postForm(signedPolicyFields(policy), Buffer.from('file body'), 'p.txt')
      const res = await rawRequest(server, { method: 'POST', path: '/plain', headers: { 'content-type': contentType }, body })
      expect([res.status, xmlCode(res)], policy.slice(0, 40)).toEqual([400, code])
    }
    await expectAlive(server)
  })

  it('a refused upload (content-length-range exceeded) leaves the keep-alive connection usable or closes it', async () => {
    const { url, fields } = await createPresignedPost(s3, { Bucket: 'plain', Key: 'limited', Expires: 300, Conditions: [['content-length-range', 0, 10]] })
    expect(url).toContain('/plain')
    const { body, contentType } = postForm(fields, Buffer.alloc(256 * 1024, 7), 'big.bin')
    const conn = oneConnection(server)
    try {
      const first = await within(conn.send({ method: 'POST', path: '/plain', headers: { 'content-type': contentType }, body }), 10_000, 'the refused POST')
      expect([first.status, xmlCode(first)]).toEqual([400, 'EntityTooLarge'])
      const second = await within(conn.send({ method: 'GET', path: '/-/health' }), 10_000, 'the next request on that connection')
      expect(second.status).toBe(200)
    } finally {
      conn.close()
    }
    await expectAlive(server)
  })
})

describe('response-* overrides that no header can carry', () => {
  const overrides = ['response-content-type', 'response-content-language', 'response-expires', 'response-cache-control', 'response-content-disposition', 'response-content-encoding']

  it('answer 400 InvalidArgument on GET and HEAD, for plain and encrypted objects, and close the object\'s files', async () => {
    // Warm up: the first requests open long-lived descriptors (the database, the keyring).
    for (const b of ['plain', 'secret']) await s3.send(new GetObjectCommand({ Bucket: b, Key: 'obj' })).then((r) => r.Body!.transformToByteArray())
    const before = openFds()
    let sent = 0
    for (const value of ['%E2%98%83', 'a%0D%0Ax-injected%3A%201', '%00']) {
      for (const name of overrides) {
        for (const method of ['GET', 'HEAD']) {
          for (const bucket of ['plain', 'secret']) {
            const path = `/${bucket}/obj?${name}=${value}`
            const headers = await signRequest(server, { method, path, payloadHash: 'UNSIGNED-PAYLOAD' })
            const res = await rawRequest(server, { method, path, headers })
            expect(res.status, `${method} ${path}`).toBe(400)
            if (method === 'GET') expect(xmlCode(res), path).toBe('InvalidArgument')
            expect(res.headers['x-injected']).toBeUndefined()
            sent++
          }
        }
      }
    }
    expect(sent).toBe(72)
    // Each refused GET used to hold the object's file open until garbage collection.
    expect(openFds() - before).toBeLessThan(8)
    await expectAlive(server)
  })

  it('a value a header can carry is still returned (presigned URL from the SDK)', async () => {
    const url = await getSignedUrl(s3, new GetObjectCommand({ Bucket: 'secret', Key: 'obj', ResponseContentType: 'text/x-fine', ResponseContentDisposition: 'attachment; filename="a b.txt"' }), { expiresIn: 60 })
    const u = new URL(url)
    const res = await rawRequest(server, { method: 'GET', path: u.pathname + u.search })
    expect(res.status).toBe(200)
    expect(res.headers['content-type']).toBe('text/x-fine')
    expect(res.headers['content-disposition']).toBe('attachment; filename="a b.txt"')
    expect(res.body.toString()).toBe('encrypted object body')
  })
})
