/**
 * A test fleet: N s3-sse gateways over one backend bucket on Ceph RGW and one PostgreSQL
 * database, with one KMS, optionally behind a real HAProxy (TCP passthrough, round robin, health
 * checks, redispatch) — the deployment of docs/DEPLOY.md on loopback.
 *
 * Gateways run in this process (startServer with the stores injected, so a test can count what
 * they do through the seams) or as real `s3-sse serve` processes (to be killed with SIGKILL).
 *
 * The KMS is one `s3-sse kms serve` process; every gateway reaches it with its own AWS KMS
 * client (`--kms aws --kms-endpoint …` for processes, an AwsKms per gateway in process), as the
 * gateways of a real fleet do. Each gateway has a data dir of its own.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdirSync, writeFileSync } from 'node:fs'
import https from 'node:https'
import net from 'node:net'
import { join } from 'node:path'
import { S3Client } from '@aws-sdk/client-s3'
import { NodeHttpHandler } from '@smithy/node-http-handler'
import { AwsKms } from '../../src/keys/aws.js'
import type { Kms } from '../../src/keys/kms.js'
import { PostgresMetaStore } from '../../src/server/meta/postgres/index.js'
import { startServer as startInProcess, type RunningServer } from '../../src/server/server.js'
import type { ServerConfig } from '../../src/server/state.js'
import type { BlobStore } from '../../src/server/store/blob.js'
import type { S3BlobStore, S3StoreOptions } from '../../src/server/store/s3.js'
import { loadTls } from '../../src/server/tls.js'
import { ROOT_KEY, ROOT_SECRET, removeDir, startServer as startProcess, tempDir, type TestServer } from '../server/helpers.js'
import { startKmsServe, type KmsServeProcess } from './kms-server.js'
import { backendBucket, type BackendBucket } from './rgw.js'
import { freshDatabase, rgw } from './services.js'

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true'

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port
      s.close(() => resolve(p))
    })
  })
}

/** An S3 client for an https endpoint that trusts `ca`; keepAlive false spreads requests over an LB. */
export function clientFor(endpoint: string, ca: string | Buffer, opts: { keepAlive?: boolean; maxAttempts?: number; accessKeyId?: string; secretAccessKey?: string } = {}): S3Client {
  return new S3Client({
    region: 'us-east-1',
    endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: opts.accessKeyId ?? ROOT_KEY, secretAccessKey: opts.secretAccessKey ?? ROOT_SECRET },
    requestHandler: new NodeHttpHandler({ httpsAgent: new https.Agent({ ca, keepAlive: opts.keepAlive ?? true }) }),
    maxAttempts: opts.maxAttempts ?? 1,
  })
}

export interface Haproxy {
  port: number
  url: string
  /** The plain HTTP frontend, when there is one. */
  httpUrl?: string
  stop(): Promise<void>
}

/**
 * A real HAProxy in TCP mode (TLS passes through to the gateways) in front of `ports`, and
 * when `httpPorts` are given a second frontend for the gateways' plain HTTP.
 */
export async function startHaproxy(ports: number[], listen?: number, httpPorts?: number[]): Promise<Haproxy> {
  const port = listen ?? (await freePort())
  const httpPort = httpPorts ? await freePort() : undefined
  const dir = tempDir('s3sse-haproxy-')
  const cfg = join(dir, 'haproxy.cfg')
  writeFileSync(
    cfg,
    [
      'global',
      '  maxconn 512',
      'defaults',
      '  mode tcp',
      '  timeout connect 2s',
      '  timeout client 120s',
      '  timeout server 120s',
      '  retries 3',
      '  option redispatch',
      'frontend s3',
      `  bind 127.0.0.1:${port}`,
      '  default_backend gateways',
      'backend gateways',
      '  balance roundrobin',
      '  option httpchk GET /-/health',
      '  http-check expect status 200',
      ...ports.map((p, i) => `  server g${i + 1} 127.0.0.1:${p} check check-ssl verify none inter 300 fall 1 rise 2`),
      ...(httpPorts
        ? [
            'frontend plain',
            `  bind 127.0.0.1:${httpPort}`,
            '  default_backend plain-gateways',
            'backend plain-gateways',
            '  balance roundrobin',
            '  option httpchk GET /-/health',
            ...httpPorts.map((p, i) => `  server h${i + 1} 127.0.0.1:${p} check inter 300 fall 1 rise 2`),
          ]
        : []),
      '',
    ].join('\n'),
  )
  const proc: ChildProcess = spawn('haproxy', ['-f', cfg, '-db'], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  proc.stdout!.on('data', (d) => (out += d))
  proc.stderr!.on('data', (d) => (out += d))
  for (let i = 0; ; i++) {
    if (proc.exitCode !== null) throw new Error(`haproxy exited: ${out}`)
    const ok = await new Promise<boolean>((r) => {
      const c = net.connect(port, '127.0.0.1', () => (c.destroy(), r(true)))
      c.on('error', () => r(false))
    })
    if (ok) break
    if (i > 100) throw new Error(`haproxy did not listen: ${out}`)
    await new Promise((r) => setTimeout(r, 50))
  }
  return {
    port,
    url: `https://127.0.0.1:${port}`,
    ...(httpPort ? { httpUrl: `http://127.0.0.1:${httpPort}` } : {}),
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        const exited = new Promise((r) => proc.once('exit', r))
        proc.kill('SIGTERM')
        await exited
      }
      removeDir(dir)
    },
  }
}

