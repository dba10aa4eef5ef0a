// Object benchmark: a 1 GiB SSE-KMS object sealed and opened through the object layer
// (sealObject / openObject, 64 KiB packages, stored on tmpfs), against the stream layer
// alone and a plaintext object in the same run; peak RSS per phase; a 1-byte range from the
// middle (latency and stored bytes read, which must be at most two packages plus tags); KMS
// calls per 1000 writes with and without bucket keys. Every output is checked before it is
// timed.
//
//   npm run bench:objects [-- --quick]          (--quick: 256 MiB)
import { createHash, randomBytes } from 'node:crypto'
import { createReadStream, createWriteStream, existsSync, mkdtempSync, rmSync } from 'node:fs'
import { open as openFile } from 'node:fs/promises'
import os from 'node:os'
import { join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { parseArgs } from 'node:util'
import {
  PACKAGE_SIZE, TAG_SIZE, cachedKms, countingKms, deriveStreamKey, newSalt, openEmbeddedKms, openObject, openRange,
  openStream, sealObject, sealStream, sealedStreamSize, loadBackend,
} from 's3-sse'
import { fmt, gbps, GiB, isMain, KiB, machine, MiB, printTable, sizeName, writeResult } from './lib.mjs'

const CHUNK = 1 * MiB
const POOL = 16 * MiB

/** A deterministic source of `size` bytes in 1 MiB chunks, cycling through a random pool. */
function source(pool, size) {
  return (async function* () {
    for (let off = 0; off < size; off += CHUNK) {
      const at = off % POOL
      yield pool.subarray(at, at + Math.min(CHUNK, size - off))
    }
  })()
}

async function sourceDigest(pool, size) {
  const h = createHash('sha256')
  for await (const c of source(pool, size)) h.update(c)
  return h.digest('hex')
}

/** Samples RSS every 20 ms while `fn` runs; returns its result, seconds and the peak RSS. */
async function measured(fn) {
  let peak = process.memoryUsage.rss()
  const timer = setInterval(() => { peak = Math.max(peak, process.memoryUsage.rss()) }, 20)
  const t0 = process.hrtime.bigint()
  try {
    const value = await fn()
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9
    peak = Math.max(peak, process.memoryUsage.rss())
    return { value, seconds, peakRss: peak }
  } finally {
    clearInterval(timer)
  }
}

async function drain(stream, hash) {
  let n = 0
  for await (const c of stream) {
    n += c.length
    hash?.update(c)
  }
  return n
}

/** ReadStored over one file per part. */
function fileReader(files, counter) {
  return (partIndex, start, end) => (async function* () {
    if (end <= start) return
    for await (const c of createReadStream(files[partIndex], { start, end: end - 1, highWaterMark: CHUNK })) {
      counter && (counter.bytes += c.length)
      yield c
    }
  })()
}

/** ReadStored for small ranges: one positioned read, no stream. */
function preadReader(handles, counter) {
  return (partIndex, start, end) => (async function* () {
    const buf = Buffer.allocUnsafe(end - start)
    const { bytesRead } = await handles[partIndex].read(buf, 0, buf.length, start)
    counter.bytes += bytesRead
    yield buf.subarray(0, bytesRead)
  })()
}

async function collect(stream) {
  const chunks = []
  for await (const c of stream) chunks.push(c)
  return Buffer.concat(chunks)
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]
}

function percentile(xs, p) {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor(s.length * p))]
}

/**
 * Runs the benchmark; `size` (a multiple of 1 MiB) overrides the object size, for tests.
 * Returns { machine, rows, range, kms, checks, … }.
 */
