/**
 * End-to-end helpers: start the real server process on ephemeral ports in a fresh data
 * dir, and S3 clients that trust its self-signed certificate.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createHash, createHmac, randomBytes } from 'node:crypto'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import https from 'node:https'
import http from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { S3Client, type S3ClientConfig } from '@aws-sdk/client-s3'
import { NodeHttpHandler } from '@smithy/node-http-handler'
import { SignatureV4 } from '@smithy/signature-v4'

// We run Node 20 on purpose (DESIGN.md); the SDK's notice about its future Node 22 floor is noise here.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true'

const ENTRY = fileURLToPath(new URL('./serve-entry.ts', import.meta.url))
export const ROOT = fileURLToPath(new URL('../..', import.meta.url))

export const ROOT_KEY = 'S3SSETESTROOTKEY0001'
export const ROOT_SECRET = 'test-root-secret-key-0123456789abcdef'

export interface TestServer {
  dataDir: string
  httpsUrl: string
  httpUrl: string
  httpsPort: number
  ca: Buffer
  proc: ChildProcess
  output(): string
  client(opts?: Partial<S3ClientConfig> & { accessKeyId?: string; secretAccessKey?: string; http?: boolean }): S3Client
  /** Sends SIGTERM and waits for the process to exit; returns its exit code. */
  stop(): Promise<number | null>
}

/** Every server process a test file started, so none outlives it even when a test fails. */
const running = new Set<ChildProcess>()
process.on('exit', () => {
  for (const p of running) p.kill('SIGKILL')
})

/** Stops every server this file started and still running (call from afterAll). */
export async function stopAll(): Promise<void> {
  await Promise.all(
    [...running].map(
      (p) =>
        new Promise<void>((resolve) => {
          if (p.exitCode !== null || p.signalCode !== null) return resolve()
          p.once('exit', () => resolve())
          p.kill('SIGTERM')
        }),
    ),
  )
}

export function tempDir(prefix = 's3sse-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix))
}

export function runCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--import', 'tsx', ENTRY, ...args], { cwd: ROOT, env: { ...process.env, ...env } })
    let stdout = ''
    let stderr = ''
    p.stdout.on('data', (d) => (stdout += d))
    p.stderr.on('data', (d) => (stderr += d))
    p.on('error', reject)
    p.on('exit', (code) => resolve({ code, stdout, stderr }))
  })
}

/**
 * Set (to a gateway count) by the fleet suites that run an end-to-end file of this folder against
 * a fleet behind a load balancer instead of one embedded server (test/fleet/*-on-fleet.test.ts).
 */
export const onFleet = (): boolean => Boolean(process.env.S3SSE_TEST_FLEET)

