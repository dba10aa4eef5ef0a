// KMS benchmark: the server with its master keys behind the AWS KMS API (`--kms aws` against
// `s3-sse kms serve` on the same machine) against the same server on its embedded keyring,
// measured in the same run: SSE-KMS PUT and GET throughput of 1 MiB objects, 8 in parallel,
// without and with bucket keys, and the KMS calls 1000 PUTs cost (the server's /-/metrics).
// Rounds alternate the two servers (A B A B) so drift in the machine hits both alike; each
// variant reports its best round.
//
//   node bench/kms.mjs [--quick]
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { fmt, isMain, machine, MiB, printTable, writeResult } from './lib.mjs'
import { client, kmsCallsTotal, loadSdk, startServer, timed } from './server.mjs'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const KMS_ACCESS_KEY = 'S3SSEKMSBENCHKEY0001'
const KMS_SECRET_KEY = 'kms-bench-secret-0123456789abcdefghij'

async function startKmsServe(dataDir) {
  const proc = spawn(process.execPath, [join(ROOT, 'bin/s3-sse.js'), 'kms', 'serve', '--data-dir', dataDir, '--host', '127.0.0.1', '--port', 'auto'], {
    env: { ...process.env, S3SSE_ACCESS_KEY: KMS_ACCESS_KEY, S3SSE_SECRET_KEY: KMS_SECRET_KEY },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  proc.stdout.on('data', (d) => (out += d))
  proc.stderr.on('data', (d) => (out += d))
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`kms serve did not start:\n${out}`)), 30_000)
    proc.stdout.on('data', () => {
      const m = /s3-sse kms listening on (https:\/\/\S+)/.exec(out)
      if (m) {
        clearTimeout(timer)
        resolve(m[1])
      }
    })
    proc.on('exit', (code) => reject(new Error(`kms serve exited with ${code}:\n${out}`)))
  })
  const exited = new Promise((resolve) => proc.on('exit', resolve))
  return { url, caFile: join(dataDir, 'tls-cert.pem'), stop: async () => { proc.kill('SIGTERM'); await exited } }
}

async function setupBucket(s3, bucket, bucketKey) {
  const { CreateBucketCommand, PutBucketEncryptionCommand } = await loadSdk()
  await s3.send(new CreateBucketCommand({ Bucket: bucket }))
  await s3.send(new PutBucketEncryptionCommand({
    Bucket: bucket,
    ServerSideEncryptionConfiguration: { Rules: [{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms' }, BucketKeyEnabled: bucketKey }] },
  }))
}

async function verify(s3, bucket, data) {
  const { PutObjectCommand, GetObjectCommand } = await loadSdk()
  const put = await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'verify', Body: data }))
  if (put.ServerSideEncryption !== 'aws:kms') throw new Error(`${bucket}: the PUT was not encrypted`)
  const got = Buffer.from(await (await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'verify' }))).Body.transformToByteArray())
  if (!got.equals(data)) throw new Error(`${bucket}: GET returned other bytes than the PUT`)
}

/** PUT then GET `count` objects of `data`, 8 at a time: bytes per second each way. */
async function throughput(s3, bucket, data, count, round) {
  const { PutObjectCommand, GetObjectCommand } = await loadSdk()
  const putS = await timed(count, 8, (i) => s3.send(new PutObjectCommand({ Bucket: bucket, Key: `r${round}/o${i}`, Body: data })))
  const getS = await timed(count, 8, async (i) => {
    const r = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: `r${round}/o${i}` }))
    for await (const _ of r.Body) { /* drain */ }
  })
  return { put: (count * data.length) / putS, get: (count * data.length) / getS }
}

/**
 * KMS calls `count` 1 KiB PUTs cost on `server` (read from its /-/metrics), in a fresh bucket,
 * so its first write's key creation and first bucket key are counted too.
 */
async function kmsCalls(s3, server, bucket, bucketKey, count) {
  const { PutObjectCommand } = await loadSdk()
  await setupBucket(s3, bucket, bucketKey)
  const body = randomBytes(1024)
  const before = await kmsCallsTotal(server)
  await timed(count, 8, (i) => s3.send(new PutObjectCommand({ Bucket: bucket, Key: `o${i}`, Body: body })))
  const calls = (await kmsCallsTotal(server)) - before
  return { puts: count, kmsCalls: calls, per1000: (calls * 1000) / count }
}

