// Server benchmark: PUT and GET throughput over HTTPS with the AWS SDK (@aws-sdk/client-s3,
// default checksums), objects of 1 MiB and 256 MiB, one stream and 8 in parallel, and the
// server's peak RSS per scenario. The reference, measured in the same run with the same
// client, scenario by scenario in turn with the server: a bare Node HTTPS endpoint that only
// moves bytes (discards PUT bodies, serves GET bodies from memory), i.e. what TLS + HTTP +
// the SDK cost on this machine.
//
// Every variant is a bucket setup: `plaintext`, and `sse-kms` (bucket default encryption
// on), measured scenario by scenario in turn so that both see the same machine; the encrypted
// side is reported against plaintext. Also: the latency of a 1-byte range GET from the middle
// of a 1 GiB object, encrypted against plaintext, and the KMS calls 1000 encrypted PUTs cost
// with and without bucket keys (read from the server's /-/metrics). When the fleet services are
// configured (bench/fleet.mjs: Ceph RGW and PostgreSQL), the fleet scenario runs too.
//
//   npm run bench:server [-- --quick]
import { spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import https from 'node:https'
import { Readable } from 'node:stream'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { fleetServices, printFleetReport, run as runFleet, summarize as summarizeFleet } from './fleet.mjs'
import { fmt, gbps, isMain, machine, MiB, printTable, sizeName, writeResult } from './lib.mjs'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
export const ACCESS_KEY = 'S3SSEBENCHKEY0000001'
export const SECRET_KEY = 'bench-secret-key-0123456789abcdefghij'

const kmsDefault = (bucketKey) => async (s3, bucket) => {
  const { PutBucketEncryptionCommand } = sdk
  await s3.send(new PutBucketEncryptionCommand({
    Bucket: bucket,
    ServerSideEncryptionConfiguration: { Rules: [{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms' }, BucketKeyEnabled: bucketKey }] },
  }))
}

/** Bucket setups measured against each other. */
export const VARIANTS = [
  { name: 'plaintext', bucket: 'bench-plaintext', setup: async () => {} },
  { name: 'sse-kms', bucket: 'bench-sse-kms', setup: kmsDefault(false) },
]

const SCENARIOS = (quick) => [
  { size: 1 * MiB, parallel: 1, count: quick ? 32 : 128 },
  { size: 1 * MiB, parallel: 8, count: quick ? 64 : 512 },
  { size: 256 * MiB, parallel: 1, count: quick ? 1 : 3 },
  { size: 256 * MiB, parallel: 8, count: 8 },
]

// ---------------------------------------------------------------- processes and clients

export async function startServer(dataDir, { args = [], env = {} } = {}) {
  const proc = spawn(process.execPath, [join(ROOT, 'bin/s3-sse.js'), 'serve', '--data-dir', dataDir, '--host', '127.0.0.1', '--https-port', 'auto', '--http-port', '0', ...args], {
    env: { ...process.env, S3SSE_ACCESS_KEY: ACCESS_KEY, S3SSE_SECRET_KEY: SECRET_KEY, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  proc.stdout.on('data', (d) => (out += d))
  proc.stderr.on('data', (d) => (out += d))
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${out}`)), 30_000)
    proc.stdout.on('data', () => {
      const m = /listening on (https:\/\/\S+)/.exec(out)
      if (m) {
        clearTimeout(timer)
        resolve(m[1])
      }
    })
    proc.on('exit', (code) => reject(new Error(`server exited with ${code}:\n${out}`)))
  })
  const exited = new Promise((resolve) => proc.on('exit', resolve))
  return {
    url,
    pid: proc.pid,
    ca: readFileSync(join(dataDir, 'tls-cert.pem')),
    cert: readFileSync(join(dataDir, 'tls-cert.pem')),
    key: readFileSync(join(dataDir, 'tls-key.pem')),
    stop: async () => {
      proc.kill('SIGTERM')
      await exited
    },
  }
}

/**
 * The reference endpoint: HTTPS with the same certificate, answering PutObject (body read
 * and dropped) and GetObject (a body of the size the key names) the way the SDK expects.
 */
async function startSink(cert, key) {
  const body = randomBytes(256 * MiB)
  const server = https.createServer({ cert, key, keepAliveTimeout: 65_000, requestTimeout: 0 }, (req, res) => {
    if (req.method === 'PUT') {
      let n = 0
      req.on('data', (c) => (n += c.length))
      req.on('end', () => {
        res.writeHead(200, { etag: `"${n.toString(16)}"`, 'content-length': '0' })
        res.end()
      })
      return
    }
    const size = Number(/size-(\d+)/.exec(req.url)?.[1] ?? 0)
    res.writeHead(200, { 'content-length': String(size), 'content-type': 'binary/octet-stream' })
    res.end(body.subarray(0, size))
  })
  await new Promise((r) => server.listen(0, '127.0.0.1', r))
  return { url: `https://127.0.0.1:${server.address().port}`, stop: () => new Promise((r) => server.close(r)) }
}

// The AWS SDK is a development dependency: loaded when the suite runs, with a clear error
// in an installation without it.
let sdk
export async function loadSdk() {
  if (sdk) return sdk
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true' // Node 20 is this project's floor

  try {
    const [s3, handler] = await Promise.all([import('@aws-sdk/client-s3'), import('@smithy/node-http-handler')])
    sdk = { ...s3, NodeHttpHandler: handler.NodeHttpHandler }
  } catch (err) {
    throw new Error(`the server benchmark drives the server with @aws-sdk/client-s3 (a dev dependency): npm install it first (${err.message})`)
  }
  return sdk
}

export function client(endpoint, ca) {
  const { S3Client, NodeHttpHandler } = sdk
  return new S3Client({
    region: 'us-east-1',
    endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY },
    requestHandler: new NodeHttpHandler({ httpsAgent: new https.Agent({ ca, keepAlive: true, maxSockets: 16 }) }),
    maxAttempts: 1,
  })
}

/** Peak RSS of a process since the last reset (Linux: VmHWM, reset by clear_refs 5). */
function resetPeak(pid) {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5')
    return true
  } catch {
    return false
  }
}

function peakRss(pid) {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m ? Number(m[1]) * 1024 : null
  } catch {
    return null
  }
}

async function drain(stream) {
  let n = 0
  for await (const chunk of stream) n += chunk.length
  return n
}

// ---------------------------------------------------------------- measuring

/** Runs `count` operations, `parallel` at a time; returns seconds of wall time. */
export async function timed(count, parallel, op) {
  let next = 0
  const start = process.hrtime.bigint()
  await Promise.all(
    Array.from({ length: Math.min(parallel, count) }, async () => {
      for (let i = next++; i < count; i = next++) await op(i)
    }),
  )
  return Number(process.hrtime.bigint() - start) / 1e9
}

async function measureTarget(s3, bucket, data, scenarios, pid, onStep) {
  const { PutObjectCommand, GetObjectCommand } = sdk
  const rows = []
  for (const sc of scenarios) {
    if (!sc) continue
    const payload = data.subarray(0, sc.size)
    const key = (i) => `size-${sc.size}/p${sc.parallel}/obj-${i % Math.max(sc.parallel, 8)}`
    const canReset = pid ? resetPeak(pid) : false
    const putSeconds = await timed(sc.count, sc.parallel, (i) => s3.send(new PutObjectCommand({ Bucket: bucket, Key: key(i), Body: payload })))
    const putPeak = pid && canReset ? peakRss(pid) : null
    onStep(`PUT ${sizeName(sc.size)} x${sc.parallel}`)
    if (pid) resetPeak(pid)
    const getSeconds = await timed(sc.count, sc.parallel, async (i) => {
      const out = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key(i) }))
      const n = await drain(out.Body)
      if (n !== sc.size) throw new Error(`GET returned ${n} bytes, expected ${sc.size}`)
    })
    const getPeak = pid && canReset ? peakRss(pid) : null
    onStep(`GET ${sizeName(sc.size)} x${sc.parallel}`)
    const bytes = sc.size * sc.count
    rows.push({ op: 'PUT', size: sc.size, parallel: sc.parallel, count: sc.count, seconds: putSeconds, bytesPerSecond: bytes / putSeconds, peakRss: putPeak })
    rows.push({ op: 'GET', size: sc.size, parallel: sc.parallel, count: sc.count, seconds: getSeconds, bytesPerSecond: bytes / getSeconds, peakRss: getPeak })
  }
  return rows
}

/** Before timing: a PUT and GET of each size must return exactly what was sent. */
async function verify(s3, bucket, data, sizes) {
  const { PutObjectCommand, GetObjectCommand } = sdk
  for (const size of sizes) {
    const payload = data.subarray(0, size)
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: `verify-${size}`, Body: payload }))
    const out = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: `verify-${size}` }))
    const hash = createHash('sha256')
    for await (const chunk of out.Body) hash.update(chunk)
    if (hash.digest('hex') !== createHash('sha256').update(payload).digest('hex')) throw new Error(`verification failed for ${sizeName(size)}`)
  }
}