export async function startServer(
  opts: { dataDir?: string; env?: NodeJS.ProcessEnv; args?: string[]; rootFromEnv?: boolean; caFile?: string } = {},
): Promise<TestServer> {
  if (onFleet() && opts.dataDir === undefined && opts.env === undefined && opts.rootFromEnv !== false) {
    const { fleetAsTestServer } = await import('../helpers/fleet.js')
    return fleetAsTestServer(Number(process.env.S3SSE_TEST_FLEET), { args: opts.args })
  }
  const dataDir = opts.dataDir ?? tempDir()
  const env: NodeJS.ProcessEnv = { ...process.env, ...opts.env }
  if (opts.rootFromEnv !== false) {
    env.S3SSE_ACCESS_KEY = ROOT_KEY
    env.S3SSE_SECRET_KEY = ROOT_SECRET
  } else {
    delete env.S3SSE_ACCESS_KEY
    delete env.S3SSE_SECRET_KEY
  }
  const proc = spawn(
    process.execPath,
    ['--import', 'tsx', ENTRY, 'serve', '--data-dir', dataDir, '--host', '127.0.0.1', '--https-port', 'auto', '--http-port', 'auto', ...(opts.args ?? [])],
    { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] },
  )
  running.add(proc)
  proc.on('exit', () => running.delete(proc))
  let out = ''
  proc.stdout!.on('data', (d) => (out += d))
  proc.stderr!.on('data', (d) => (out += d))
  const urls = await new Promise<{ httpsUrl: string; httpUrl: string }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${out}`)), 30_000)
    const onData = () => {
      const m = /listening on (https:\/\/\S+) and (http:\/\/\S+)/.exec(out)
      if (m) {
        clearTimeout(timer)
        proc.stdout!.off('data', onData)
        resolve({ httpsUrl: m[1], httpUrl: m[2] })
      }
    }
    proc.stdout!.on('data', onData)
    proc.on('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`server exited with ${code}:\n${out}`))
    })
  })
  const ca = readFileSync(opts.caFile ?? join(dataDir, 'tls-cert.pem'))
  let exited: Promise<number | null> | undefined
  const exit = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)))
  return {
    dataDir,
    ...urls,
    httpsPort: Number(new URL(urls.httpsUrl).port),
    ca,
    proc,
    output: () => out,
    client(o = {}) {
      const { accessKeyId = ROOT_KEY, secretAccessKey = ROOT_SECRET, http: plain, ...rest } = o
      return new S3Client({
        region: 'us-east-1',
        endpoint: plain ? urls.httpUrl : urls.httpsUrl,
        forcePathStyle: true,
        credentials: { accessKeyId, secretAccessKey },
        requestHandler: new NodeHttpHandler({ httpsAgent: new https.Agent({ ca, keepAlive: true }) }),
        maxAttempts: 1,
        ...rest,
      })
    },
    stop() {
      exited ??= (async () => {
        if (proc.exitCode === null) proc.kill('SIGTERM')
        return exit
      })()
      return exited
    },
  }
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true })
}

export interface RawResponse {
  status: number
  headers: http.IncomingHttpHeaders
  body: Buffer
}

/** A raw HTTPS request (for what SDKs never send: unsigned, malformed, hand-signed). */
export function rawRequest(
  server: TestServer,
  opts: { method: string; path: string; headers?: Record<string, string>; body?: Buffer | string; plain?: boolean; host?: string; agent?: http.Agent },
): Promise<RawResponse> {
  const url = new URL(opts.plain ? server.httpUrl : server.httpsUrl)
  const lib = opts.plain ? http : https
  return new Promise((resolve, reject) => {
    const req = lib.request(
      {
        host: url.hostname,
        port: url.port,
        method: opts.method,
        path: opts.path,
        headers: { ...(opts.host ? { host: opts.host } : {}), ...opts.headers },
        ...(opts.plain ? {} : { ca: server.ca }),
        ...(opts.agent ? { agent: opts.agent } : {}),
      },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c) => chunks.push(c))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }))
        res.on('error', reject)
      },
    )
    req.on('error', reject)
    req.end(opts.body)
  })
}

/** The Code of an S3 error from the SDK (or undefined when the call succeeded). */
export async function errorCode(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p
    return undefined
  } catch (err) {
    const e = err as { Code?: string; name?: string; $metadata?: { httpStatusCode?: number } }
    return e.Code ?? e.name
  }
}

export async function errorStatus(p: Promise<unknown>): Promise<number | undefined> {
  try {
    await p
    return undefined
  } catch (err) {
    return (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode
  }
}

export function randomBuffer(size: number): Buffer {
  return randomBytes(size)
}

/** node:crypto SHA-256 / HMAC in the shape @smithy/signature-v4 expects. */
export class TestSha256 {
  private readonly h: ReturnType<typeof createHash> | ReturnType<typeof createHmac>
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.h = secret === undefined ? createHash('sha256') : createHmac('sha256', toBytes(secret))
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.h.update(toBytes(data))
  }
  async digest(): Promise<Uint8Array> {
    return this.h.digest()
  }
  reset(): void {}
}

function toBytes(d: string | ArrayBuffer | ArrayBufferView): string | Buffer {
  if (typeof d === 'string') return d
  if (ArrayBuffer.isView(d)) return Buffer.from(d.buffer, d.byteOffset, d.byteLength)
  return Buffer.from(d)
}

/** SigV4 signing key, derived independently of the server's code (AWS docs, "Derive a signing key"). */
export function signingKey(secret: string, date: string, region = 'us-east-1', service = 's3'): Buffer {
  const kDate = createHmac('sha256', 'AWS4' + secret).update(date).digest()
  const kRegion = createHmac('sha256', kDate).update(region).digest()
  const kService = createHmac('sha256', kRegion).update(service).digest()
  return createHmac('sha256', kService).update('aws4_request').digest()
}

/** The Code element of an S3 error body. */
export function xmlCode(res: RawResponse): string | undefined {
  return /<Code>([^<]+)<\/Code>/.exec(res.body.toString())?.[1]
}

/** Signs a request the way the SDK does (smithy's SignatureV4), optionally at another time; returns its headers. */
export async function signRequest(
  server: TestServer,
  opts: { method: string; path: string; headers?: Record<string, string>; body?: Buffer; payloadHash: string; date?: Date; secret?: string },
): Promise<Record<string, string>> {
  const host = new URL(server.httpsUrl).host
  const signer = new SignatureV4({
    credentials: { accessKeyId: ROOT_KEY, secretAccessKey: opts.secret ?? ROOT_SECRET },
    region: 'us-east-1',
    service: 's3',
    sha256: TestSha256,
    uriEscapePath: false,
    applyChecksum: true,
  })
  const [path, query] = opts.path.split('?')
  const queryObj: Record<string, string> = {}
  for (const [k, v] of new URLSearchParams(query ?? '')) queryObj[k] = v
  const signed = await signer.sign(
    {
      method: opts.method,
      protocol: 'https:',
      hostname: host.split(':')[0],
      port: Number(host.split(':')[1]),
      path,
      query: queryObj,
      headers: { host, 'x-amz-content-sha256': opts.payloadHash, ...opts.headers },
      body: opts.body,
    },
    { signingDate: opts.date },
  )
  return signed.headers as Record<string, string>
}

/** multipart/form-data as a browser sends it: fields in order, the file last. */
export function postForm(fields: Record<string, string>, file: Buffer, filename = 'photo.jpg'): { body: Buffer; contentType: string } {
  const boundary = '----s3sseFormBoundary' + Math.random().toString(16).slice(2)
  const parts: Buffer[] = []
  for (const [name, value] of Object.entries(fields)) {
    parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`))
  }
  parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${filename}"\r\nContent-Type: image/jpeg\r\n\r\n`))
  parts.push(file, Buffer.from(`\r\n--${boundary}--\r\n`))
  return { body: Buffer.concat(parts), contentType: `multipart/form-data; boundary=${boundary}` }
}

