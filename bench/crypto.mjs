// Crypto benchmark: every backend that loads, sealing and opening parts of 1 MiB and
// 64 MiB cut into packages of 16 KiB, 64 KiB and 1 MiB, sync and async on 1 and 2 pool
// threads; @noble/ciphers (the pure-JS reference) and `openssl speed -evp aes-256-gcm`
// (the machine's limit, one core and all cores) in the same run. Every configuration's
// output is checked against node:crypto before it is timed.
//
//   npm run bench:crypto [-- --quick] [-- --backends native,node]
import { createCipheriv, randomBytes } from 'node:crypto'
import { parseArgs } from 'node:util'
import { Bench } from 'tinybench'
import { gcm } from '@noble/ciphers/aes.js'
import { BACKEND_ORDER, backendReport, loadBackend, sealedLength } from 's3-sse'
import { fmt, gbps, isMain, KiB, machine, MiB, opensslSpeed, printTable, rate, sizeName, writeResult } from './lib.mjs'

const PACKAGE_SIZES = [16 * KiB, 64 * KiB, 1 * MiB]
const PART_SIZES = [1 * MiB, 64 * MiB]
/** Backends slower than ~1 GB/s are measured on 1 MiB parts only, to keep the run short. */
const SLOW_BACKENDS = new Set(['js', 'wasm'])

function referenceSeal(key, prefix, plaintext, packageSize) {
  const count = Math.max(1, Math.ceil(plaintext.length / packageSize))
  const out = []
  for (let i = 0; i < count; i++) {
    const nonce = Buffer.alloc(12)
    Buffer.from(prefix).copy(nonce)
    nonce.writeUInt32BE(i, 7)
    nonce[11] = i === count - 1 ? 1 : 0
    const c = createCipheriv('aes-256-gcm', key, nonce)
    out.push(c.update(plaintext.subarray(i * packageSize, (i + 1) * packageSize)), c.final(), c.getAuthTag())
  }
  return Buffer.concat(out)
}

/** Checks a backend's output for one configuration before anything is timed. */
async function verify(backend, key, prefix, plain, packageSize, expected) {
  const sealed = Buffer.alloc(expected.length)
  backend.seal(key, prefix, 0, true, plain, sealed, packageSize)
  if (!sealed.equals(expected)) throw new Error(`${backend.name}: sealed output differs from node:crypto (P=${packageSize})`)
  const sealedA = Buffer.alloc(expected.length)
  await backend.sealAsync(key, prefix, 0, true, plain, sealedA, packageSize, { threads: 2 })
  if (!sealedA.equals(expected)) throw new Error(`${backend.name}: async sealed output differs (P=${packageSize})`)
  const opened = Buffer.alloc(plain.length)
  backend.open(key, prefix, 0, true, expected, opened, packageSize)
  if (!opened.equals(plain)) throw new Error(`${backend.name}: opened output differs (P=${packageSize})`)
}

/**
 * Runs the benchmark. Returns { machine, openssl, rows, checks }. `onProgress(done, total,
 * label)` is called as configurations finish.
 */