export async function runObjectsBench({ quick = false, size: sizeOverride, onProgress = () => {} } = {}) {
  const size = sizeOverride ?? (quick ? 256 * MiB : 1 * GiB)
  const repeats = quick || sizeOverride ? 1 : 3
  const steps = 3 + 6 * repeats
  let step = 0
  const progress = (label) => onProgress(++step, steps, label)
  const tmpRoot = existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir()
  const work = mkdtempSync(join(tmpRoot, 's3sse-bench-objects-'))
  const dataDir = mkdtempSync(join(os.tmpdir(), 's3sse-bench-kms-'))
  const checks = []
  const check = (ok, what) => {
    if (!ok) throw new Error(`check failed: ${what}`)
    checks.push(what)
  }
  try {
    const kms = await openEmbeddedKms(dataDir, { rootKey: randomBytes(32) })
    await kms.createKey({ alias: 'bench' })
    const cached = cachedKms(kms)
    const context = { bucket: 'bench', key: 'one-gib.bin' }
    const encryption = { algorithm: 'aws:kms', kms: cached, keyId: 'bench' }
    const pool = randomBytes(POOL)
    const baselineRss = process.memoryUsage.rss()
    const backend = loadBackend()

    // --- Correctness first: the full object round-trips (digest), sizes match the format.
    progress(`verify: seal + open ${sizeName(size)} and compare digests`)
    const want = await sourceDigest(pool, size)
    const storedFile = join(work, 'object.sealed')
    const sealed = await sealObject(source(pool, size), { context, encryption })
    await pipeline(sealed.stream, createWriteStream(storedFile, { highWaterMark: CHUNK }))
    const manifest = sealed.result()
    check(manifest.size === size && manifest.parts[0].storedSize === sealedStreamSize(size, PACKAGE_SIZE), 'manifest sizes match the format')
    const got = createHash('sha256')
    await drain(openObject(manifest, { context, kms: cached }, fileReader([storedFile])), got)
    check(got.digest('hex') === want, `openObject(sealObject(x)) = x for ${sizeName(size)}`)
    const plainFile = join(work, 'object.plain')
    const plainOut = await sealObject(source(pool, size), { context, encryption: null })
    await pipeline(plainOut.stream, createWriteStream(plainFile, { highWaterMark: CHUNK }))
    const plainManifest = plainOut.result()
    const gotPlain = createHash('sha256')
    await drain(openObject(plainManifest, { context }, fileReader([plainFile])), gotPlain)
    check(gotPlain.digest('hex') === want, 'plaintext object round-trips')

    // --- Throughput, seal to a null sink and open from the tmpfs file: the object layer, the
    // stream layer alone and a plaintext object. Runs are interleaved (A B C A B C …) so that
    // drift in a shared machine's speed hits all three alike; the best run of each counts.
    const rows = []
    const interleaved = async (op, tasks) => {
      const bestRuns = new Map()
      for (let i = 0; i < repeats; i++) {
        for (const [what, fn] of tasks) {
          progress(`${op}: ${what} (${i + 1}/${repeats})`)
          const r = await measured(fn)
          const prev = bestRuns.get(what)
          bestRuns.set(what, !prev || r.seconds < prev.seconds ? { ...r, peakRss: Math.max(r.peakRss, prev?.peakRss ?? 0) } : { ...prev, peakRss: Math.max(prev.peakRss, r.peakRss) })
        }
      }
      return bestRuns
    }
    const seal = await interleaved('seal', [
      ['sealObject, SSE-KMS', async () => drain((await sealObject(source(pool, size), { context, encryption })).stream)],
      ['sealStream (stream layer)', async () => {
        const sk = deriveStreamKey(randomBytes(32), newSalt(), 1)
        try {
          return await drain(sealStream(source(pool, size), sk, { backend }))
        } finally {
          sk.wipe()
        }
      }],
      ['sealObject, plaintext (pass-through)', async () => drain((await sealObject(source(pool, size), { context, encryption: null })).stream)],
    ])
    check(seal.get('sealObject, SSE-KMS').value === sealedStreamSize(size, PACKAGE_SIZE), 'sealObject wrote the sealed size')
    const open = await interleaved('open', [
      ['openObject, SSE-KMS', () => drain(openObject(manifest, { context, kms: cached }, fileReader([storedFile])))],
      ['openStream (stream layer)', async () => {
        // The stream layer alone, with the object's own stream key (unwrapped as the object layer does).
        const dataKey = await cached.decrypt(manifest.encryption.wrappedKey, manifest.encryption.context)
        const sk = deriveStreamKey(dataKey, manifest.parts[0].salt, 1)
        dataKey.fill(0)
        try {
          return await drain(openStream(createReadStream(storedFile, { highWaterMark: CHUNK }), sk, { backend }))
        } finally {
          sk.wipe()
        }
      }],
      ['openObject, plaintext', () => drain(openObject(plainManifest, { context }, fileReader([plainFile])))],
    ])
    check(open.get('openObject, SSE-KMS').value === size && open.get('openStream (stream layer)').value === size, 'the opens returned the whole object')
    for (const [op, runs] of [['seal', seal], ['open', open]]) {
      const ref = runs.get(`${op}Stream (stream layer)`)
      for (const [what, r] of runs) {
        rows.push({
          op, what, seconds: r.seconds, bytesPerSecond: size / r.seconds, peakRss: r.peakRss,
          ...(what.endsWith('SSE-KMS') ? { vsStream: ref.seconds / r.seconds } : {}),
        })
      }
    }

    // --- A 1-byte range from the middle: latency and stored bytes read.
    progress('1-byte range from the middle')
    const handles = [await openFile(storedFile, 'r')]
    const plainHandles = [await openFile(plainFile, 'r')]
    const mid = Math.floor(size / 2) + 12345
    const expectedByte = (() => { const at = mid % POOL; return pool[at] })()
    const rangeRuns = quick ? 200 : 1000
    const timeRange = async (m, hs, k) => {
      const lat = []
      const counter = { bytes: 0 }
      for (let i = 0; i < rangeRuns + 20; i++) {
        counter.bytes = 0
        const t0 = process.hrtime.bigint()
        const chunks = []
        for await (const c of openRange(m, { context, kms: k }, mid, mid, preadReader(hs, counter))) chunks.push(c)
        const us = Number(process.hrtime.bigint() - t0) / 1e3
        const out = Buffer.concat(chunks)
        if (out.length !== 1 || out[0] !== expectedByte) throw new Error('the 1-byte range returned the wrong byte')
        if (i >= 20) lat.push(us)
      }
      return { medianUs: median(lat), p99Us: percentile(lat, 0.99), bytesRead: counter.bytes }
    }
    const rangeCached = await timeRange(manifest, handles, cached)
    const rangeUncached = await timeRange(manifest, handles, kms)
    const rangePlain = await timeRange(plainManifest, plainHandles, undefined)
    await handles[0].close()
    await plainHandles[0].close()
    const limit = 2 * (PACKAGE_SIZE + TAG_SIZE)
    check(rangeCached.bytesRead <= limit, `1-byte range read ${rangeCached.bytesRead} stored bytes ≤ 2 packages + tags (${limit})`)
    check(rangeCached.bytesRead === PACKAGE_SIZE + TAG_SIZE, '1-byte range read exactly one package')
    const range = {
      offset: mid,
      bytesRead: rangeCached.bytesRead,
      limit,
      withKeyCache: rangeCached,
      withoutKeyCache: rangeUncached,
      plaintextObject: rangePlain,
    }

    // --- KMS calls per 1000 writes (4 KiB objects), and per 1000 reads after a restart.
    progress('KMS calls per 1000 writes, with and without bucket keys')
    const small = randomBytes(4 * KiB)
    const kmsRuns = {}
    for (const bucketKey of [false, true]) {
      const counting = countingKms(kms)
      const writer = cachedKms(counting)
      const written = []
      const t0 = process.hrtime.bigint()
      for (let i = 0; i < 1000; i++) {
        const ctx = { bucket: 'bench', key: `small/${i}` }
        const out = await sealObject([small], { context: ctx, encryption: { algorithm: 'aws:kms', kms: writer, keyId: 'bench', bucketKey } })
        const stored = await collect(out.stream)
        written.push({ ctx, stored, manifest: out.result() })
      }
      const writeSeconds = Number(process.hrtime.bigint() - t0) / 1e9
      const writeCalls = counting.total
      // Reading them back through a fresh cache (a restarted server).
      counting.reset()
      const reader = cachedKms(counting)
      const t1 = process.hrtime.bigint()
      for (const w of written) {
        const back = await collect(openObject(w.manifest, { context: w.ctx, kms: reader }, () => [w.stored]))
        if (!back.equals(small)) throw new Error('a small object did not read back')
      }
      const readSeconds = Number(process.hrtime.bigint() - t1) / 1e9
      kmsRuns[bucketKey ? 'bucketKeys' : 'perObjectKeys'] = {
        writes: 1000, kmsCallsForWrites: writeCalls, reads: 1000, kmsCallsForReads: counting.total,
        usPerWrite: writeSeconds * 1e3, usPerRead: readSeconds * 1e3,
      }
    }
    check(kmsRuns.perObjectKeys.kmsCallsForWrites === 1000, '1000 writes without bucket keys: 1000 KMS calls')
    check(kmsRuns.bucketKeys.kmsCallsForWrites < 10, `1000 writes with bucket keys: ${kmsRuns.bucketKeys.kmsCallsForWrites} KMS call(s)`)
    await kms.close()

    return {
      machine: machine(),
      backend: backend.name,
      objectSize: size,
      packageSize: PACKAGE_SIZE,
      storage: tmpRoot === '/dev/shm' ? 'tmpfs (/dev/shm)' : os.tmpdir(),
      repeats,
      rows,
      range,
      kms: kmsRuns,
      baselineRssBytes: baselineRss,
      maxRssBytes: process.resourceUsage().maxRSS * 1024,
      checks,
    }
  } finally {
    rmSync(work, { recursive: true, force: true })
    rmSync(dataDir, { recursive: true, force: true })
  }
}

