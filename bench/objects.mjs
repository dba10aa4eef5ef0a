// Object benchmark: a 1 GiB SSE-KMS object sealed and opened in memory through the object
// layer (sealObject / openObject, 64 KiB packages), against the raw backend (its seal / open
// called on the same 1 MiB chunks into one reused buffer: the most any layer above it can
// get), the stream layer alone and a plaintext object, in the same run; openObject from a
// tmpfs file too; peak RSS per phase; a 1-byte range from the middle (latency and stored
// bytes read, which must be at most two packages plus tags); KMS calls per 1000 writes with
// and without bucket keys. Every output is checked before it is timed.
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
  openStream, sealObject, sealStream, sealedLength, sealedStreamSize, loadBackend,
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

/**
 * Samples RSS every 20 ms while `fn` runs; returns its result, seconds, the peak RSS and how
 * far RSS rose above where it was when `fn` started (what the run itself held).
 */
async function measured(fn) {
  const start = process.memoryUsage.rss()
  let peak = start
  const timer = setInterval(() => { peak = Math.max(peak, process.memoryUsage.rss()) }, 20)
  const t0 = process.hrtime.bigint()
  try {
    const value = await fn()
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9
    peak = Math.max(peak, process.memoryUsage.rss())
    return { value, seconds, peakRss: peak, rssGrowth: peak - start }
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

/**
 * ReadStored over one file per part, read in chunks of `chunk` bytes (for a sealed file, 16
 * sealed packages: batch-aligned, as the server's store reads them, so nothing is re-copied).
 */
function fileReader(files, counter, chunk = CHUNK) {
  return (partIndex, start, end) => (async function* () {
    if (end <= start) return
    for await (const c of createReadStream(files[partIndex], { start, end: end - 1, highWaterMark: chunk })) {
      counter && (counter.bytes += c.length)
      yield c
    }
  })()
}

/**
 * The stored bytes of one part held in memory, read in batch-aligned slices (16 sealed
 * packages, as a store that reads in batch-aligned chunks hands them over).
 */
function memoryReader(stored) {
  const slice = 16 * (PACKAGE_SIZE + TAG_SIZE)
  return (_partIndex, start, end) => (function* () {
    for (let off = start; off < end; off += slice) yield stored.subarray(off, Math.min(end, off + slice))
  })()
}

/**
 * Seals `size` bytes of the source with the raw backend, one seal call per 1 MiB chunk,
 * writing into `into` — one buffer for the whole sealed stream (its pages already touched),
 * so the output goes to memory as any consumer's would — or, without it, over and over into
 * one 1 MiB buffer that stays in cache (an upper bound no stream that hands out its output
 * can reach).
 */
async function rawSeal(backend, sk, pool, size, into) {
  const scratch = into ? null : Buffer.allocUnsafe(sealedLength(CHUNK, true))
  let written = 0
  let first = 0
  for await (const chunk of source(pool, size)) {
    const last = first * PACKAGE_SIZE + chunk.length === size
    written += backend.seal(sk.key, sk.noncePrefix, first, last, chunk, into ? into.subarray(written) : scratch)
    first += Math.ceil(chunk.length / PACKAGE_SIZE)
  }
  return written
}

/** Opens a sealed stream held in memory with the raw backend, one open call per 16 packages, into `into` (or one reused buffer). */
function rawOpen(backend, sk, stored, into) {
  const slice = 16 * (PACKAGE_SIZE + TAG_SIZE)
  const scratch = into ? null : Buffer.allocUnsafe(16 * PACKAGE_SIZE)
  let opened = 0
  for (let off = 0, first = 0; off < stored.length; off += slice, first += 16) {
    const end = Math.min(stored.length, off + slice)
    opened += backend.open(sk.key, sk.noncePrefix, first, end === stored.length, stored.subarray(off, end), into ? into.subarray(opened) : scratch)
  }
  return opened
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
  const steps = 3 + 10 * repeats
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

    // The sealed object in memory, for the opens below (the store is then not what is measured).
    const stored = Buffer.allocUnsafe(manifest.parts[0].storedSize)
    {
      let at = 0
      for await (const c of createReadStream(storedFile, { highWaterMark: CHUNK })) {
        c.copy(stored, at)
        at += c.length
      }
      check(at === stored.length, 'the sealed object is in memory')
    }
    const dataKey = await cached.decrypt(manifest.encryption.wrappedKey, manifest.encryption.context)
    const objectKey = deriveStreamKey(dataKey, manifest.parts[0].salt, 1)
    dataKey.fill(0)
    // One buffer the size of the sealed object, pages touched: where the raw backend writes.
    const rawOut = Buffer.alloc(stored.length)
    {
      const h = createHash('sha256')
      await drain(openObject(manifest, { context, kms: cached }, memoryReader(stored)), h)
      check(h.digest('hex') === want, 'openObject from memory = x')
      const n = rawOpen(backend, objectKey, stored, rawOut)
      check(n === size && createHash('sha256').update(rawOut.subarray(0, n)).digest('hex') === want, 'the raw backend opens the stored object to x')
      const sk = deriveStreamKey(randomBytes(32), newSalt(), 1)
      const viaStream = Buffer.concat(await (async () => { const a = []; for await (const c of sealStream(source(pool, 4 * MiB), sk, { backend })) a.push(c); return a })())
      const m = await rawSeal(backend, sk, pool, 4 * MiB, rawOut)
      check(m === viaStream.length && rawOut.subarray(0, m).equals(viaStream), 'the raw seal loop writes what sealStream writes')
      sk.wipe()
    }

    // --- Throughput: seal to a null sink and open from memory — the object layer, the raw
    // backend on the same chunks, the stream layer alone and a plaintext object — and the
    // object layer opening from the tmpfs file. Runs are interleaved (A B C A B C …) so that
    // drift in a shared machine's speed hits all alike; the best run of each counts.
    const rows = []
    const interleaved = async (op, tasks) => {
      const bestRuns = new Map()
      for (let i = 0; i < repeats; i++) {
        for (const [what, fn] of tasks) {
          progress(`${op}: ${what} (${i + 1}/${repeats})`)
          const r = await measured(fn)
          const prev = bestRuns.get(what)
          const peaks = { peakRss: Math.max(r.peakRss, prev?.peakRss ?? 0), rssGrowth: Math.max(r.rssGrowth, prev?.rssGrowth ?? 0) }
          bestRuns.set(what, !prev || r.seconds < prev.seconds ? { ...r, ...peaks } : { ...prev, ...peaks })
        }
      }
      return bestRuns
    }
    const RAW = (op) => `raw backend ${op} into memory (1 MiB calls)`
    const HOT = (op) => `raw backend ${op}, one 1 MiB buffer (in cache)`
    const seal = await interleaved('seal', [
      ['sealObject, SSE-KMS', async () => drain((await sealObject(source(pool, size), { context, encryption })).stream)],
      [RAW('seal'), async () => {
        const sk = deriveStreamKey(randomBytes(32), newSalt(), 1)
        try {
          return await rawSeal(backend, sk, pool, size, rawOut)
        } finally {
          sk.wipe()
        }
      }],
      [HOT('seal'), async () => {
        const sk = deriveStreamKey(randomBytes(32), newSalt(), 1)
        try {
          return await rawSeal(backend, sk, pool, size)
        } finally {
          sk.wipe()
        }
      }],
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
    check(seal.get(RAW('seal')).value === sealedStreamSize(size, PACKAGE_SIZE) && seal.get(HOT('seal')).value === sealedStreamSize(size, PACKAGE_SIZE), 'the raw seals wrote the sealed size')
    const open = await interleaved('open', [
      ['openObject, SSE-KMS', () => drain(openObject(manifest, { context, kms: cached }, memoryReader(stored)))],
      [RAW('open'), async () => rawOpen(backend, objectKey, stored, rawOut)],
      [HOT('open'), async () => rawOpen(backend, objectKey, stored)],
      ['openStream (stream layer)', () => drain(openStream(memoryReader(stored)(0, 0, stored.length), objectKey, { backend }))],
      ['openObject, plaintext', () => drain(openObject(plainManifest, { context }, fileReader([plainFile])))],
      ['openObject, SSE-KMS, from a tmpfs file', () => drain(openObject(manifest, { context, kms: cached }, fileReader([storedFile], undefined, 16 * (PACKAGE_SIZE + TAG_SIZE))))],
    ])
    objectKey.wipe()
    for (const what of ['openObject, SSE-KMS', RAW('open'), HOT('open'), 'openStream (stream layer)', 'openObject, SSE-KMS, from a tmpfs file']) {
      check(open.get(what).value === size, `${what} returned the whole object`)
    }
    for (const [op, runs] of [['seal', seal], ['open', open]]) {
      const raw = runs.get(RAW(op))
      const stream = runs.get(`${op}Stream (stream layer)`)
      for (const [what, r] of runs) {
        rows.push({
          op, what, seconds: r.seconds, bytesPerSecond: size / r.seconds, peakRss: r.peakRss, rssGrowth: r.rssGrowth,
          ...(what.includes('SSE-KMS') || what.startsWith(`${op}Stream`) ? { vsRaw: raw.seconds / r.seconds } : {}),
          ...(what.includes('SSE-KMS') ? { vsStream: stream.seconds / r.seconds } : {}),
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
      backend: backend.name + (backend.engine ? ` (${backend.engine})` : ''),
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
    op: x.op, what: x.what, 'GB/s': fmt(gbps(x.bytesPerSecond), 3), 'RSS rise MiB': fmt(x.rssGrowth / MiB, 0),
    '×raw backend': x.vsRaw != null ? fmt(x.vsRaw) : '', '×stream layer': x.vsStream != null ? fmt(x.vsStream) : '',
  })), ['op', 'what', 'GB/s', 'RSS rise MiB', '×raw backend', '×stream layer'], out)
  out.write(`(×raw backend: against the raw backend writing into memory. RSS rise: the most RSS rose above its level at the start of a run; the ${sizeName(r.objectSize)} sealed object and the raw backend's ${sizeName(r.objectSize)} output buffer are held in memory throughout and not counted)\n`)
  out.write('\ntargets (issue 15: the object layer keeps up with the raw backend):\n')
  for (const op of ['seal', 'open']) {
    const obj = r.rows.find((x) => x.op === op && x.what === `${op}Object, SSE-KMS`)
    const raw = r.rows.find((x) => x.op === op && x.what.startsWith(`raw backend ${op} into memory`))
    const hot = r.rows.find((x) => x.op === op && x.what.startsWith(`raw backend ${op}, one`))
    if (!obj || !raw) continue
    const ratio = obj.bytesPerSecond / raw.bytesPerSecond
    out.write(`  ${ratio >= 0.8 ? 'met    ' : 'MISSED '} ${fmt(ratio)}× (goal 0.8×)  ${op}Object vs the raw backend ${op}ing the same chunks into memory` +
      (hot ? `; ${fmt(obj.bytesPerSecond / hot.bytesPerSecond)}× the cache-hot one-buffer loop` : '') + '\n')
  }
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
    const ref = row(op, `raw backend ${op} into memory (1 MiB calls)`)
    rows.push({
      name: `${op}Object ${sizeName(r.objectSize)} SSE-KMS in memory, RSS +${fmt(obj.rssGrowth / MiB, 0)} MiB`,
      bytesPerSecond: obj.bytesPerSecond,
      reference: `raw backend ${op}`,
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
