// Shared pieces of the benchmarks: the machine record, openssl speed as the physical
// reference, throughput from tinybench, tables and result files.
import { execFileSync } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { fileURLToPath } from 'node:url'

export const KiB = 1024
export const MiB = 1024 * 1024
export const GiB = 1024 * MiB

export const resultsDir = fileURLToPath(new URL('./results/', import.meta.url))

/** CPU model and the flags that matter for AES-GCM, Node and OpenSSL versions. */
export function machine() {
  let flags = []
  let model = os.cpus()[0]?.model ?? 'unknown'
  try {
    const info = readFileSync('/proc/cpuinfo', 'utf8')
    const line = info.split('\n').find((l) => l.startsWith('flags'))
    const all = new Set((line ?? '').split(':')[1]?.trim().split(/\s+/) ?? [])
    flags = ['aes', 'pclmulqdq', 'avx', 'avx2', 'avx512f', 'vaes', 'vpclmulqdq', 'sha_ni'].filter((f) => all.has(f))
  } catch {
    // not Linux: the model from os.cpus() is all we have
  }
  return {
    cpu: model.trim(),
    cores: os.availableParallelism(),
    flags,
    node: process.version,
    openssl: process.versions.openssl,
    opensslCli: opensslVersion(),
    platform: `${process.platform}-${process.arch}`,
    date: new Date().toISOString(),
  }
}

function opensslVersion() {
  try {
    return execFileSync('openssl', ['version'], { encoding: 'utf8' }).trim()
  } catch {
    return null
  }
}

/**
 * `openssl speed -evp aes-256-gcm` at one block size: bytes per second, on one core or on
 * `multi` processes. null when openssl is not installed. `-elapsed`: by wall-clock time, as
 * every other figure here is (by default openssl divides by its CPU time, which on a busy
 * machine credits it with a whole core that nothing else measured in the run had).
 */
export function opensslSpeed(bytes = 16 * KiB, seconds = 3, multi = 1) {
  const args = ['speed', '-elapsed', '-evp', 'aes-256-gcm', '-bytes', String(bytes), '-seconds', String(seconds)]
  if (multi > 1) args.push('-multi', String(multi))
  let out
  try {
    out = execFileSync('openssl', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
  } catch {
    return null
  }
  // The result line: "aes-256-gcm   2738367.42k" (1000s of bytes per second).
  const line = out.split('\n').reverse().find((l) => /^aes-256-gcm\s/i.test(l.trim()) || /^evp\s/i.test(l.trim()))
  const m = line && line.match(/([\d.]+)k\s*$/)
  return m ? Number(m[1]) * 1000 : null
}

/** Bytes per second of a tinybench task that processes `bytes` per run. */
export function rate(task, bytes) {
  const r = task.result
  if (!r || !('period' in r) || !r.period) throw new Error(`benchmark ${task.name} did not complete: ${r?.state} ${r?.error ?? ''}`)
  return bytes / (r.period / 1000)
}

export const gbps = (bytesPerSecond) => bytesPerSecond / 1e9
export const fmt = (x, digits = 2) => (x == null || Number.isNaN(x) ? '–' : x.toFixed(digits))

export function sizeName(n) {
  if (n >= GiB && n % GiB === 0) return `${n / GiB} GiB`
  if (n >= MiB && n % MiB === 0) return `${n / MiB} MiB`
  if (n >= KiB && n % KiB === 0) return `${n / KiB} KiB`
  return `${n} B`
}

/** Prints rows (objects) as an aligned text table with the given columns. */
export function printTable(rows, columns, out = process.stdout) {
  const cells = rows.map((r) => columns.map((c) => String(r[c] ?? '')))
  const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((r) => r[i].length)))
  const line = (vals) => vals.map((v, i) => (i === 0 ? v.padEnd(widths[i]) : v.padStart(widths[i]))).join('  ')
  out.write(line(columns) + '\n')
  out.write(widths.map((w) => '-'.repeat(w)).join('  ') + '\n')
  for (const r of cells) out.write(line(r) + '\n')
}

export function writeResult(name, data) {
  mkdirSync(resultsDir, { recursive: true })
  const file = `${resultsDir}${name}.json`
  writeFileSync(file, JSON.stringify(data, null, 2) + '\n')
  return file
}

/** True when this module is the script node was started with. */
export function isMain(importMetaUrl) {
  return process.argv[1] && fileURLToPath(importMetaUrl) === process.argv[1]
}

/** One line: which engines ran, and what ipsec-mb chose on this CPU (or why it did not load). */
export function describeEngines(result) {
  const imb = result.ipsecMb
  if (!result.engines?.length) return 'native backend: not loaded'
  const parts = [`native engines: ${result.engines.join(', ')} (default ${result.engines[0]})`]
  if (imb?.available) {
    parts.push(`ipsec-mb ${imb.version} runs its ${imb.arch} path${imb.vaes ? ' with VAES' : ''}`)
    if (!imb.vaes) parts.push(imb.forced ? 'forced below VAES by S3SSE_IPSEC_MB_ARCH' : 'this CPU has no VAES, so these are the AVX2/AVX-512 figures')
  } else if (imb) {
    parts.push(`ipsec-mb unavailable: ${imb.reason}`)
  }
  if (result.rows?.some((r) => r.probe) || result.summary?.some((r) => /no VAES/.test(r.name))) parts.push('the AVX2 path (what a CPU without VAES runs) is measured too')
  return parts.join('; ')
}