export function printObjectsReport(r, out = process.stdout) {
  const m = r.machine
  out.write(`\n${m.cpu} (${m.cores} cores), Node ${m.node}, backend ${r.backend}; ${sizeName(r.objectSize)} object, ${sizeName(r.packageSize)} packages, stored on ${r.storage}\n\n`)
  printTable(r.rows.map((x) => ({
    op: x.op, what: x.what, 'GB/s': fmt(gbps(x.bytesPerSecond), 3), 'peak RSS MiB': fmt(x.peakRss / MiB, 0), '×stream layer': x.vsStream != null ? fmt(x.vsStream) : '',
  })), ['op', 'what', 'GB/s', 'peak RSS MiB', '×stream layer'], out)
  const g = r.range
  out.write(`\n1-byte range at offset ${g.offset}: ${g.bytesRead} stored bytes read (limit ${g.limit}: two packages plus tags)\n`)
  printTable([
    { case: 'SSE-KMS, key cache', 'median µs': fmt(g.withKeyCache.medianUs, 1), 'p99 µs': fmt(g.withKeyCache.p99Us, 1), 'bytes read': g.withKeyCache.bytesRead },
    { case: 'SSE-KMS, KMS decrypt each time', 'median µs': fmt(g.withoutKeyCache.medianUs, 1), 'p99 µs': fmt(g.withoutKeyCache.p99Us, 1), 'bytes read': g.withoutKeyCache.bytesRead },
    { case: 'plaintext object', 'median µs': fmt(g.plaintextObject.medianUs, 1), 'p99 µs': fmt(g.plaintextObject.p99Us, 1), 'bytes read': g.plaintextObject.bytesRead },
  ], ['case', 'median µs', 'p99 µs', 'bytes read'], out)
  out.write('\nKMS calls, 1000 writes of 4 KiB to one bucket, then 1000 reads with a fresh cache:\n')
  printTable(Object.entries(r.kms).map(([k, v]) => ({
    keys: k === 'bucketKeys' ? 'bucket keys' : 'one data key per object', 'KMS calls (writes)': v.kmsCallsForWrites, 'KMS calls (reads)': v.kmsCallsForReads,
    'µs/write': fmt(v.usPerWrite, 0), 'µs/read': fmt(v.usPerRead, 0),
  })), ['keys', 'KMS calls (writes)', 'KMS calls (reads)', 'µs/write', 'µs/read'], out)
  out.write(`\nRSS before the run: ${fmt(r.baselineRssBytes / MiB, 0)} MiB (the 16 MiB source pool included); process max RSS: ${fmt(r.maxRssBytes / MiB, 0)} MiB\nchecks: ${r.checks.length} passed\n`)
}

