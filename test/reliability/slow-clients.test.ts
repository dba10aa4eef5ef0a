/**
 * Slow and vanishing clients (issue 10, items 6 and 17, and the slowloris bounds): a stalled
 * upload is answered and cleaned up, slow headers and silent connections are cut, a client
 * that stops reading a download is let go, and a client that hangs up is logged as an
 * aborted request, not as a server failure. The server runs with short timeouts so the
 * bounds show within seconds; the assertions are generous multiples of them.
 */
import { readdirSync } from 'node:fs'
import https from 'node:https'
import net from 'node:net'
import tls from 'node:tls'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { HeadObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3'
import { getSignedUrl } from '@aws-sdk/s3-request-presigner'
import { errorCode, removeDir, startServer, stopAll, type TestServer } from '../server/helpers.js'
import { expectAlive, makeBucket, waitFor } from './helpers.js'

const IDLE_MS = 1500
const HEADERS_MS = 1500
/** Nothing here should take longer than this once the configured bound has passed. */
const BOUND_MS = 15_000

let server: TestServer
let s3: S3Client

beforeAll(async () => {
  server = await startServer({ args: ['--idle-timeout-ms', String(IDLE_MS), '--header-timeout-ms', String(HEADERS_MS)] })
  s3 = server.client()
  await makeBucket(s3, 'slow', false)
  await makeBucket(s3, 'slow-enc', true)
  await s3.send(new PutObjectCommand({ Bucket: 'slow', Key: 'big', Body: Buffer.alloc(24 * 1024 * 1024, 1) }))
  await s3.send(new PutObjectCommand({ Bucket: 'slow-enc', Key: 'big', Body: Buffer.alloc(24 * 1024 * 1024, 2) }))
})

afterAll(async () => {
  s3?.destroy()
  await stopAll()
  if (server) removeDir(server.dataDir)
})

const tmpFiles = () => readdirSync(join(server.dataDir, 'tmp'))

/** A presigned PUT that declares `declared` bytes, sends `sent` and then stalls. */
async function stalledPut(bucket: string, key: string, declared: number, sent: number) {
  const url = new URL(await getSignedUrl(s3, new PutObjectCommand({ Bucket: bucket, Key: key }), { expiresIn: 300 }))
  const req = https.request({ host: url.hostname, port: url.port, method: 'PUT', path: url.pathname + url.search, ca: server.ca, headers: { 'content-length': String(declared) }, agent: false })
  const answer = new Promise<{ status: number; body: string } | { error: string }>((resolve) => {
    req.on('response', (res) => {
      let body = ''
      res.on('data', (d) => (body += d))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
      res.on('error', (e) => resolve({ error: e.message }))
    })
    req.on('error', (e) => resolve({ error: e.message }))
  })
  req.write(Buffer.alloc(sent, 3))
  return { req, answer }
}

describe('stalled uploads', () => {
  it('8 PUTs that stall mid-body are answered 400 RequestTimeout, store nothing and leave no tmp/ file', async () => {
    const puts = await Promise.all(
      Array.from({ length: 8 }, (_, i) => stalledPut(i % 2 ? 'slow-enc' : 'slow', `stalled-${i}`, 1024 * 1024, 1000)),
    )
    await waitFor('the uploads to be staged', () => (tmpFiles().length > 0 ? true : undefined))
    const started = Date.now()
    const answers = await Promise.all(puts.map((p) => p.answer))
    expect(Date.now() - started).toBeLessThan(BOUND_MS)
    for (const a of answers) {
      expect(a).toMatchObject({ status: 400 })
      expect((a as { body: string }).body).toContain('<Code>RequestTimeout</Code>')
    }
    for (const p of puts) p.req.destroy()
    await waitFor('tmp/ to be empty', () => (tmpFiles().length === 0 ? true : undefined), BOUND_MS)
    for (let i = 0; i < 8; i++) {
      expect(await errorCode(s3.send(new HeadObjectCommand({ Bucket: i % 2 ? 'slow-enc' : 'slow', Key: `stalled-${i}` })))).toBe('NotFound')
    }
    await expectAlive(server)
  })

  it('a client that hangs up mid-upload is logged as aborted, not as an internal error, and leaves no tmp/ file', async () => {
    const before = server.output().length
    const put = await stalledPut('slow-enc', 'hung-up', 4 * 1024 * 1024, 256 * 1024)
    await waitFor('the upload to be staged', () => (tmpFiles().length > 0 ? true : undefined))
    put.req.destroy()
    await waitFor('tmp/ to be empty', () => (tmpFiles().length === 0 ? true : undefined), BOUND_MS)
    const log = await waitFor('the aborted request in the log', () => {
      const out = server.output().slice(before)
      return /aborted/.test(out) ? out : undefined
    })
    expect(log).toMatch(/PUT \/slow-enc\/hung-up.*aborted by the client/)
    expect(log).not.toMatch(/InternalError|unhandled|ECONNRESET/)
    await expectAlive(server)
  })
})

describe('slowloris bounds', () => {
  it('headers sent a byte at a time are cut off after the header timeout', async () => {
    const result = await new Promise<{ closedAfter: number; data: string }>((resolve) => {
      const start = Date.now()
      let data = ''
      const socket = tls.connect({ host: '127.0.0.1', port: server.httpsPort, ca: server.ca, servername: 'localhost' }, () => {
        socket.write('GET /-/health HTTP/1.1\r\nHost: localhost\r\nX-Slow: ')
        const drip = setInterval(() => {
          if (Date.now() - start > 3 * BOUND_MS) clearInterval(drip)
          else socket.write('a')
        }, 100)
        socket.on('close', () => clearInterval(drip))
      })
      socket.on('data', (d) => (data += d))
      socket.on('error', () => undefined)
      socket.on('close', () => resolve({ closedAfter: Date.now() - start, data }))
    })
    expect(result.closedAfter).toBeLessThan(BOUND_MS)
    expect(result.data).not.toContain('200 OK')
    await expectAlive(server)
  })

  it('a connection that never starts its TLS handshake is closed', async () => {
    const closedAfter = await new Promise<number>((resolve) => {
      const start = Date.now()
      const socket = net.connect({ host: '127.0.0.1', port: server.httpsPort })
      socket.on('error', () => undefined)
      socket.on('close', () => resolve(Date.now() - start))
      setTimeout(() => socket.destroy(), 3 * BOUND_MS).unref()
    })
    expect(closedAfter).toBeLessThan(BOUND_MS)
  })

  for (const bucket of ['slow', 'slow-enc']) {
    it(`a download the client stops reading is let go, and logged as aborted (${bucket})`, async () => {
      const before = server.output().length
      const url = new URL(await getSignedUrl(s3, new (await import('@aws-sdk/client-s3')).GetObjectCommand({ Bucket: bucket, Key: 'big' }), { expiresIn: 300 }))
      // Read the first bytes, stop reading for well past the idle timeout, then read on: a
      // connection the server let go ends short of the object.
      const received = await new Promise<number>((resolve) => {
        let bytes = 0
        const socket = tls.connect({ host: '127.0.0.1', port: server.httpsPort, ca: server.ca, servername: 'localhost' }, () => {
          socket.write(`GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\n\r\n`)
        })
        socket.once('data', () => {
          socket.pause()
          setTimeout(() => socket.resume(), 3 * IDLE_MS)
        })
        socket.on('data', (d) => (bytes += d.length))
        socket.on('error', () => undefined)
        socket.on('close', () => resolve(bytes))
        setTimeout(() => socket.destroy(), 3 * BOUND_MS).unref()
      })
      const outcome = received < 24 * 1024 * 1024 ? 'closed' : `read all ${received} bytes`
      expect(outcome).toBe('closed')
      const log = await waitFor('the aborted download in the log', () => {
        const out = server.output().slice(before)
        return /aborted/.test(out) ? out : undefined
      })
      expect(log).not.toMatch(/InternalError|Premature close|unhandled/)
      await expectAlive(server)
    })
  }

  it('a client that hangs up mid-download is logged as aborted, not as an internal error', async () => {
    const before = server.output().length
    const url = new URL(await getSignedUrl(s3, new (await import('@aws-sdk/client-s3')).GetObjectCommand({ Bucket: 'slow-enc', Key: 'big' }), { expiresIn: 300 }))
    await new Promise<void>((resolve) => {
      const req = https.get({ host: url.hostname, port: url.port, path: url.pathname + url.search, ca: server.ca, agent: false }, (res) => {
        res.once('data', () => {
          req.destroy()
          resolve()
        })
      })
      req.on('error', () => undefined)
    })
    const log = await waitFor('the aborted download in the log', () => {
      const out = server.output().slice(before)
      return /aborted/.test(out) ? out : undefined
    })
    expect(log).toMatch(/GET \/slow-enc\/big.*aborted by the client/)
    expect(log).not.toMatch(/InternalError|Premature close|unhandled/)
    await expectAlive(server)
  })
})
