// Crypto benchmark: every backend that loads — the native one on each of its engines
// (ipsec-mb, EVP) — sealing and opening parts of 1 MiB and 64 MiB cut into packages of 16 KiB,
// 64 KiB and 1 MiB, sync and async on 1 and 2 pool threads. In the same run, the limits it is
// held against: each engine's raw one-shot AES-256-GCM over the same 1 MiB buffer (one call,
// no package loop), `openssl speed -evp aes-256-gcm` at 16 KiB (one core and all cores),
// memcpy of a 64 MiB buffer (the ceiling for parts that do not fit in cache), and @noble/ciphers
// (the pure-JS reference). On a CPU with VAES it also measures ipsec-mb's AVX2 path in a child
// process, which is what a CPU without VAES gets. Every configuration's output is checked
// against node:crypto before it is timed.
//
//   npm run bench:crypto [-- --quick] [-- --backends native,node]
import { execFileSync } from 'node:child_process'
import { createCipheriv, randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { Bench } from 'tinybench'
import { gcm } from '@noble/ciphers/aes.js'
import { BACKEND_ORDER, NATIVE_ENGINE_ORDER, backendReport, loadBackend, loadNativeBackend, sealedLength } from 's3-sse'
import { describeEngines, fmt, gbps, isMain, KiB, machine, MiB, opensslSpeed, printTable, rate, sizeName, writeResult } from './lib.mjs'

const PACKAGE_SIZES = [16 * KiB, 64 * KiB, 1 * MiB]
const PART_SIZES = [1 * MiB, 64 * MiB]
/** Backends slower than ~1 GB/s are measured on 1 MiB parts only, to keep the run short. */
const SLOW_BACKENDS = new Set(['js', 'wasm'])
const MODES = ['sync', 'async-1t', 'async-2t']

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
async function verify(label, backend, key, prefix, plain, packageSize, expected) {
  const sealed = Buffer.alloc(expected.length)
  backend.seal(key, prefix, 0, true, plain, sealed, packageSize)
  if (!sealed.equals(expected)) throw new Error(`${label}: sealed output differs from node:crypto (P=${packageSize})`)
  const sealedA = Buffer.alloc(expected.length)
  await backend.sealAsync(key, prefix, 0, true, plain, sealedA, packageSize, { threads: 2 })
  if (!sealedA.equals(expected)) throw new Error(`${label}: async sealed output differs (P=${packageSize})`)
  const opened = Buffer.alloc(plain.length)
  backend.open(key, prefix, 0, true, expected, opened, packageSize)
  if (!opened.equals(plain)) throw new Error(`${label}: opened output differs (P=${packageSize})`)
  const openedA = Buffer.alloc(plain.length)
  await backend.openAsync(key, prefix, 0, true, expected, openedA, packageSize, { threads: 2 })
  if (!openedA.equals(plain)) throw new Error(`${label}: async opened output differs (P=${packageSize})`)
}

/** The native engines that load here, the default one first. */
function nativeEngines() {
  let def
  try {
    def = loadBackend('native').engine
  } catch {
    return []
  }
  const out = [def]
  for (const e of NATIVE_ENGINE_ORDER) {
    if (e === def) continue
    try {
      loadNativeBackend(e)
      out.push(e)
    } catch {
      // reported in backendReport()
    }
  }
  return out
}

/** The backend behind a row label: "native" is the default engine, "native/evp" a named one. */
function backendOf(label) {
  if (label.startsWith('native/')) return loadNativeBackend(label.slice('native/'.length))
  return loadBackend(label)
}

/**
 * The configurations of a run. The default native engine gets the whole matrix; another
 * engine the rows that compare engines (1 MiB and 64 MiB parts, 64 KiB packages).
 */
function configsOf(names, engines, quick) {
  const partSizes = quick ? [1 * MiB] : PART_SIZES
  const packageSizes = quick ? [64 * KiB] : PACKAGE_SIZES
  const configs = []
  const labels = []
  for (const name of names) {
    if (name !== 'native') labels.push(name)
    else {
      labels.push('native')
      for (const e of engines.slice(1)) labels.push(`native/${e}`)
    }
  }
  for (const backend of labels) {
    const full = !backend.startsWith('native/')
    for (const part of partSizes) {
      if (part > 1 * MiB && SLOW_BACKENDS.has(backend)) continue
      for (const packageSize of full ? packageSizes : [64 * KiB]) {
        if (packageSize > part) continue
        for (const op of ['seal', 'open']) {
          // native and wasm split async calls across threads; node and js run them on this one.
          const modes = backend.startsWith('native') || backend === 'wasm' ? MODES : ['sync']
          for (const mode of modes) {
            if (!full && part === 1 * MiB && mode !== 'sync') continue
            if (!full && part > 1 * MiB && mode === 'sync') continue
            configs.push({ backend, op, mode, part, packageSize })
          }
        }
      }
    }
  }
  // The limits: each engine's one-shot GCM over the whole 1 MiB buffer, and memcpy.
  for (const e of engines) for (const op of ['seal', 'open']) configs.push({ backend: `${e} raw`, engine: e, op, mode: 'raw', part: 1 * MiB, packageSize: 1 * MiB })
  configs.push({ backend: 'memcpy', op: 'copy', mode: 'sync', part: 64 * MiB, packageSize: 64 * MiB })
  if (!quick) configs.push({ backend: 'memcpy', op: 'copy', mode: 'sync', part: 1 * MiB, packageSize: 1 * MiB })
  // The pure-JS reference: one gcm() per 64 KiB package, as the js backend would do.
  configs.push({ backend: '@noble/ciphers', op: 'seal', mode: 'sync', part: 1 * MiB, packageSize: 64 * KiB })
  return configs
}

/**
 * Times the configurations; returns rows with bytesPerSecond. Every configuration is set up
 * and checked first; then `rounds` rounds each time every configuration once, one after the
 * other (A B C … A B C …), and a configuration's best round counts: on a shared machine a busy
 * moment then slows one round of everything alike instead of one configuration's only run.
 */
async function measure(configs, { time, rounds = 1, onStep = () => {} }) {
  const key = randomBytes(32)
  const prefix = randomBytes(7)
  const iv = randomBytes(12)
  const memo = (map, k, make) => map.get(k) ?? (map.set(k, make()), map.get(k))
  const inputs = new Map()
  const plainOf = (n) => memo(inputs, n, () => randomBytes(n))
  const sealedRefs = new Map()
  const sealedOf = (n, p) => memo(sealedRefs, `${n}/${p}`, () => referenceSeal(key, prefix, plainOf(n), p))
  // Output buffers are shared by size: configurations run one at a time.
  const outs = new Map()
  const outOf = (n) => memo(outs, n, () => Buffer.alloc(n))
  const checks = []
  const verified = new Set()
  const tasks = []
  for (const c of configs) {
    const plain = plainOf(c.part)
    const label = `${c.backend} ${c.op} ${c.mode} part ${sizeName(c.part)} packages ${sizeName(c.packageSize)}`
    let fn
    if (c.backend === '@noble/ciphers') {
      const nonce = Buffer.alloc(12)
      const count = c.part / c.packageSize
      const sealOne = (i) => {
        nonce.writeUInt32BE(i, 7)
        nonce[11] = i === count - 1 ? 1 : 0
        return gcm(key, nonce).encrypt(plain.subarray(i * c.packageSize, (i + 1) * c.packageSize))
      }
      Buffer.from(prefix).copy(nonce)
      const got = Buffer.concat(Array.from({ length: count }, (_, i) => sealOne(i)))
      if (!got.equals(sealedOf(c.part, c.packageSize))) throw new Error('@noble/ciphers output differs from node:crypto')
      fn = () => {
        for (let i = 0; i < count; i++) sealOne(i)
      }
    } else if (c.backend === 'memcpy') {
      const dst = outOf(c.part)
      dst.set(plain)
      if (!dst.subarray(0, c.part).equals(plain)) throw new Error('memcpy did not copy')
      fn = () => dst.set(plain)
    } else if (c.mode === 'raw') {
      const raw = loadNativeBackend(c.engine).raw
      const ci = createCipheriv('aes-256-gcm', key, iv)
      const expected = Buffer.concat([ci.update(plain), ci.final(), ci.getAuthTag()])
      const out = outOf(expected.length)
      raw.seal(key, iv, plain, out)
      if (!out.equals(expected)) throw new Error(`${c.backend}: one-shot GCM differs from node:crypto`)
      const back = outOf(plain.length)
      raw.open(key, iv, expected, back)
      if (!back.equals(plain)) throw new Error(`${c.backend}: one-shot open differs`)
      checks.push(`${c.backend}/${c.op}`)
      fn = c.op === 'seal' ? () => raw.seal(key, iv, plain, out) : () => raw.open(key, iv, expected, back)
    } else {
      const backend = backendOf(c.backend)
      const vkey = `${c.backend}/${c.part}/${c.packageSize}`
      const expected = sealedOf(c.part, c.packageSize)
      if (!verified.has(vkey)) {
        await verify(c.backend, backend, key, prefix, plain, c.packageSize, expected)
        verified.add(vkey)
        checks.push(vkey)
      }
      const out = outOf(Math.max(sealedLength(c.part, true, c.packageSize), c.part))
      const input = c.op === 'seal' ? plain : expected
      const threads = c.mode === 'async-2t' ? 2 : 1
      if (c.mode === 'sync') {
        fn = c.op === 'seal'
          ? () => backend.seal(key, prefix, 0, true, input, out, c.packageSize)
          : () => backend.open(key, prefix, 0, true, input, out, c.packageSize)
      } else {
        fn = c.op === 'seal'
          ? () => backend.sealAsync(key, prefix, 0, true, input, out, c.packageSize, { threads })
          : () => backend.openAsync(key, prefix, 0, true, input, out, c.packageSize, { threads })
      }
    }
    tasks.push({ c, label, fn, best: 0 })
  }
  for (let round = 0; round < rounds; round++) {
    for (const t of tasks) {
      const bench = new Bench({ time, warmupTime: Math.min(100, time / 3), warmupIterations: 2, iterations: 3 })
      bench.add(t.label, t.fn)
      await bench.run()
      t.best = Math.max(t.best, rate(bench.tasks[0], t.c.part))
      onStep(rounds > 1 ? `${t.label} (round ${round + 1}/${rounds})` : t.label)
    }
  }
  const rows = tasks.map(({ c, best }) => ({
    ...c, ...(c.backend.startsWith('native') && c.mode !== 'raw' ? { engine: backendOf(c.backend).engine } : {}), bytesPerSecond: best,
  }))
  return { rows, checks, tasks }
}

/** One short tinybench run of a prepared task: bytes per second. */
async function rateOf(task, time) {
  const bench = new Bench({ time, warmupTime: Math.min(50, time / 4), warmupIterations: 1, iterations: 3 })
  bench.add(task.label, task.fn)
  await bench.run()
  return rate(bench.tasks[0], task.c.part)
}

/**
 * The ratio a / b measured in `pairs` pairs run A B B A, one right after the other, so that
 * the machine's speed drifting (other work on a shared machine) hits both sides alike; the
 * median pair counts, and the spread says how noisy it was.
 */
async function paired(a, b, pairs) {
  const ratios = []
  for (let i = 0; i < pairs; i++) {
    const a1 = await a()
    const b1 = await b()
    const b2 = await b()
    const a2 = await a()
    ratios.push((a1 + a2) / (b1 + b2))
  }
  ratios.sort((x, y) => x - y)
  return { ratio: ratios[Math.floor(ratios.length / 2)], min: ratios[0], max: ratios[ratios.length - 1], pairs }
}

/** The configurations of the AVX2 probe: what ipsec-mb gives on a CPU without VAES. */
const PROBE_CONFIGS = [
  { backend: 'native', op: 'seal', mode: 'sync', part: 1 * MiB, packageSize: 64 * KiB },
  { backend: 'native', op: 'open', mode: 'sync', part: 1 * MiB, packageSize: 64 * KiB },
  { backend: 'ipsec-mb raw', engine: 'ipsec-mb', op: 'seal', mode: 'raw', part: 1 * MiB, packageSize: 1 * MiB },
  { backend: 'native', op: 'seal', mode: 'async-1t', part: 64 * MiB, packageSize: 64 * KiB },
  { backend: 'native', op: 'seal', mode: 'async-2t', part: 64 * MiB, packageSize: 64 * KiB },
]

/** Runs the probe in a child process with S3SSE_IPSEC_MB_ARCH=arch; rows labelled with the arch. */
function runArchProbe(arch, time, rounds) {
  const out = execFileSync(process.execPath, [fileURLToPath(import.meta.url), '--probe', '--time', String(time), '--rounds', String(rounds)], {
    encoding: 'utf8', env: { ...process.env, S3SSE_IPSEC_MB_ARCH: arch, S3SSE_NATIVE_ENGINE: 'ipsec-mb', S3SSE_BACKEND: '' },
    stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 16 * MiB,
  })
  const probe = JSON.parse(out)
  if (probe.arch !== arch) throw new Error(`the ${arch} probe ran ${probe.arch}`)
  return probe.rows.map((r) => ({ ...r, backend: r.mode === 'raw' ? `ipsec-mb ${arch} raw` : `native/ipsec-mb ${arch}`, arch, probe: true }))
}

/**
 * Runs the benchmark. Returns { machine, openssl, limits, engines, rows, checks, targets }.
 * `onProgress(done, total, label)` is called as configurations finish.
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
  const engines = names.includes('native') ? nativeEngines() : []
  const time = quick ? 150 : 250
  const rounds = quick ? 1 : 3
  const configs = configsOf(names, engines, quick)
  const native = engines.length > 0 ? loadBackend('native') : null
  const imb = native?.engineReport.ipsecMb
  // With VAES on this CPU, also measure the AVX2 path (a CPU without VAES) in a child process.
  const probeArch = !quick && imb?.available && imb.vaes ? 'avx2' : null
  const total = configs.length * rounds + (quick ? 2 : 4) + (probeArch ? 1 : 0) + TARGET_COUNT

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
  const { rows, checks, tasks } = await measure(configs, { time, rounds, onStep: (label) => onProgress(++done, total, label) })
  if (probeArch) {
    onProgress(done, total, `ipsec-mb ${probeArch} path (child process, S3SSE_IPSEC_MB_ARCH=${probeArch})`)
    rows.push(...runArchProbe(probeArch, time, rounds))
    onProgress(++done, total, `ipsec-mb ${probeArch} path`)
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
    if (r.engine && r.part === 1 * MiB && r.mode !== 'raw') {
      const raw = find({ backend: `${r.arch ? `ipsec-mb ${r.arch}` : r.engine} raw`, op: r.arch ? 'seal' : r.op })
      r.vsRaw = raw ? r.bytesPerSecond / raw.bytesPerSecond : null
    }
  }

  const limits = limitsOf(rows, openssl1, opensslAll)
  // Each target's ratio in pairs of its own (A B B A), after the table: robust to drift.
  const targets = []
  for (const d of targetsOf(rows, imb, openssl1 != null)) {
    onProgress(done++, total, `target: ${d.target}`)
    const side = (q) => {
      if (q === 'openssl') return async () => opensslSpeed(16 * KiB, 1, 1) ?? NaN
      const task = tasks.find((t) => Object.entries(q).every(([k, v]) => t.c[k] === v))
      return () => rateOf(task, quick ? 100 : 200)
    }
    const r = await paired(side(d.a), side(d.b), quick ? 1 : d.b === 'openssl' ? 3 : 5)
    targets.push({ target: d.target, goal: d.goal, ...r, ...(d.note ? { note: d.note } : {}), applies: !d.note, met: r.ratio >= d.goal })
  }
  return {
    machine: machine(),
    backend: backendReport(),
    engines,
    ipsecMb: imb ?? null,
    openssl: { bytes: 16 * KiB, oneCore: openssl1, allCores: opensslAll },
    limits,
    rows,
    checks,
    targets,
  }
}

/** The lines the summary chart draws: the machine's limits measured in this run. */
function limitsOf(rows, openssl1, opensslAll) {
  const find = (q) => rows.find((r) => Object.entries(q).every(([k, v]) => r[k] === v))
  const out = []
  if (openssl1) out.push({ name: 'openssl speed @16 KiB, 1 core', bytesPerSecond: openssl1 })
  if (opensslAll) out.push({ name: 'openssl speed @16 KiB, all cores', bytesPerSecond: opensslAll })
  const raw = find({ backend: 'ipsec-mb raw', op: 'seal' })
  if (raw) out.push({ name: 'ipsec-mb one-shot GCM over 1 MiB, 1 core', bytesPerSecond: raw.bytesPerSecond })
  const copy = find({ backend: 'memcpy', part: 64 * MiB })
  if (copy) out.push({ name: 'memcpy of 64 MiB', bytesPerSecond: copy.bytesPerSecond })
  return out
}

/** How many targets targetsOf can give (for the progress total). */
const TARGET_COUNT = 10

/**
 * The DESIGN.md and issue-15 targets: for each, the two configurations (or openssl speed)
 * whose ratio it is, as measured pairs of their own by runCryptoBench.
 */
function targetsOf(rows, imb, haveOpenssl) {
  const has = (q) => rows.some((r) => Object.entries(q).every(([k, v]) => r[k] === v))
  const base = { part: 1 * MiB, packageSize: 64 * KiB, mode: 'sync' }
  const nSeal = { ...base, backend: 'native', op: 'seal' }
  const nOpen = { ...base, backend: 'native', op: 'open' }
  const native = rows.find((r) => r.backend === 'native')
  const evpSeal = native?.engine === 'evp' ? nSeal : { ...base, backend: 'native/evp', op: 'seal' }
  const big = (op, mode) => ({ backend: 'native', op, mode, part: 64 * MiB, packageSize: 64 * KiB })
  const vaes = imb?.available && imb.vaes
  const noVaes = vaes ? undefined : 'ipsec-mb runs without VAES here (AVX2/AVX-512 path), so the 2.5× target does not apply'
  const defs = [
    { target: 'native seal vs ipsec-mb one-shot GCM over the same 1 MiB (1 thread, 64 KiB packages)', a: nSeal, b: { backend: 'ipsec-mb raw', op: 'seal' }, goal: 0.85 },
    { target: 'native open vs ipsec-mb one-shot GCM open over the same 1 MiB', a: nOpen, b: { backend: 'ipsec-mb raw', op: 'open' }, goal: 0.85 },
    { target: 'native seal vs openssl speed @16 KiB, 1 core', a: nSeal, b: 'openssl', goal: 2.5, note: noVaes },
    { target: 'native open vs openssl speed @16 KiB, 1 core', a: nOpen, b: 'openssl', goal: 2.5, note: noVaes },
    { target: 'native open vs native seal (1 MiB, 64 KiB packages)', a: nOpen, b: nSeal, goal: 0.95 },
    { target: 'native seal of a 64 MiB part, 2 pool threads vs 1', a: big('seal', 'async-2t'), b: big('seal', 'async-1t'), goal: 1.8 },
    { target: 'native open of a 64 MiB part, 2 pool threads vs 1', a: big('open', 'async-2t'), b: big('open', 'async-1t'), goal: 1.8 },
    { target: 'native vs node backend (1 MiB, 64 KiB)', a: nSeal, b: { ...base, backend: 'node', op: 'seal' }, goal: 2 },
    { target: 'native EVP engine vs openssl speed @16 KiB (the wave-1 target)', a: evpSeal, b: 'openssl', goal: 0.9 },
    { target: 'wasm vs @noble/ciphers (1 MiB, 64 KiB)', a: { ...base, backend: 'wasm', op: 'seal' }, b: { backend: '@noble/ciphers', packageSize: 64 * KiB }, goal: 3 },
  ]
  return defs.filter((d) => has(d.a) && (d.b === 'openssl' ? haveOpenssl : has(d.b)))
}

export function printCryptoReport(result, out = process.stdout) {
  const m = result.machine
  out.write(`\n${m.cpu} (${m.cores} cores; ${m.flags.join(' ')}), Node ${m.node}, OpenSSL ${m.openssl}\n`)
  out.write(`${describeEngines(result)}\n`)
  for (const l of result.limits ?? []) out.write(`limit: ${l.name} = ${fmt(gbps(l.bytesPerSecond))} GB/s\n`)
  out.write('\n')
  printTable(result.rows.map((r) => ({
    backend: r.backend,
    op: r.op,
    mode: r.mode,
    part: sizeName(r.part),
    package: r.mode === 'raw' || r.backend === 'memcpy' ? '–' : sizeName(r.packageSize),
    'GB/s': fmt(gbps(r.bytesPerSecond), 3),
    '×raw GCM': fmt(r.vsRaw),
    '×openssl': fmt(r.vsOpenssl1),
    '×node': fmt(r.vsNode),
    '×1 thread': fmt(r.vsOneThread),
    '×noble': fmt(r.vsNoble, 1),
  })), ['backend', 'op', 'mode', 'part', 'package', 'GB/s', '×raw GCM', '×openssl', '×node', '×1 thread', '×noble'], out)
  out.write('\ntargets:\n')
  out.write('(each the median of its own A B B A pairs, run after the table; min–max of the pairs in brackets)\n')
  for (const t of result.targets) {
    const verdict = !t.applies ? 'n/a    ' : t.met ? 'met    ' : 'MISSED '
    out.write(`  ${verdict} ${fmt(t.ratio)}× [${fmt(t.min)}–${fmt(t.max)}] (goal ${t.goal}×)  ${t.target}${t.note ? ` — ${t.note}` : ''}\n`)
  }
}

/** The `s3-sse bench` interface: run(opts) and summary rows. */
export const run = runCryptoBench

export function summarize(result) {
  const find = (q) => result.rows.find((r) => Object.entries(q).every(([k, v]) => r[k] === v))
  const rows = []
  const base = { part: 1 * MiB, packageSize: 64 * KiB, mode: 'sync' }
  const ratio = (a, b) => (a && b ? a.bytesPerSecond / b.bytesPerSecond : null)
  const node = (op) => find({ ...base, backend: 'node', op })
  const engineName = (r) => (r.engine ? ` (${r.engine})` : '')
  for (const op of ['seal', 'open']) {
    const r = find({ ...base, backend: 'native', op })
    if (!r) continue
    const raw = find({ backend: `${r.engine} raw`, op })
    rows.push({
      name: `native${engineName(r)} ${op}, 1 MiB part, 64 KiB packages, 1 thread`,
      bytesPerSecond: r.bytesPerSecond,
      reference: raw ? `${r.engine} one-shot GCM, 1 MiB` : 'node backend',
      vsReference: raw ? ratio(r, raw) : ratio(r, node(op)),
    })
  }
  for (const op of ['seal', 'open']) {
    const r = find({ ...base, backend: 'native/evp', op })
    if (r) rows.push({ name: `native (evp) ${op}, 1 MiB part, 64 KiB packages, 1 thread`, bytesPerSecond: r.bytesPerSecond, reference: 'node backend', vsReference: ratio(r, node(op)) })
  }
  for (const backend of ['node', 'wasm', 'js', '@noble/ciphers']) {
    const r = find({ ...base, backend, op: 'seal' })
    if (!r) continue
    const ref = backend === 'wasm' ? find({ ...base, backend: '@noble/ciphers' }) : node('seal')
    rows.push({
      name: `${backend} seal, 1 MiB part, 64 KiB packages, 1 thread`,
      bytesPerSecond: r.bytesPerSecond,
      reference: backend === 'wasm' ? '@noble/ciphers' : 'node backend',
      vsReference: ref && ref !== r ? ratio(r, ref) : null,
    })
  }
  for (const op of ['seal', 'open']) {
    const one = find({ backend: 'native', op, mode: 'async-1t', part: 64 * MiB, packageSize: 64 * KiB })
    const two = find({ backend: 'native', op, mode: 'async-2t', part: 64 * MiB, packageSize: 64 * KiB })
    if (two) rows.push({ name: `native ${op}, 64 MiB part, 2 pool threads`, bytesPerSecond: two.bytesPerSecond, reference: 'native, 1 thread', vsReference: ratio(two, one) })
  }
  for (const arch of [...new Set(result.rows.filter((r) => r.probe).map((r) => r.arch))]) {
    const r = find({ backend: `native/ipsec-mb ${arch}`, op: 'seal', mode: 'sync', part: 1 * MiB })
    const raw = find({ backend: `ipsec-mb ${arch} raw`, op: 'seal' })
    if (r) rows.push({ name: `native (ipsec-mb, ${arch} path: no VAES) seal, 1 MiB, 1 thread`, bytesPerSecond: r.bytesPerSecond, reference: `its one-shot GCM`, vsReference: ratio(r, raw) })
  }
  return rows
}

if (isMain(import.meta.url)) {
  const { values } = parseArgs({ options: { quick: { type: 'boolean' }, backends: { type: 'string' }, probe: { type: 'boolean' }, time: { type: 'string' }, rounds: { type: 'string' } } })
  if (values.probe) {
    // The child of runArchProbe: the native backend as S3SSE_IPSEC_MB_ARCH set it up.
    const b = loadBackend('native')
    const { rows } = await measure(PROBE_CONFIGS, { time: Number(values.time ?? 250), rounds: Number(values.rounds ?? 3) })
    process.stdout.write(JSON.stringify({ arch: b.engineReport.ipsecMb.arch, rows }) + '\n')
  } else {
    const result = await runCryptoBench({
      quick: values.quick,
      backends: values.backends?.split(','),
      onProgress: (done, total, label) => process.stderr.write(`[${done}/${total}] ${label}\n`),
    })
    printCryptoReport(result)
    process.stdout.write(`\nwrote ${writeResult('crypto', result)}\n`)
  }
}