/** Median and 99th percentile of `count` sequential runs of `op`, in milliseconds. */
async function latency(count, op) {
  const ms = []
  for (let i = 0; i < count; i++) {
    const t = process.hrtime.bigint()
    await op()
    ms.push(Number(process.hrtime.bigint() - t) / 1e6)
  }
  ms.sort((a, b) => a - b)
  return { median: ms[Math.floor(ms.length / 2)], p99: ms[Math.min(ms.length - 1, Math.floor(ms.length * 0.99))], count }
}

/** A 1-byte range from the middle of a big object, per variant. */
async function measureRange(s3, data, size, count) {
  const { PutObjectCommand, GetObjectCommand } = sdk
  const out = {}
  const mid = Math.floor(size / 2) + 12345
  for (const v of VARIANTS) {
    const key = `range-${size}`
    const body = (async function* () {
      for (let left = size; left > 0; left -= data.length) yield data.subarray(0, Math.min(left, data.length))
    })()
    await s3.send(new PutObjectCommand({ Bucket: v.bucket, Key: key, Body: Readable.from(body), ContentLength: size }))
    const get = async () => {
      const r = await s3.send(new GetObjectCommand({ Bucket: v.bucket, Key: key, Range: `bytes=${mid}-${mid}` }))
      const bytes = Buffer.from(await r.Body.transformToByteArray())
      if (bytes.length !== 1 || bytes[0] !== data[mid % data.length]) throw new Error(`range GET returned the wrong byte (${v.name})`)
    }
    await get()
    out[v.name] = { size, offset: mid, ...(await latency(count, get)) }
  }
  return out
}

