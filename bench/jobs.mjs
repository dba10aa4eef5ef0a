// Jobs benchmark: how fast the server's jobs (encrypt, rewrap, scrub) work through a bucket of
// 10,000 small objects (4 KiB) and one of 10 large ones (256 MiB), on the real server process
// over its default components (files, SQLite, the embedded KMS).
//
// The reference, measured in the same run on the same server: a client (@aws-sdk/client-s3,
// HTTPS, as many requests in parallel as the job works objects) PUTting the same objects into
// an SSE-KMS bucket — what re-uploading them through the S3 API costs, which is the other way
// to encrypt what was stored before. Every job's result is checked before it is reported: the
// objects read back byte for byte, encrypted; rewrap leaves every stored file as it was; scrub
// finds nothing damaged.
//
//   npm run bench:jobs [-- --quick]     (1,000 small and 10 × 64 MiB with --quick)
import { execFileSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { fmt, isMain, machine, MiB, printTable, sizeName, writeResult } from './lib.mjs'
import { ACCESS_KEY, client, loadSdk, SECRET_KEY, startServer, timed } from './server.mjs'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const KMS_RULE = { Rules: [{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms' } }] }
/** The job runner's default: objects of one job worked at once (DEFAULT_JOBS.parallel). */
const JOB_PARALLEL = 4

function cli(args) {
  return execFileSync(process.execPath, [join(ROOT, 'bin/s3-sse.js'), ...args], { encoding: 'utf8', env: { ...process.env, S3SSE_ACCESS_KEY: ACCESS_KEY, S3SSE_SECRET_KEY: SECRET_KEY } })
}

const sha = (b) => createHash('sha256').update(b).digest('hex')

function fileHashes(dataDir) {
  const out = new Map()
  const walk = (d) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name)
      if (e.isDirectory()) walk(p)
      else out.set(p, sha(readFileSync(p)))
    }
  }
  walk(join(dataDir, 'objects'))
  return out
}

/** Starts a job over the admin API and waits for it to stop; its view and the wall time. */
async function runJob(admin, conn, body) {
  const t0 = process.hrtime.bigint()
  let { job } = await admin.adminRequest(conn, 'POST', '/jobs', {}, body)
  while (!['completed', 'failed', 'cancelled', 'paused'].includes(job.state)) {
    await new Promise((r) => setTimeout(r, 100))
    ;({ job } = await admin.adminRequest(conn, 'GET', `/jobs/${job.id}`))
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9
  if (job.state !== 'completed') throw new Error(`the ${body.kind} job ended ${job.state}: ${job.error}`)
  if (job.done.errors > 0 || job.done.damaged > 0) throw new Error(`the ${body.kind} job reported ${job.done.errors} errors and ${job.done.damaged} damaged objects`)
  return { job, seconds }
}

/** Objects read back equal to what was written (every one, or a sample of small ones), and encrypted. */
async function checkObjects(s3, bucket, written, sample) {
  const { GetObjectCommand } = await loadSdk()
  const keys = [...written.keys()]
  const picked = sample >= keys.length ? keys : Array.from({ length: sample }, (_, i) => keys[Math.floor((i * keys.length) / sample)])
  for (const key of picked) {
    const out = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }))
    if (out.ServerSideEncryption !== 'aws:kms') throw new Error(`${bucket}/${key} is not encrypted after the job`)
    const h = createHash('sha256')
    for await (const c of out.Body) h.update(c)
    if (h.digest('hex') !== written.get(key)) throw new Error(`${bucket}/${key} does not read back as written`)
  }
  return picked.length
}