export interface FleetBase {
  bucket: BackendBucket
  /** The fleet's one KMS: `s3-sse kms serve`. */
  kmsServe: KmsServeProcess
  db: { url: string; drop(): Promise<void> }
  /** The certificate every gateway serves (and clients trust). */
  cert: { certPath: string; keyPath: string; pem: string }
  dir: string
}

async function fleetBase(tag: string): Promise<FleetBase> {
  const dir = tempDir(`s3sse-fleet-${tag}-`)
  mkdirSync(join(dir, 'tls'), { recursive: true })
  const tls = await loadTls(join(dir, 'tls'))
  return {
    bucket: await backendBucket(tag),
    kmsServe: await startKmsServe(),
    db: await freshDatabase(tag),
    cert: { certPath: tls.certPath, keyPath: join(dir, 'tls', 'tls-key.pem'), pem: tls.cert },
    dir,
  }
}

export interface InProcessGateway {
  server: RunningServer
  blobs: S3BlobStore
  meta: PostgresMetaStore
  s3: S3Client
  logs: string[]
  stop(): Promise<void>
}

export interface InProcessFleet extends FleetBase {
  /** An admin client of the shared KMS (rotate, disable, enable). */
  kms: AwsKms
  gateways: InProcessGateway[]
  /** Starts one more gateway (the same stores, the same KMS). */
  add(opts?: GatewayOptions): Promise<InProcessGateway>
  stop(): Promise<void>
}

export interface GatewayOptions {
  config?: Partial<ServerConfig>
  store?: Partial<S3StoreOptions>
  /** Wraps the gateway's KMS (fault injection, counting). */
  kms?: (kms: Kms) => Kms
  /** Wraps the gateway's blob store (counting). */
  blobs?: (blobs: BlobStore) => BlobStore
}

/** N gateways in this process over one bucket, one database and one KMS. */
export async function inProcessFleet(n: number, opts: GatewayOptions = {}): Promise<InProcessFleet> {
  const base = await fleetBase('ip')
  const kmsClient = () => new AwsKms({ endpoint: base.kmsServe.url, ca: base.kmsServe.ca, credentials: base.kmsServe.credentials })
  const kms = kmsClient()
  const gateways: InProcessGateway[] = []
  const add = async (extra: GatewayOptions = {}): Promise<InProcessGateway> => {
    const o: GatewayOptions = { ...opts, ...extra, config: { ...opts.config, ...extra.config }, store: { ...opts.store, ...extra.store } }
    const dataDir = join(base.dir, `gw${gateways.length + 1}`)
    mkdirSync(dataDir, { recursive: true, mode: 0o700 })
    writeFileSync(join(dataDir, 'root-credentials.json'), JSON.stringify({ name: 'root', accessKey: ROOT_KEY, secretKey: ROOT_SECRET, createdAt: new Date(0).toISOString() }), { mode: 0o600 })
    const blobs = await base.bucket.store({ owner: `gw${gateways.length + 1}`, ...o.store })
    const meta = await PostgresMetaStore.open(base.db.url)
    const gatewayKms = kmsClient()
    const logs: string[] = []
    const server = await startInProcess({
      config: {
        dataDir, host: '127.0.0.1', httpsPort: 0, httpPort: null, region: 'us-east-1', mode: 'oss', domains: ['s3.localhost'],
        tlsCert: base.cert.certPath, tlsKey: base.cert.keyPath,
        sweep: { graceMs: 15 * 60_000, intervalMs: 15 * 60_000, settleMs: 0 },
        replication: { leaseMs: 60_000, pollMs: 200, backoffMs: 100 },
        ...o.config,
      },
      kms: o.kms ? o.kms(gatewayKms) : gatewayKms,
      blobs: o.blobs ? o.blobs(blobs) : blobs,
      meta,
      log: { info: (m) => logs.push(m), error: (m) => logs.push(m) },
    })
    const s3 = clientFor(server.httpsUrl, base.cert.pem)
    const g: InProcessGateway = {
      server, blobs, meta, s3, logs,
      async stop() {
        const i = gateways.indexOf(g)
        if (i >= 0) gateways.splice(i, 1)
        s3.destroy()
        await server.close()
        await blobs.close()
        await meta.close()
        await gatewayKms.close()
      },
    }
    gateways.push(g)
    return g
  }
  for (let i = 0; i < n; i++) await add()
  return {
    ...base,
    kms,
    gateways,
    add,
    async stop() {
      for (const g of [...gateways]) await g.stop().catch(() => undefined)
      await kms.close()
      await base.kmsServe.stop()
      removeDir(base.kmsServe.dataDir)
      await base.bucket.drop().catch(() => undefined)
      await base.db.drop().catch(() => undefined)
      removeDir(base.dir)
    },
  }
}