export async function runCryptoBench({ quick = false, backends, onProgress = () => {}, openssl } = {}) {
  const names = backends ?? BACKEND_ORDER.filter((n) => {
    try {
      loadBackend(n)
      return true
    } catch {
      return false
    }
  })
  const time = quick ? 150 : 600
  const partSizes = quick ? [1 * MiB] : PART_SIZES
  const packageSizes = quick ? [64 * KiB] : PACKAGE_SIZES

  const configs = []
  for (const name of names) {
    for (const part of partSizes) {
      if (part > 1 * MiB && SLOW_BACKENDS.has(name)) continue
      for (const packageSize of packageSizes) {
        if (packageSize > part) continue
        for (const op of ['seal', 'open']) {
          // native and wasm split async calls across threads; node and js run them on this one.
          const modes = name === 'native' || name === 'wasm' ? ['sync', 'async-1t', 'async-2t'] : ['sync']
          for (const mode of modes) configs.push({ backend: name, op, mode, part, packageSize })
        }
      }
    }
  }
  // The pure-JS reference: one gcm() per 64 KiB package, as the js backend would do.
  configs.push({ backend: '@noble/ciphers', op: 'seal', mode: 'sync', part: 1 * MiB, packageSize: 64 * KiB })
  const total = configs.length + (quick ? 2 : 4)

  const key = randomBytes(32)
  const prefix = randomBytes(7)
  const inputs = new Map()
  const plainOf = (n) => inputs.get(n) ?? (inputs.set(n, randomBytes(n)), inputs.get(n))

  // The machine's limit: openssl speed before (and, in a full run, after) the backends;
  // the best of the runs is the limit, so a busy moment never flatters our ratios.
  let done = 0
  const limit = () => {
    onProgress(done++, total, 'openssl speed, 1 core')
    const one = opensslSpeed(16 * KiB, quick ? 1 : 3, 1)
    onProgress(done++, total, 'openssl speed, all cores')
    const all = opensslSpeed(16 * KiB, quick ? 1 : 3, machine().cores)
    return { one, all }
  }
  const before = limit()

  const checks = []
  const verified = new Set()
  const rows = []
  for (const c of configs) {
    const plain = plainOf(c.part)
    const label = `${c.backend} ${c.op} ${c.mode} part ${sizeName(c.part)} packages ${sizeName(c.packageSize)}`
    const bench = new Bench({ time, warmupTime: Math.min(100, time / 3), warmupIterations: 2, iterations: 3 })
    if (c.backend === '@noble/ciphers') {
      const nonce = Buffer.alloc(12)
      const sealOne = (i) => {
        nonce.writeUInt32BE(i, 7)
        nonce[11] = i === c.part / c.packageSize - 1 ? 1 : 0
        return gcm(key, nonce).encrypt(plain.subarray(i * c.packageSize, (i + 1) * c.packageSize))
      }
      Buffer.from(prefix).copy(nonce)
      const expected = referenceSeal(key, prefix, plain, c.packageSize)
      const got = Buffer.concat(Array.from({ length: c.part / c.packageSize }, (_, i) => sealOne(i)))
      if (!got.equals(expected)) throw new Error('@noble/ciphers output differs from node:crypto')
      bench.add(label, () => {
        for (let i = 0; i < c.part / c.packageSize; i++) sealOne(i)
      })
    } else {
      const backend = loadBackend(c.backend)
      const vkey = `${c.backend}/${c.part}/${c.packageSize}`
      const expected = referenceSeal(key, prefix, plain, c.packageSize)
      if (!verified.has(vkey)) {
        await verify(backend, key, prefix, plain, c.packageSize, expected)
        verified.add(vkey)
        checks.push(vkey)
      }
      const out = Buffer.alloc(Math.max(sealedLength(c.part, true, c.packageSize), c.part))
      const input = c.op === 'seal' ? plain : expected
      const threads = c.mode === 'async-2t' ? 2 : 1
      if (c.mode === 'sync') {
        bench.add(label, c.op === 'seal'
          ? () => backend.seal(key, prefix, 0, true, input, out, c.packageSize)
          : () => backend.open(key, prefix, 0, true, input, out, c.packageSize))
      } else {
        bench.add(label, c.op === 'seal'
          ? () => backend.sealAsync(key, prefix, 0, true, input, out, c.packageSize, { threads })
          : () => backend.openAsync(key, prefix, 0, true, input, out, c.packageSize, { threads }))
      }
    }
    await bench.run()
    const bps = rate(bench.tasks[0], c.part)
    rows.push({ ...c, bytesPerSecond: bps })
    onProgress(++done, total, label)
  }

  const after = quick ? before : limit()
  const best = (a, b) => (a == null ? b : b == null ? a : Math.max(a, b))
  const openssl1 = best(before.one, after.one) ?? openssl?.oneCore ?? null
  const opensslAll = best(before.all, after.all) ?? openssl?.allCores ?? null

  // Ratios against the references measured above.
  const find = (q) => rows.find((r) => Object.entries(q).every(([k, v]) => r[k] === v))
  for (const r of rows) {
    r.vsOpenssl1 = openssl1 ? r.bytesPerSecond / openssl1 : null
    r.vsOpensslAll = opensslAll ? r.bytesPerSecond / opensslAll : null
    const node = find({ backend: 'node', op: r.op, mode: 'sync', part: r.part, packageSize: r.packageSize })
    r.vsNode = node ? r.bytesPerSecond / node.bytesPerSecond : null
    const noble = find({ backend: '@noble/ciphers', packageSize: r.packageSize, part: r.part })
    r.vsNoble = noble && r.op === 'seal' ? r.bytesPerSecond / noble.bytesPerSecond : null
    if (r.mode === 'async-2t') {
      const one = find({ backend: r.backend, op: r.op, mode: 'async-1t', part: r.part, packageSize: r.packageSize })
      r.vsOneThread = one ? r.bytesPerSecond / one.bytesPerSecond : null
    }
  }

  const targets = targetsOf(rows, openssl1)
  return { machine: machine(), backend: backendReport(), openssl: { bytes: 16 * KiB, oneCore: openssl1, allCores: opensslAll }, rows, checks, targets }
}

