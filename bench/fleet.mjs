// Fleet benchmark, part of the server bench: PUT and GET throughput and per-request p50/p99 of
// SSE-KMS objects through 1 and 2 `s3-sse serve` gateways over Ceph RGW (--store s3) and
// PostgreSQL (--meta postgres://), against the same scenario on the embedded default (files +
// SQLite), and plain PUT/GET straight to RGW with the same client as the ceiling the backend
// allows. Two gateways: requests alternate between them (client side; no load balancer cost).
// The gateways share one `s3-sse kms serve` (--kms aws).
//
// Needs the services of the fleet tests (scripts/services/*.sh):
//   S3SSE_TEST_RGW_ENDPOINT, S3SSE_TEST_RGW_ACCESS_KEY, S3SSE_TEST_RGW_SECRET_KEY, S3SSE_TEST_PG_URL
//   npm run compile && node bench/fleet.mjs [--quick]
import { spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import http from 'node:http'
import https from 'node:https'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { fmt, isMain, machine, MiB, printTable, sizeName, writeResult } from './lib.mjs'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const ACCESS_KEY = 'S3SSEBENCHKEY0000001'
const SECRET_KEY = 'bench-secret-key-0123456789abcdefghij'

export function fleetServices(env = process.env) {
  const s = { endpoint: env.S3SSE_TEST_RGW_ENDPOINT, accessKey: env.S3SSE_TEST_RGW_ACCESS_KEY, secretKey: env.S3SSE_TEST_RGW_SECRET_KEY, pg: env.S3SSE_TEST_PG_URL }
  return s.endpoint && s.accessKey && s.secretKey && s.pg ? s : null
}

const SCENARIOS = (quick) => [
  { size: 1 * MiB, parallel: 1, count: quick ? 16 : 48 },
  { size: 1 * MiB, parallel: 4, count: quick ? 32 : 96 },
  { size: 64 * 1024, parallel: 4, count: quick ? 64 : 256 },
]

let sdk
async function loadSdk() {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'
  const [s3, handler] = await Promise.all([import('@aws-sdk/client-s3'), import('@smithy/node-http-handler')])
  sdk = { ...s3, NodeHttpHandler: handler.NodeHttpHandler }
  return sdk
}

function client(endpoint, { ca, accessKeyId = ACCESS_KEY, secretAccessKey = SECRET_KEY, plain = false } = {}) {
  const { S3Client, NodeHttpHandler } = sdk
  return new S3Client({
    region: 'us-east-1',
    endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId, secretAccessKey },
    requestHandler: new NodeHttpHandler(plain ? { httpAgent: new http.Agent({ keepAlive: true, maxSockets: 16 }) } : { httpsAgent: new https.Agent({ ca, keepAlive: true, maxSockets: 16 }) }),
    ...(plain ? { requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED' } : {}),
    maxAttempts: 1,
  })
}

/** `s3-sse kms serve`: the fleet's one KMS. */
function startKmsServe(dataDir) {
  return startProcess(['kms', 'serve', '--data-dir', dataDir, '--port', 'auto'], {}, /s3-sse kms listening on (https:\/\/\S+)/)
}

function startGateway(dataDir, args, env) {
  return startProcess(['serve', '--data-dir', dataDir, '--host', '127.0.0.1', '--https-port', 'auto', '--http-port', '0', ...args], env, /listening on (https:\/\/\S+)/)
}

function startProcess(argv, env, ready) {
  const proc = spawn(process.execPath, [join(ROOT, 'bin/s3-sse.js'), ...argv], {
    env: { ...process.env, S3SSE_ACCESS_KEY: ACCESS_KEY, S3SSE_SECRET_KEY: SECRET_KEY, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  proc.stdout.on('data', (d) => (out += d))
  proc.stderr.on('data', (d) => (out += d))
  const exited = new Promise((resolve) => proc.on('exit', resolve))
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${argv[0]} did not start:\n${out}`)), 60_000)
    proc.stdout.on('data', () => {
      const m = ready.exec(out)
      if (m) {
        clearTimeout(timer)
        resolve({ url: m[1], stop: async () => { proc.kill('SIGTERM'); await exited } })
      }
    })
    proc.on('exit', (code) => reject(new Error(`${argv[0]} exited with ${code}:\n${out}`)))
  })
}

/** Runs `count` operations, `parallel` at a time: wall seconds and each operation's milliseconds. */
async function timed(count, parallel, op) {
  let next = 0
  const ms = []
  const start = process.hrtime.bigint()
  await Promise.all(Array.from({ length: Math.min(parallel, count) }, async () => {
    for (let i = next++; i < count; i = next++) {
      const t = process.hrtime.bigint()
      await op(i)
      ms.push(Number(process.hrtime.bigint() - t) / 1e6)
    }
  }))
  ms.sort((a, b) => a - b)
  return { seconds: Number(process.hrtime.bigint() - start) / 1e9, p50: ms[Math.floor(ms.length / 2)], p99: ms[Math.min(ms.length - 1, Math.floor(ms.length * 0.99))] }
}

/** PUT then GET of every scenario through `clients` (alternating), checked before timing. */
async function measure(name, clients, bucket, data, scenarios, onStep) {
  const { PutObjectCommand, GetObjectCommand } = sdk
  const pick = (i) => clients[i % clients.length]
  for (const size of new Set(scenarios.map((s) => s.size))) {
    const payload = data.subarray(0, size)
    await pick(0).send(new PutObjectCommand({ Bucket: bucket, Key: `verify-${size}`, Body: payload }))
    const got = Buffer.from(await (await pick(1).send(new GetObjectCommand({ Bucket: bucket, Key: `verify-${size}` }))).Body.transformToByteArray())
    if (createHash('sha256').update(got).digest('hex') !== createHash('sha256').update(payload).digest('hex')) throw new Error(`${name}: verification failed for ${sizeName(size)}`)
  }
  const rows = []
  for (const sc of scenarios) {
    const payload = data.subarray(0, sc.size)
    const key = (i) => `s${sc.size}/p${sc.parallel}/o${i}`
    const put = await timed(sc.count, sc.parallel, (i) => pick(i).send(new PutObjectCommand({ Bucket: bucket, Key: key(i), Body: payload })))
    onStep(`${name} PUT ${sizeName(sc.size)} x${sc.parallel}`)
    const get = await timed(sc.count, sc.parallel, async (i) => {
      const out = await pick(i + 1).send(new GetObjectCommand({ Bucket: bucket, Key: key(i) }))
      let n = 0
      for await (const c of out.Body) n += c.length
      if (n !== sc.size) throw new Error(`${name}: GET returned ${n} bytes, expected ${sc.size}`)
    })
    onStep(`${name} GET ${sizeName(sc.size)} x${sc.parallel}`)
    for (const [op, t] of [['PUT', put], ['GET', get]]) {
      rows.push({ target: name, op, size: sc.size, parallel: sc.parallel, count: sc.count, seconds: t.seconds, bytesPerSecond: (sc.size * sc.count) / t.seconds, p50: t.p50, p99: t.p99 })
    }
  }
  return rows
}

async function encrypted(s3, bucket) {
  const { CreateBucketCommand, PutBucketEncryptionCommand } = sdk
  await s3.send(new CreateBucketCommand({ Bucket: bucket }))
  await s3.send(new PutBucketEncryptionCommand({ Bucket: bucket, ServerSideEncryptionConfiguration: { Rules: [{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms' } }] } }))
}

async function freshDatabase(base) {
  const pg = (await import('pg')).default
  const name = `s3sse_bench_${randomBytes(4).toString('hex')}`
  const c = new pg.Client({ connectionString: base })
  await c.connect()
  await c.query(`CREATE DATABASE ${name}`)
  await c.end()
  const u = new URL(base)
  u.pathname = `/${name}`
  return {
    url: u.toString(),
    drop: async () => {
      const d = new pg.Client({ connectionString: base })
      await d.connect()
      await d.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
      await d.end()
    },
  }
}

export async function run({ quick = false, onProgress = () => {} } = {}) {
  const svc = fleetServices()
  if (!svc) throw new Error('the fleet bench needs S3SSE_TEST_RGW_ENDPOINT/_ACCESS_KEY/_SECRET_KEY and S3SSE_TEST_PG_URL (scripts/services/*.sh)')
  await loadSdk()
  const scenarios = SCENARIOS(quick)
  const total = scenarios.length * 2 * 4
  let done = 0
  const step = (label) => onProgress(++done, total, label)
  const data = randomBytes(Math.max(...scenarios.map((s) => s.size)))
  const result = { machine: machine(), scenarios, targets: {}, note: 'RGW runs memstore on this machine, beside the gateways and the client' }
  const dirs = []
  const stops = []
  const rgw = client(svc.endpoint, { accessKeyId: svc.accessKey, secretAccessKey: svc.secretKey, plain: true })
  const backendBucket = `s3sse-bench-${randomBytes(4).toString('hex')}`
  const rawBucket = `${backendBucket}-raw`
  const db = await freshDatabase(svc.pg)
  try {
    const { CreateBucketCommand } = sdk
    await rgw.send(new CreateBucketCommand({ Bucket: backendBucket }))
    await rgw.send(new CreateBucketCommand({ Bucket: rawBucket }))
    // The ceiling: the backend alone.
    result.targets['rgw direct (plain, no encryption)'] = await measure('rgw', [rgw], rawBucket, data, scenarios, step)

    const embeddedDir = mkdtempSync(join(tmpdir(), 's3sse-bench-embedded-'))
    dirs.push(embeddedDir)
    const embedded = await startGateway(embeddedDir, [], {})
    stops.push(embedded.stop)
    const ca = readFileSync(join(embeddedDir, 'tls-cert.pem'))
    const e = client(embedded.url, { ca })
    await encrypted(e, 'bench-fleet')
    result.targets['embedded default, sse-kms'] = await measure('embedded', [e], 'bench-fleet', data, scenarios, step)
    e.destroy()
    await embedded.stop()
    stops.pop()

    // The fleet's KMS: kms serve, reached by every gateway over the AWS KMS API.
    const kmsDir = mkdtempSync(join(tmpdir(), 's3sse-bench-kms-'))
    dirs.push(kmsDir)
    const kms = await startKmsServe(kmsDir)
    stops.push(kms.stop)
    const args = ['--store', 's3', '--store-endpoint', svc.endpoint, '--store-bucket', backendBucket, '--meta', db.url, '--kms', 'aws', '--kms-endpoint', kms.url, '--kms-ca-file', join(kmsDir, 'tls-cert.pem')]
    const env = { S3SSE_STORE_ACCESS_KEY: svc.accessKey, S3SSE_STORE_SECRET_KEY: svc.secretKey, AWS_ACCESS_KEY_ID: ACCESS_KEY, AWS_SECRET_ACCESS_KEY: SECRET_KEY }
    const gateway = async () => {
      const dir = mkdtempSync(join(tmpdir(), 's3sse-bench-gw-'))
      dirs.push(dir)
      const g = await startGateway(dir, args, env)
      stops.push(g.stop)
      return client(g.url, { ca: readFileSync(join(dir, 'tls-cert.pem')) })
    }
    const c1 = await gateway()
    await encrypted(c1, 'bench-fleet-1')
    result.targets['fleet, 1 gateway, sse-kms'] = await measure('fleet-1', [c1], 'bench-fleet-1', data, scenarios, step)
    const c2 = await gateway()
    await encrypted(c1, 'bench-fleet-2')
    result.targets['fleet, 2 gateways, sse-kms'] = await measure('fleet-2', [c1, c2], 'bench-fleet-2', data, scenarios, step)
    c1.destroy()
    c2.destroy()
  } finally {
    for (const s of stops.reverse()) await s().catch(() => undefined)
    for (const d of dirs) rmSync(d, { recursive: true, force: true })
    await db.drop().catch(() => undefined)
    await emptyAndDrop(rgw, backendBucket).catch(() => undefined)
    await emptyAndDrop(rgw, rawBucket).catch(() => undefined)
    rgw.destroy()
  }
  return result
}

async function emptyAndDrop(s3, bucket) {
  const { ListObjectsV2Command, DeleteObjectsCommand, DeleteBucketCommand } = sdk
  for (;;) {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket }))
    const keys = (page.Contents ?? []).map((o) => ({ Key: o.Key }))
    if (keys.length === 0) break
    await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: keys, Quiet: true } }))
  }
  await s3.send(new DeleteBucketCommand({ Bucket: bucket }))
}

const label = (r) => `${r.op} ${sizeName(r.size)}, ${r.parallel === 1 ? '1 stream' : `${r.parallel} parallel`}`

/** Summary rows: each target's throughput against the embedded default (gateways) or as the ceiling (RGW). */
export function summarize(result) {
  const rows = []
  const embedded = result.targets['embedded default, sse-kms'] ?? []
  const ceiling = result.targets['rgw direct (plain, no encryption)'] ?? []
  for (const [name, trows] of Object.entries(result.targets)) {
    for (const r of trows) {
      const same = (x) => x.op === r.op && x.size === r.size && x.parallel === r.parallel
      const ref = name.startsWith('fleet') ? embedded.find(same) : name.startsWith('embedded') ? ceiling.find(same) : undefined
      rows.push({
        name: `fleet bench ${name}: ${label(r)}`,
        bytesPerSecond: r.bytesPerSecond,
        value: `p50 ${fmt(r.p50, 1)} ms, p99 ${fmt(r.p99, 1)} ms`,
        reference: name.startsWith('fleet') ? 'embedded default' : name.startsWith('embedded') ? 'rgw direct' : '',
        vsReference: ref ? r.bytesPerSecond / ref.bytesPerSecond : null,
        vsCeiling: ceiling.find(same) ? r.bytesPerSecond / ceiling.find(same).bytesPerSecond : null,
        chart: false,
      })
    }
  }
  return rows
}

export function printFleetReport(result, out = process.stdout) {
  const rows = summarize(result).map((r) => ({
    measure: r.name.replace('fleet bench ', ''),
    'MB/s': fmt(r.bytesPerSecond / 1e6, 1),
    'p50 / p99': r.value.replace('p50 ', '').replace(', p99 ', ' / '),
    '×embedded': r.reference === 'embedded default' ? fmt(r.vsReference) : '',
    '×rgw': fmt(r.vsCeiling),
  }))
  printTable(rows, ['measure', 'MB/s', 'p50 / p99', '×embedded', '×rgw'], out)
  out.write(`  (${result.note})\n`)
}

if (isMain(import.meta.url)) {
  const { values } = parseArgs({ options: { quick: { type: 'boolean' } } })
  const result = await run({ quick: values.quick, onProgress: (d, t, l) => process.stderr.write(`[${d}/${t}] ${l}\n`) })
  printFleetReport(result)
  process.stdout.write(`results: ${writeResult('fleet', result)}\n`)
}
