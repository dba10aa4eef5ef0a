/**
 * Helpers of the reliability suite: raw requests that no SDK sends (cut bodies, stalled
 * uploads, pipelined requests on one connection), and the checks every test ends with —
 * the server process is still alive and still answers.
 */
import https from 'node:https'
import tls from 'node:tls'
import { expect } from 'vitest'
import { CreateBucketCommand, PutBucketEncryptionCommand, type S3Client } from '@aws-sdk/client-s3'
import { rawRequest, type RawResponse, type TestServer } from '../server/helpers.js'

export const KMS_RULE = { Rules: [{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms' as const } }] }

/** The process has not exited and /-/health answers 200. */
export async function expectAlive(server: TestServer, why = ''): Promise<void> {
  expect(server.proc.exitCode, `server exited ${why}:\n${server.output()}`).toBeNull()
  expect(server.proc.signalCode, `server killed ${why}`).toBeNull()
  const res = await rawRequest(server, { method: 'GET', path: '/-/health' })
  expect(res.status, why).toBe(200)
}

export async function makeBucket(s3: S3Client, name: string, encrypted: boolean): Promise<void> {
  await s3.send(new CreateBucketCommand({ Bucket: name }))
  if (encrypted) await s3.send(new PutBucketEncryptionCommand({ Bucket: name, ServerSideEncryptionConfiguration: KMS_RULE }))
}

/**
 * Writes raw bytes over one TLS connection and collects what comes back until the server
 * closes it or `ms` pass. For requests a client library would refuse to send.
 */
export function rawExchange(server: TestServer, bytes: Buffer | string, opts: { ms?: number; endInput?: boolean } = {}): Promise<{ data: string; closed: boolean; error?: string }> {
  const { ms = 5000, endInput = false } = opts
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port: server.httpsPort, ca: server.ca, servername: 'localhost' }, () => {
      socket.write(bytes)
      if (endInput) socket.end()
    })
    let data = ''
    let done = false
    const finish = (closed: boolean, error?: string) => {
      if (done) return
      done = true
      clearTimeout(timer)
      socket.destroy()
      resolve({ data, closed, error })
    }
    const timer = setTimeout(() => finish(false), ms)
    socket.on('data', (d) => (data += d.toString('latin1')))
    socket.on('end', () => finish(true))
    socket.on('close', () => finish(true))
    socket.on('error', (e) => finish(true, e.message))
  })
}

/** The status codes of every HTTP response in a raw exchange, in order. */
export function statuses(data: string): number[] {
  return [...data.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]))
}

/** Sends requests one after the other over a single keep-alive connection. */
export function oneConnection(server: TestServer): { agent: https.Agent; send(opts: Parameters<typeof rawRequest>[1]): Promise<RawResponse>; close(): void } {
  const agent = new https.Agent({ ca: server.ca, keepAlive: true, maxSockets: 1 })
  return {
    agent,
    send: (opts) => rawRequest(server, { ...opts, agent }),
    close: () => agent.destroy(),
  }
}

/** Rejects when `p` takes longer than `ms` (so a hang fails the test with a reason instead of a test timeout). */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms)
    p.then(
      (v) => {
        clearTimeout(t)
        resolve(v)
      },
      (e) => {
        clearTimeout(t)
        reject(e)
      },
    )
  })
}

/** Waits until `check` returns a value (polling), or fails after `ms`. */
export async function waitFor<T>(what: string, check: () => T | undefined | Promise<T | undefined>, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms
  for (;;) {
    const v = await check()
    if (v !== undefined && v !== false) return v
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}