export async function run({ quick = false, onProgress = () => {} } = {}) {
  await loadSdk()
  const count = quick ? 32 : 128
  const rounds = quick ? 2 : 3
  const callsCount = quick ? 200 : 1000
  const data = randomBytes(1 * MiB)
  const dirs = [mkdtempSync(join(tmpdir(), 's3sse-kmsb-')), mkdtempSync(join(tmpdir(), 's3sse-kmsb-')), mkdtempSync(join(tmpdir(), 's3sse-kmsb-'))]
  const kmsd = await startKmsServe(dirs[0])
  const servers = {
    embedded: await startServer(dirs[1]),
    aws: await startServer(dirs[2], {
      args: ['--kms', 'aws', '--kms-endpoint', kmsd.url, '--kms-ca-file', kmsd.caFile, '--kms-region', 'us-east-1'],
      env: { AWS_ACCESS_KEY_ID: KMS_ACCESS_KEY, AWS_SECRET_ACCESS_KEY: KMS_SECRET_KEY, AWS_EC2_METADATA_DISABLED: 'true' },
    }),
  }
  const total = rounds * 4 + 4
  let done = 0
  const step = (label) => onProgress(++done, total, label)
  const result = { machine: machine(), objectSize: data.length, count, rounds, variants: {}, kmsCalls: {}, checks: [] }
  try {
    const clients = Object.fromEntries(Object.entries(servers).map(([k, s]) => [k, client(s.url, s.ca)]))
    for (const [kind, s3] of Object.entries(clients)) {
      for (const bk of [false, true]) {
        const bucket = `bench-${bk ? 'bk' : 'nobk'}`
        await setupBucket(s3, bucket, bk)
        await verify(s3, bucket, data)
        result.checks.push(`${kind} ${bucket}: an encrypted PUT then GET returned identical bytes`)
        result.variants[`${kind}${bk ? ', bucket keys' : ''}`] = { put: 0, get: 0 }
      }
    }
    for (let round = 0; round < rounds; round++) {
      for (const bk of [false, true]) {
        for (const kind of Object.keys(servers)) {
          const name = `${kind}${bk ? ', bucket keys' : ''}`
          const r = await throughput(clients[kind], `bench-${bk ? 'bk' : 'nobk'}`, data, count, round)
          const v = result.variants[name]
          v.put = Math.max(v.put, r.put)
          v.get = Math.max(v.get, r.get)
          step(`round ${round + 1}: ${name}`)
        }
      }
    }
    for (const kind of Object.keys(servers)) {
      for (const bk of [false, true]) {
        result.kmsCalls[`${kind}${bk ? ', bucket keys' : ''}`] = await kmsCalls(clients[kind], servers[kind], `calls-${bk ? 'bk' : 'nobk'}`, bk, callsCount)
        step(`KMS calls, ${kind}${bk ? ', bucket keys' : ''}`)
      }
    }
    for (const c of Object.values(clients)) c.destroy()
  } finally {
    for (const s of Object.values(servers)) await s.stop()
    await kmsd.stop()
    for (const d of dirs) rmSync(d, { recursive: true, force: true })
  }
  return result
}

export function summarize(result) {
  const rows = []
  for (const bk of ['', ', bucket keys']) {
    const ref = result.variants[`embedded${bk}`]
    const v = result.variants[`aws${bk}`]
    if (!ref || !v) continue
    for (const dir of ['put', 'get']) {
      rows.push({
        name: `server sse-kms --kms aws (kms serve)${bk}: ${dir.toUpperCase()} 1 MiB ×8`,
        bytesPerSecond: v[dir],
        reference: `embedded KMS${bk}`,
        vsReference: v[dir] / ref[dir],
        chart: false,
      })
    }
  }
  for (const [name, k] of Object.entries(result.kmsCalls ?? {})) {
    rows.push({ name: `KMS calls per 1000 PUTs, ${name}`, value: `${fmt(k.per1000, 0)} calls`, chart: false })
  }
  return rows
}

if (isMain(import.meta.url)) {
  const { values } = parseArgs({ options: { quick: { type: 'boolean' } } })
  const result = await run({ quick: values.quick, onProgress: (d, t, l) => process.stderr.write(`[${d}/${t}] ${l}\n`) })
  printTable(summarize(result).map((r) => ({
    measure: r.name,
    'MB/s': r.bytesPerSecond ? fmt(r.bytesPerSecond / 1e6, 0) : '',
    value: r.value ?? '',
    reference: r.reference ?? '',
    '×reference': r.vsReference != null ? fmt(r.vsReference) : '',
  })), ['measure', 'MB/s', 'value', 'reference', '×reference'])
  process.stdout.write(`results: ${writeResult('kms', result)}\n`)
}