/** Exit codes of the gateways of the last process fleet stopped (0 each: a graceful SIGTERM). */
export let lastStopCodes: Array<number | null> = []

export interface ProcessFleet extends FleetBase {
  gateways: TestServer[]
  lb?: Haproxy
  /** Where the gateways' data dirs are (each has its own: TLS material, nothing shared). */
  dataDir: string
  args: string[]
  env: NodeJS.ProcessEnv
  add(): Promise<TestServer>
  stop(): Promise<void>
}

/** N `s3-sse serve` processes with `--store s3 --meta postgres://…`, optionally behind HAProxy. */
export async function processFleet(n: number, opts: { lb?: boolean; args?: string[] } = {}): Promise<ProcessFleet> {
  const base = await fleetBase('proc')
  const r = rgw()!
  const dataDir = join(base.dir, 'data')
  const kmsServe = base.kmsServe
  const lbPort = opts.lb ? await freePort() : undefined
  const args = [
    '--store', 's3', '--store-endpoint', r.endpoint, '--store-bucket', base.bucket.name,
    '--meta', base.db.url,
    '--kms', 'aws', '--kms-endpoint', kmsServe.url, '--kms-ca-file', kmsServe.caFile,
    '--tls-cert', base.cert.certPath, '--tls-key', base.cert.keyPath,
    ...(lbPort ? ['--public-url', `https://127.0.0.1:${lbPort}`] : []),
    ...(opts.args ?? []),
  ]
  const env: NodeJS.ProcessEnv = {
    S3SSE_STORE_ACCESS_KEY: r.accessKey,
    S3SSE_STORE_SECRET_KEY: r.secretKey,
    // The gateways' KMS credentials (the standard AWS chain; the backend has its own above).
    AWS_ACCESS_KEY_ID: kmsServe.credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: kmsServe.credentials.secretAccessKey,
  }
  const gateways: TestServer[] = []
  const add = async () => {
    const g = await startProcess({ dataDir: join(dataDir, `gw${gateways.length + 1}-${randomBytes(3).toString('hex')}`), env, args, caFile: base.cert.certPath })
    gateways.push(g)
    return g
  }
  // They start together: the schema migrations run under the advisory lock.
  await Promise.all(Array.from({ length: n }, () => add()))
  const lb = lbPort ? await startHaproxy(gateways.map((g) => g.httpsPort), lbPort, gateways.map((g) => Number(new URL(g.httpUrl).port))) : undefined
  return {
    ...base,
    gateways,
    lb,
    dataDir,
    args,
    env,
    add,
    async stop() {
      await lb?.stop()
      const codes = await Promise.all(gateways.map((g) => g.stop()))
      lastStopCodes = codes
      await kmsServe.stop()
      removeDir(kmsServe.dataDir)
      await base.bucket.drop().catch(() => undefined)
      await base.db.drop().catch(() => undefined)
      removeDir(base.dir)
    },
  }
}

/**
 * A process fleet behind HAProxy in the shape of one TestServer, for the end-to-end suites of
 * test/server/ run unchanged against a fleet (helpers.startServer with S3SSE_TEST_FLEET=N).
 * Clients open a connection per request, so round robin spreads them over the gateways.
 */
export async function fleetAsTestServer(n: number, opts: { args?: string[] } = {}): Promise<TestServer> {
  const f = await processFleet(n, { lb: true, args: opts.args })
  const lb = f.lb!
  const first = f.gateways[0]
  return {
    dataDir: f.dataDir,
    httpsUrl: lb.url,
    httpUrl: lb.httpUrl!,
    httpsPort: lb.port,
    ca: first.ca,
    proc: first.proc,
    output: () => f.gateways.map((g) => g.output()).join('\n'),
    client(o = {}) {
      const { http: plain, accessKeyId, secretAccessKey, ...rest } = o
      return new S3Client({
        region: 'us-east-1',
        endpoint: plain ? lb.httpUrl : lb.url,
        forcePathStyle: true,
        credentials: { accessKeyId: accessKeyId ?? ROOT_KEY, secretAccessKey: secretAccessKey ?? ROOT_SECRET },
        requestHandler: new NodeHttpHandler({ httpsAgent: new https.Agent({ ca: first.ca, keepAlive: false }) }),
        maxAttempts: 1,
        ...rest,
      })
    },
    async stop() {
      await f.stop()
      return lastStopCodes.every((c) => c === 0) ? 0 : (lastStopCodes.find((c) => c !== 0) ?? null)
    },
  }
}