export async function kmsCallsTotal(server) {
  const text = await new Promise((resolve, reject) => {
    https.get(`${server.url}/-/metrics`, { ca: server.ca }, (res) => {
      let b = ''
      res.on('data', (d) => (b += d))
      res.on('end', () => resolve(b))
    }).on('error', reject)
  })
  let total = 0
  for (const m of text.matchAll(/^s3sse_kms_calls_total\{[^}]*\} (\d+)$/gm)) total += Number(m[1])
  return total
}

/** KMS calls that `count` 1 KiB PUTs (8 in parallel) cost, without and with bucket keys. */
async function measureKmsCalls(s3, server, data, count) {
  const { CreateBucketCommand, PutObjectCommand } = sdk
  const out = {}
  for (const [name, bucketKey] of [['without bucket keys', false], ['with bucket keys', true]]) {
    const bucket = `bench-kms-${bucketKey ? 'bk' : 'nobk'}`
    await s3.send(new CreateBucketCommand({ Bucket: bucket }))
    await kmsDefault(bucketKey)(s3, bucket)
    const before = await kmsCallsTotal(server)
    await timed(count, 8, (i) => s3.send(new PutObjectCommand({ Bucket: bucket, Key: `o${i}`, Body: data.subarray(0, 1024) })))
    const calls = (await kmsCallsTotal(server)) - before
    out[name] = { puts: count, kmsCalls: calls, per1000: (calls * 1000) / count }
  }
  return out
}

export async function run({ quick = false, onProgress = () => {} } = {}) {
  const { CreateBucketCommand } = await loadSdk()
  const scenarios = SCENARIOS(quick)
  const total = scenarios.length * 2 * (VARIANTS.length + 1) + 3
  let done = 0
  const step = (label) => onProgress(++done, total, label)
  const data = randomBytes(256 * MiB)
  const dataDir = mkdtempSync(join(tmpdir(), 's3sse-bench-'))
  const server = await startServer(dataDir)
  const result = { machine: machine(), scenarios, variants: {}, reference: null, checks: [] }
  try {
    const s3 = client(server.url, server.ca)
    for (const v of VARIANTS) {
      await s3.send(new CreateBucketCommand({ Bucket: v.bucket }))
      await v.setup(s3, v.bucket)
      await verify(s3, v.bucket, data, [...new Set(scenarios.map((s) => s.size))])
      result.checks.push(`${v.name}: PUT then GET returned identical bytes for every size`)
      result.variants[v.name] = []
    }
    // Scenario by scenario, each variant and the bare HTTPS sink in turn, so drift in a shared
    // machine's speed hits all alike.
    const sink = await startSink(server.cert, server.key)
    result.reference = []
    try {
      for (const sc of scenarios) {
        // A fresh client (and connections) for each endpoint and scenario: a keep-alive
        // connection left idle while the other endpoint ran may have been closed by now.
        for (const v of VARIANTS) {
          const c = client(server.url, server.ca)
          result.variants[v.name].push(...(await measureTarget(c, v.bucket, data, [sc], server.pid, (l) => step(`${v.name} ${l}`))))
          c.destroy()
        }
        const ref = client(sink.url, server.ca)
        result.reference.push(...(await measureTarget(ref, 'sink', data, [sc], null, (l) => step(`https sink ${l}`))))
        ref.destroy()
      }
    } finally {
      await sink.stop()
    }
    s3.destroy()
    const s3b = client(server.url, server.ca)
    const rangeSize = quick ? 64 * MiB : 1024 * MiB
    result.range = await measureRange(s3b, data, rangeSize, quick ? 30 : 200)
    step(`1-byte range GET from the middle of ${sizeName(rangeSize)}`)
    result.kms = await measureKmsCalls(s3b, server, data, quick ? 200 : 1000)
    step('KMS calls per 1000 PUTs')
    s3b.destroy()
    step('done')
  } finally {
    await server.stop()
    rmSync(dataDir, { recursive: true, force: true })
  }
  if (fleetServices()) result.fleet = await runFleet({ quick, onProgress: (d, t, l) => onProgress(done, total, `fleet ${d}/${t} ${l}`) })
  return result
}