/** Every regular file under `dir`, recursively (for looking at what the server stored). */
export function allFiles(dir: string): string[] {
  const out: string[] = []
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name)
    if (e.isDirectory()) out.push(...allFiles(p))
    else if (e.isFile()) out.push(p)
  }
  return out
}

/**
 * Signature Version 2 headers for a path-style request (S3 Developer Guide, "Signing and
 * authenticating REST requests"), written independently of the server's verifier.
 */
export function sigV2Headers(
  method: string,
  path: string,
  opts: { headers?: Record<string, string>; accessKey?: string; secret?: string; date?: Date } = {},
): Record<string, string> {
  const headers: Record<string, string> = { date: (opts.date ?? new Date()).toUTCString(), ...opts.headers }
  const lower = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]))
  const amz = Object.keys(lower).filter((k) => k.startsWith('x-amz-')).sort().map((k) => `${k}:${lower[k].trim()}\n`).join('')
  const [rawPath, query = ''] = path.split('?')
  const sub = query.split('&').filter((p) => ['uploads', 'uploadId', 'partNumber', 'delete', 'encryption'].includes(p.split('=')[0])).sort()
  const resource = rawPath + (sub.length ? '?' + sub.join('&') : '')
  const toSign = `${method}\n${lower['content-md5'] ?? ''}\n${lower['content-type'] ?? ''}\n${lower['x-amz-date'] ? '' : lower.date}\n${amz}${resource}`
  const signature = createHmac('sha1', opts.secret ?? ROOT_SECRET).update(toSign).digest('base64')
  return { ...headers, authorization: `AWS ${opts.accessKey ?? ROOT_KEY}:${signature}` }
}