async function measureSet(s3, admin, conn, dataDir, set, onStep) {
  const { CreateBucketCommand, PutBucketEncryptionCommand, PutObjectCommand } = await loadSdk()
  const source = randomBytes(set.size)
  const body = (i) => {
    // Distinct contents, cheaply: the first 8 bytes say which object it is.
    const b = Buffer.from(source)
    b.writeUInt32BE(i, 0)
    b.writeUInt32BE(set.count - i, 4)
    return b
  }
  const key = (i) => `obj/${String(i).padStart(5, '0')}`
  const bucket = `bench-jobs-${set.name}`
  const ref = `bench-jobs-${set.name}-ref`
  await s3.send(new CreateBucketCommand({ Bucket: bucket }))
  await s3.send(new CreateBucketCommand({ Bucket: ref }))
  await s3.send(new PutBucketEncryptionCommand({ Bucket: ref, ServerSideEncryptionConfiguration: KMS_RULE }))
  const written = new Map()
  await timed(set.count, 16, async (i) => {
    const b = body(i)
    written.set(key(i), sha(b))
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key(i), Body: b }))
  })
  onStep(`${set.label}: stored as plaintext`)
  // Reference: the same objects PUT into an SSE-KMS bucket, JOB_PARALLEL at a time.
  const refSeconds = await timed(set.count, JOB_PARALLEL, (i) => s3.send(new PutObjectCommand({ Bucket: ref, Key: key(i), Body: body(i) })))
  onStep(`${set.label}: reference SSE-KMS PUT`)
  await s3.send(new PutBucketEncryptionCommand({ Bucket: bucket, ServerSideEncryptionConfiguration: KMS_RULE }))

  const rows = []
  const row = (kind, r, extra = {}) => ({
    set: set.label, kind, objects: r.job.done.objects, seconds: r.seconds, workedSeconds: r.job.progress.objectsPerSecond ? r.job.done.objects / r.job.progress.objectsPerSecond : null,
    objectsPerSecond: r.job.done.objects / r.seconds, bytesPerSecond: r.job.done.bytes / r.seconds, ...extra,
  })
  const enc = await runJob(admin, conn, { kind: 'encrypt', bucket })
  if (enc.job.done.changed !== set.count) throw new Error(`encrypt changed ${enc.job.done.changed} of ${set.count} objects`)
  const checked = await checkObjects(s3, bucket, written, set.count > 100 ? 200 : set.count)
  rows.push(row('encrypt', enc, { check: `${checked} objects read back identical and SSE-KMS` }))
  onStep(`${set.label}: encrypt job`)

  cli(['kms', 'rotate', `s3-sse/bucket/${bucket}`, '--data-dir', dataDir])
  const before = fileHashes(dataDir)
  const rw = await runJob(admin, conn, { kind: 'rewrap', bucket })
  if (rw.job.done.changed !== set.count) throw new Error(`rewrap changed ${rw.job.done.changed} of ${set.count} objects`)
  const after = fileHashes(dataDir)
  if (after.size !== before.size || [...before].some(([f, h]) => after.get(f) !== h)) throw new Error('rewrap changed stored files')
  await checkObjects(s3, bucket, written, 50)
  rows.push(row('rewrap', rw, { check: `${before.size} stored files byte-identical after` }))
  onStep(`${set.label}: rewrap job`)

  const sc = await runJob(admin, conn, { kind: 'scrub', bucket })
  if (sc.job.done.changed !== set.count) throw new Error(`scrub verified ${sc.job.done.changed} of ${set.count} objects`)
  rows.push(row('scrub', sc, { check: `${sc.job.done.changed} objects verified intact` }))
  onStep(`${set.label}: scrub job`)
  return { rows, reference: { objectsPerSecond: set.count / refSeconds, bytesPerSecond: (set.count * set.size) / refSeconds, seconds: refSeconds, parallel: JOB_PARALLEL } }
}

export async function run({ quick = false, onProgress = () => {} } = {}) {
  await loadSdk()
  const admin = await import(new URL('../dist/server/admin/client.js', import.meta.url).href).catch((err) => {
    throw new Error(`the jobs benchmark drives dist/ (npm run compile first): ${err.message}`)
  })
  const sets = [
    { name: 'small', label: `${quick ? '1,000' : '10,000'} × 4 KiB`, count: quick ? 1000 : 10_000, size: 4096 },
    { name: 'large', label: `10 × ${sizeName(quick ? 64 * MiB : 256 * MiB)}`, count: 10, size: quick ? 64 * MiB : 256 * MiB },
  ]
  const total = sets.length * 5
  let done = 0
  const step = (label) => onProgress(++done, total, label)
  const dataDir = mkdtempSync(join(tmpdir(), 's3sse-bench-jobs-'))
  const server = await startServer(dataDir)
  const result = { machine: machine(), sets: {}, parallel: JOB_PARALLEL }
  try {
    const s3 = client(server.url, server.ca)
    const conn = { endpoint: new URL(server.url), region: 'us-east-1', accessKey: ACCESS_KEY, secretKey: SECRET_KEY, ca: server.ca }
    for (const set of sets) result.sets[set.name] = { label: set.label, size: set.size, count: set.count, ...(await measureSet(s3, admin, conn, dataDir, set, step)) }
    s3.destroy()
  } finally {
    await server.stop()
    rmSync(dataDir, { recursive: true, force: true })
  }
  return result
}

export function printJobsReport(result, out = process.stdout) {
  const rows = []
  for (const s of Object.values(result.sets)) {
    for (const r of s.rows) {
      rows.push({
        measure: `${r.kind} job, ${s.label}`,
        'objects/s': fmt(r.objectsPerSecond, r.objectsPerSecond < 10 ? 2 : 0),
        // A rewrap reads and writes no data: bytes a second say nothing about it.
        'MB/s': r.kind === 'rewrap' ? '–' : fmt(r.bytesPerSecond / 1e6, 1),
        seconds: fmt(r.seconds, 1),
        reference: `SSE-KMS PUT x${s.reference.parallel}: ${fmt(s.reference.objectsPerSecond, s.reference.objectsPerSecond < 10 ? 2 : 0)} objects/s, ${fmt(s.reference.bytesPerSecond / 1e6, 1)} MB/s`,
        '×reference': fmt(r.objectsPerSecond / s.reference.objectsPerSecond),
      })
    }
  }
  printTable(rows, ['measure', 'objects/s', 'MB/s', 'seconds', 'reference', '×reference'], out)
  for (const s of Object.values(result.sets)) for (const r of s.rows) out.write(`  checked: ${r.kind}, ${s.label}: ${r.check}\n`)
}

if (isMain(import.meta.url)) {
  const { values } = parseArgs({ options: { quick: { type: 'boolean' } } })
  const result = await run({ quick: values.quick, onProgress: (d, t, l) => process.stderr.write(`[${d}/${t}] ${l}\n`) })
  printJobsReport(result)
  process.stdout.write(`results: ${writeResult('jobs', result)}\n`)
}