/** The `s3-sse bench` interface. */
export const run = runObjectsBench

export function summarize(r) {
  const row = (op, what) => r.rows.find((x) => x.op === op && x.what === what)
  const rows = []
  for (const op of ['seal', 'open']) {
    const obj = row(op, `${op}Object, SSE-KMS`)
    const ref = row(op, `${op}Stream (stream layer)`)
    rows.push({
      name: `${op}Object ${sizeName(r.objectSize)} SSE-KMS, peak RSS ${fmt(obj.peakRss / MiB, 0)} MiB`,
      bytesPerSecond: obj.bytesPerSecond,
      reference: 'stream layer alone',
      vsReference: obj.bytesPerSecond / ref.bytesPerSecond,
    })
  }
  rows.push({
    name: `1-byte range from the middle of ${sizeName(r.objectSize)}`,
    value: `${fmt(r.range.withKeyCache.medianUs, 0)} µs, ${r.range.bytesRead} B read (≤ ${r.range.limit})`,
    reference: 'plaintext object',
    vsReference: r.range.plaintextObject.medianUs / r.range.withKeyCache.medianUs,
  })
  rows.push({
    name: 'KMS calls per 1000 writes to one bucket',
    value: `${r.kms.perObjectKeys.kmsCallsForWrites} → ${r.kms.bucketKeys.kmsCallsForWrites} with bucket keys`,
    reference: 'one data key per object',
    vsReference: r.kms.bucketKeys.kmsCallsForWrites / r.kms.perObjectKeys.kmsCallsForWrites,
  })
  return rows
}

if (isMain(import.meta.url)) {
  const { values } = parseArgs({ options: { quick: { type: 'boolean' } } })
  const result = await runObjectsBench({
    quick: values.quick,
    onProgress: (done, total, label) => process.stderr.write(`[${done}/${total}] ${label}\n`),
  })
  printObjectsReport(result)
  process.stdout.write(`\nwrote ${writeResult('objects', result)}\n`)
}
