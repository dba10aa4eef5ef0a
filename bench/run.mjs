// `s3-sse bench`: runs the crypto, object and server benchmarks in one go, shows progress,
// prints one summary table against the machine's limit (openssl speed on one core and on
// all cores), writes <out>/*.json and draws <out>/summary.svg.
//
//   s3-sse bench [--only crypto|objects|server|kms] [--quick] [--out DIR]
import { fork } from 'node:child_process'
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import cliProgress from 'cli-progress'
import { describeEngines, fmt, gbps, printTable, sizeName } from './lib.mjs'
import { drawSummarySvg } from './svg.mjs'

export const SUITES = ['crypto', 'objects', 'server', 'kms']

/**
 * Each suite module exports run(opts) → result and summarize(result) → summary rows; it runs
 * in a child process of its own (suite-child.mjs), one after the other.
 */
function runSuite(name, { quick, openssl, onProgress }) {
  return new Promise((resolve, reject) => {
    const child = fork(new URL('./suite-child.mjs', import.meta.url), [name, quick ? '1' : '0', openssl ? JSON.stringify(openssl) : ''], {
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    })
    let outcome
    child.on('message', (m) => {
      if (m.progress) onProgress(...m.progress)
      else outcome = m
    })
    child.on('error', reject)
    child.on('exit', (code) => {
      if (outcome?.result) resolve(outcome)
      else reject(new Error(`the ${name} benchmark failed${outcome?.error ? `: ${outcome.error}` : ` (exit ${code})`}`))
    })
  })
}

/** Progress: a bar on a terminal, one plain line per step otherwise. */
function progressReporter(stream = process.stderr) {
  if (stream.isTTY) {
    const bar = new cliProgress.SingleBar({
      format: '{suite} [{bar}] {value}/{total} {label}',
      barsize: 24,
      hideCursor: true,
      clearOnComplete: true,
      stream,
    }, cliProgress.Presets.shades_classic)
    let started = false
    return {
      suite(name, total) {
        if (started) bar.stop()
        bar.start(total, 0, { suite: name.padEnd(7), label: '' })
        started = true
      },
      step(done, total, label) {
        bar.setTotal(total)
        bar.update(done, { label: label.length > 60 ? label.slice(0, 57) + '...' : label })
      },
      end() {
        if (started) bar.stop()
      },
    }
  }
  let current = ''
  return {
    suite(name) {
      current = name
      stream.write(`== ${name}\n`)
    },
    step(done, total, label) {
      stream.write(`[${current} ${done}/${total}] ${label}\n`)
    },
    end() {},
  }
}

export async function runBench({ only, quick = false, out = resolve('bench/results'), stdout = process.stdout, stderr = process.stderr } = {}) {
  const names = only ? [only] : SUITES
  for (const n of names) if (!SUITES.includes(n)) throw new Error(`unknown suite "${n}": one of ${SUITES.join(', ')}`)
  mkdirSync(out, { recursive: true })
  const progress = progressReporter(stderr)
  const results = {}
  const summary = []
  let machine
  let openssl
  let limits
  let engines
  try {
    for (const name of names) {
      if (!existsSync(new URL(`./${name}.mjs`, import.meta.url))) {
        stderr.write(`s3-sse bench: the ${name} suite is not available in this build\n`)
        continue
      }
      progress.suite(name, 1)
      const { result, summary: rows } = await runSuite(name, { quick, openssl, onProgress: (d, t, l) => progress.step(d, t, l) })
      results[name] = result
      machine ??= result.machine
      openssl ??= result.openssl
      limits ??= result.limits
      if (result.engines) engines = { engines: result.engines, ipsecMb: result.ipsecMb }
      writeFileSync(join(out, `${name}.json`), JSON.stringify(result, null, 2) + '\n')
      summary.push(...rows.map((r) => ({ suite: name, ...r })))
    }
  } finally {
    progress.end()
  }

  // Ratios to the physical limit: openssl speed, one core and all cores, measured in this run.
  for (const r of summary) {
    if (r.bytesPerSecond && openssl?.oneCore) r.vsOpenssl1 = r.bytesPerSecond / openssl.oneCore
    if (r.bytesPerSecond && openssl?.allCores) r.vsOpensslAll = r.bytesPerSecond / openssl.allCores
  }
  const record = { machine, openssl, limits: limits ?? [], ...(engines ?? {}), summary, suites: Object.keys(results) }
  writeFileSync(join(out, 'summary.json'), JSON.stringify(record, null, 2) + '\n')
  writeFileSync(join(out, 'summary.svg'), drawSummarySvg(record))

  printSummary(record, stdout)
  stdout.write(`\nresults: ${join(out, 'summary.json')}, chart: ${join(out, 'summary.svg')}\n`)
  return record
}

export function printSummary(record, out = process.stdout) {
  const m = record.machine
  if (m) out.write(`\n${m.cpu} (${m.cores} cores; ${m.flags.join(' ')}), Node ${m.node}, OpenSSL ${m.openssl}\n`)
  const o = record.openssl
  if (o) out.write(`limit: openssl speed -evp aes-256-gcm @${sizeName(o.bytes)} = ${fmt(gbps(o.oneCore ?? NaN))} GB/s one core, ${fmt(gbps(o.allCores ?? NaN))} GB/s all cores\n`)
  for (const l of record.limits ?? []) if (!l.name.startsWith('openssl')) out.write(`limit: ${l.name} = ${fmt(gbps(l.bytesPerSecond))} GB/s\n`)
  if (record.engines) out.write(`${describeEngines(record)}\n`)
  out.write('\n')
  printTable(record.summary.map((r) => ({
    suite: r.suite,
    measure: r.name,
    'GB/s': r.bytesPerSecond ? fmt(gbps(r.bytesPerSecond), 3) : '',
    value: r.value ?? '',
    reference: r.reference ?? '',
    '×reference': r.vsReference != null ? fmt(r.vsReference) : '',
    '×openssl 1 core': r.vsOpenssl1 != null ? fmt(r.vsOpenssl1) : '',
    '×openssl all cores': r.vsOpensslAll != null ? fmt(r.vsOpensslAll) : '',
  })), ['suite', 'measure', 'GB/s', 'value', 'reference', '×reference', '×openssl 1 core', '×openssl all cores'], out)
}