const label = (r) => `${r.op} ${sizeName(r.size)}, ${r.parallel === 1 ? '1 stream' : `${r.parallel} parallel`}`
const same = (a, b) => a.op === b.op && a.size === b.size && a.parallel === b.parallel

/** Rows for the `s3-sse bench` summary: each variant against the bare HTTPS reference (and plaintext). */
export function summarize(result) {
  const rows = []
  const plain = result.variants.plaintext ?? []
  for (const [name, vrows] of Object.entries(result.variants)) {
    for (const r of vrows) {
      if (name !== 'plaintext' && name !== 'sse-kms') continue
      const ref = name === 'plaintext' ? result.reference?.find((x) => same(x, r)) : plain.find((x) => same(x, r))
      rows.push({
        name: `server ${name}: ${label(r)}`,
        bytesPerSecond: r.bytesPerSecond,
        value: r.peakRss != null ? `peak RSS ${Math.round(r.peakRss / MiB)} MiB` : '',
        reference: name === 'plaintext' ? 'bare HTTPS sink' : 'plaintext',
        vsReference: ref ? r.bytesPerSecond / ref.bytesPerSecond : null,
      })
    }
  }
  if (result.range?.['sse-kms'] && result.range.plaintext) {
    const e = result.range['sse-kms']
    const p = result.range.plaintext
    rows.push({
      name: `server sse-kms: 1-byte range GET from the middle of ${sizeName(e.size)}`,
      value: `median ${fmt(e.median, 2)} ms, p99 ${fmt(e.p99, 2)} ms`,
      reference: `plaintext ${fmt(p.median, 2)} ms`,
      vsReference: p.median / e.median,
      chart: false,
    })
  }
  for (const [name, k] of Object.entries(result.kms ?? {})) {
    rows.push({ name: `server sse-kms: KMS calls per 1000 PUTs, ${name}`, value: `${fmt(k.per1000, 0)} calls`, chart: false })
  }
  if (result.fleet) rows.push(...summarizeFleet(result.fleet))
  return rows
}

export function printServerReport(result, out = process.stdout) {
  const rows = summarize(result).map((r) => ({
    measure: r.name,
    'MB/s': r.bytesPerSecond ? fmt(r.bytesPerSecond / 1e6, 0) : '',
    'GB/s': r.bytesPerSecond ? fmt(gbps(r.bytesPerSecond), 3) : '',
    'peak RSS / value': (r.value ?? '').replace('peak RSS ', ''),
    reference: r.reference,
    '×reference': fmt(r.vsReference),
  }))
  printTable(rows, ['measure', 'MB/s', 'GB/s', 'peak RSS / value', 'reference', '×reference'], out)
  for (const r of result.reference ?? []) out.write(`  reference ${label(r)}: ${fmt(r.bytesPerSecond / 1e6, 0)} MB/s\n`)
  out.write('targets (issue 15): plaintext ≥ 0.8× the bare HTTPS sink, SSE-KMS ≥ 0.9× plaintext, in every scenario\n')
  for (const r of summarize(result)) {
    // The fleet's rows have no such target: they are reported below, against the embedded default.
    if (!r.bytesPerSecond || r.vsReference == null || (r.reference !== 'bare HTTPS sink' && r.reference !== 'plaintext')) continue
    const goal = r.reference === 'bare HTTPS sink' ? 0.8 : 0.9
    out.write(`  ${r.vsReference >= goal ? 'met    ' : 'MISSED '} ${fmt(r.vsReference)}× (goal ${goal}×)  ${r.name} vs ${r.reference}\n`)
  }
  if (result.fleet) printFleetReport(result.fleet, out)
}

if (isMain(import.meta.url)) {
  const { values } = parseArgs({ options: { quick: { type: 'boolean' } } })
  const result = await run({ quick: values.quick, onProgress: (d, t, l) => process.stderr.write(`[${d}/${t}] ${l}\n`) })
  printServerReport(result)
  process.stdout.write(`results: ${writeResult('server', result)}\n`)
}