/** The DESIGN.md targets, computed from the rows. */
function targetsOf(rows, openssl1) {
  const find = (q) => rows.find((r) => Object.entries(q).every(([k, v]) => r[k] === v))
  const base = { part: 1 * MiB, packageSize: 64 * KiB, op: 'seal' }
  const native = find({ ...base, backend: 'native', mode: 'sync' })
  const node = find({ ...base, backend: 'node', mode: 'sync' })
  const big1 = find({ backend: 'native', op: 'seal', mode: 'async-1t', part: 64 * MiB, packageSize: 64 * KiB })
  const big2 = find({ backend: 'native', op: 'seal', mode: 'async-2t', part: 64 * MiB, packageSize: 64 * KiB })
  const wasm = find({ ...base, backend: 'wasm', mode: 'sync' })
  const noble = find({ backend: '@noble/ciphers', packageSize: 64 * KiB })
  const t = []
  if (native && openssl1) t.push({ target: 'native 1 thread, 1 MiB parts, 64 KiB packages vs openssl speed 16 KiB', ratio: native.bytesPerSecond / openssl1, goal: 0.9 })
  if (native && node) t.push({ target: 'native vs node backend (1 MiB, 64 KiB)', ratio: native.bytesPerSecond / node.bytesPerSecond, goal: 2 })
  if (big1 && big2) t.push({ target: 'native async 2 threads vs 1 thread (64 MiB part)', ratio: big2.bytesPerSecond / big1.bytesPerSecond, goal: 1.7 })
  if (wasm && noble) t.push({ target: 'wasm vs @noble/ciphers (1 MiB, 64 KiB)', ratio: wasm.bytesPerSecond / noble.bytesPerSecond, goal: 3 })
  for (const x of t) x.met = x.ratio >= x.goal
  return t
}

export function printCryptoReport(result, out = process.stdout) {
  const m = result.machine
  out.write(`\n${m.cpu} (${m.cores} cores; ${m.flags.join(' ')}), Node ${m.node}, OpenSSL ${m.openssl}\n`)
  const o = result.openssl
  out.write(`openssl speed -evp aes-256-gcm @16 KiB: ${fmt(gbps(o.oneCore ?? NaN))} GB/s one core, ${fmt(gbps(o.allCores ?? NaN))} GB/s all cores\n\n`)
  printTable(result.rows.map((r) => ({
    backend: r.backend,
    op: r.op,
    mode: r.mode,
    part: sizeName(r.part),
    package: sizeName(r.packageSize),
    'GB/s': fmt(gbps(r.bytesPerSecond), 3),
    '×openssl': fmt(r.vsOpenssl1),
    '×node': fmt(r.vsNode),
    '×1 thread': fmt(r.vsOneThread),
    '×noble': fmt(r.vsNoble, 1),
  })), ['backend', 'op', 'mode', 'part', 'package', 'GB/s', '×openssl', '×node', '×1 thread', '×noble'], out)
  out.write('\ntargets:\n')
  for (const t of result.targets) out.write(`  ${t.met ? 'met    ' : 'MISSED '} ${fmt(t.ratio)}× (goal ${t.goal}×)  ${t.target}\n`)
}

/** The `s3-sse bench` interface: run(opts) and summary rows. */
export const run = runCryptoBench

export function summarize(result) {
  const find = (q) => result.rows.find((r) => Object.entries(q).every(([k, v]) => r[k] === v))
  const rows = []
  const base = { op: 'seal', part: 1 * MiB, packageSize: 64 * KiB, mode: 'sync' }
  for (const backend of ['native', 'node', 'wasm', 'js', '@noble/ciphers']) {
    const r = find({ ...base, backend })
    if (!r) continue
    const ref = backend === 'wasm' ? find({ ...base, backend: '@noble/ciphers' }) : find({ ...base, backend: 'node' })
    rows.push({
      name: `${backend} seal, 1 MiB part, 64 KiB packages, 1 thread`,
      bytesPerSecond: r.bytesPerSecond,
      reference: backend === 'wasm' ? '@noble/ciphers' : 'node backend',
      vsReference: ref && ref !== r ? r.bytesPerSecond / ref.bytesPerSecond : null,
    })
  }
  const one = find({ backend: 'native', op: 'seal', mode: 'async-1t', part: 64 * MiB, packageSize: 64 * KiB })
  const two = find({ backend: 'native', op: 'seal', mode: 'async-2t', part: 64 * MiB, packageSize: 64 * KiB })
  if (two) rows.push({ name: 'native seal, 64 MiB part, 2 pool threads', bytesPerSecond: two.bytesPerSecond, reference: 'native, 1 thread', vsReference: one ? two.bytesPerSecond / one.bytesPerSecond : null })
  const open = find({ ...base, backend: 'native', op: 'open' })
  if (open) rows.push({ name: 'native open, 1 MiB part, 64 KiB packages, 1 thread', bytesPerSecond: open.bytesPerSecond, reference: 'node backend', vsReference: (() => { const n = find({ ...base, backend: 'node', op: 'open' }); return n ? open.bytesPerSecond / n.bytesPerSecond : null })() })
  return rows
}

if (isMain(import.meta.url)) {
  const { values } = parseArgs({ options: { quick: { type: 'boolean' }, backends: { type: 'string' } } })
  const result = await runCryptoBench({
    quick: values.quick,
    backends: values.backends?.split(','),
    onProgress: (done, total, label) => process.stderr.write(`[${done}/${total}] ${label}\n`),
  })
  printCryptoReport(result)
  process.stdout.write(`\nwrote ${writeResult('crypto', result)}\n`)
}
