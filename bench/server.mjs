// Server benchmark: PUT and GET throughput over HTTPS with the AWS SDK (@aws-sdk/client-s3,
// default checksums), objects of 1 MiB and 256 MiB, one stream and 8 in parallel, and the
// server's peak RSS per scenario. The reference, measured in the same run with the same
// client: a bare Node HTTPS endpoint that only moves bytes (discards PUT bodies, serves GET
// bodies from memory), i.e. what TLS + HTTP + the SDK cost on this machine.
//
// Every variant is a bucket setup; `plaintext` is today's only one. The encryption issue
// adds an `sse-kms` variant (bucket default encryption on) to VARIANTS, and summarize()
// then reports it against plaintext in the same run.
//
//   npm run bench:server [-- --quick]
import { spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import https from 'node:https'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { fmt, gbps, isMain, machine, MiB, printTable, sizeName, writeResult } from './lib.mjs'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const ACCESS_KEY = 'S3SSEBENCHKEY0000001'
const SECRET_KEY = 'bench-secret-key-0123456789abcdefghij'

/** Bucket setups measured against each other; the encryption issue adds `sse-kms` here. */
export const VARIANTS = [{ name: 'plaintext', bucket: 'bench-plaintext', setup: async () => {} }]

const SCENARIOS = (quick) => [
  { size: 1 * MiB, parallel: 1, count: quick ? 32 : 128 },
  { size: 1 * MiB, parallel: 8, count: quick ? 64 : 512 },
  { size: 256 * MiB, parallel: 1, count: quick ? 1 : 3 },
  { size: 256 * MiB, parallel: 8, count: 8 },
]

// ---------------------------------------------------------------- processes and clients

async function startServer(dataDir) {
  const proc = spawn(process.execPath, [join(ROOT, 'bin/s3-sse.js'), 'serve', '--data-dir', dataDir, '--host', '127.0.0.1', '--https-port', 'auto', '--http-port', '0'], {
    env: { ...process.env, S3SSE_ACCESS_KEY: ACCESS_KEY, S3SSE_SECRET_KEY: SECRET_KEY },
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
async function loadSdk() {
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

function client(endpoint, ca) {
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
async function timed(count, parallel, op) {
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

export async function run({ quick = false, onProgress = () => {} } = {}) {
  const { CreateBucketCommand } = await loadSdk()
  const scenarios = SCENARIOS(quick)
  const total = scenarios.length * 2 * (VARIANTS.length + 1) + 1
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
      result.variants[v.name] = await measureTarget(s3, v.bucket, data, scenarios, server.pid, (l) => step(`${v.name} ${l}`))
    }
    s3.destroy()
    const sink = await startSink(server.cert, server.key)
    try {
      const ref = client(sink.url, server.ca)
      result.reference = await measureTarget(ref, 'sink', data, scenarios, null, (l) => step(`https sink ${l}`))
      ref.destroy()
    } finally {
      await sink.stop()
    }
    step('done')
  } finally {
    await server.stop()
    rmSync(dataDir, { recursive: true, force: true })
  }
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
  return rows
}

export function printServerReport(result, out = process.stdout) {
  const rows = summarize(result).map((r) => ({
    measure: r.name,
    'MB/s': fmt(r.bytesPerSecond / 1e6, 0),
    'GB/s': fmt(gbps(r.bytesPerSecond), 3),
    'peak RSS': r.value.replace('peak RSS ', ''),
    reference: r.reference,
    '×reference': fmt(r.vsReference),
  }))
  printTable(rows, ['measure', 'MB/s', 'GB/s', 'peak RSS', 'reference', '×reference'], out)
  for (const r of result.reference ?? []) out.write(`  reference ${label(r)}: ${fmt(r.bytesPerSecond / 1e6, 0)} MB/s\n`)
}

if (isMain(import.meta.url)) {
  const { values } = parseArgs({ options: { quick: { type: 'boolean' } } })
  const result = await run({ quick: values.quick, onProgress: (d, t, l) => process.stderr.write(`[${d}/${t}] ${l}\n`) })
  printServerReport(result)
  process.stdout.write(`results: ${writeResult('server', result)}\n`)
}

