import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'

// `s3-sse bench` as a product: the command runs, reports progress, and leaves results and
// a chart that record the machine. Timings are never asserted; only that they exist.
const root = fileURLToPath(new URL('../../', import.meta.url))
const out = mkdtempSync(join(tmpdir(), 's3sse-bench-'))
afterAll(() => rmSync(out, { recursive: true, force: true }))

describe('s3-sse bench --quick --only crypto', () => {
  const r = spawnSync(process.execPath, [join(root, 'bin', 's3-sse.js'), 'bench', '--quick', '--only', 'crypto', '--out', out], {
    cwd: root, encoding: 'utf8', env: { ...process.env, S3SSE_BACKEND: '' }, timeout: 300_000,
  })

  it('exits 0 and prints plain progress lines when stderr is not a terminal', () => {
    expect(r.status, r.stderr).toBe(0)
    expect(r.stderr).toMatch(/^\[crypto \d+\/\d+\] native seal sync part 1 MiB packages 64 KiB$/m)
  })

  it('prints one summary table with ratios to the reference and to openssl', () => {
    expect(r.stdout).toMatch(/×reference\s+×openssl 1 core\s+×openssl all cores/)
    expect(r.stdout).toMatch(/crypto\s+native \((ipsec-mb|evp)\) seal, 1 MiB part, 64 KiB packages, 1 thread\s+\d+\.\d{3}/)
    // The limits measured in the same run, and which engine ran.
    expect(r.stdout).toMatch(/^limit: openssl speed -evp aes-256-gcm @16 KiB = \d+\.\d\d GB\/s one core/m)
    expect(r.stdout).toMatch(/^limit: memcpy of 64 MiB = \d+\.\d\d GB\/s$/m)
    expect(r.stdout).toMatch(/^native engines: (ipsec-mb, evp|evp) \(default (ipsec-mb|evp)\)/m)
  })

  it('writes the JSON results with the machine and versions', () => {
    const crypto = JSON.parse(readFileSync(join(out, 'crypto.json'), 'utf8'))
    expect(crypto.machine.cpu).toBeTruthy()
    expect(crypto.machine.node).toBe(process.version)
    expect(crypto.machine.openssl).toBe(process.versions.openssl)
    expect(Array.isArray(crypto.machine.flags)).toBe(true)
    expect(crypto.rows.length).toBeGreaterThan(3)
    for (const row of crypto.rows) expect(row.bytesPerSecond).toBeGreaterThan(0)
    const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'))
    expect(summary.suites).toEqual(['crypto'])
  })

  it('draws the SVG chart with the machine under it', () => {
    const svg = readFileSync(join(out, 'summary.svg'), 'utf8')
    expect(svg.startsWith('<svg')).toBe(true)
    expect(svg).toMatch(/native \((ipsec-mb|evp)\) seal, 1 MiB part, 64 KiB packages, 1 thread/)
    expect(svg).toContain('memcpy of 64 MiB (limit)')
    // One dashed line per limit.
    const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'))
    expect(summary.limits.map((l: { name: string }) => l.name)).toContain('memcpy of 64 MiB')
    expect(svg.match(/stroke-dasharray/g)?.length).toBe(summary.limits.length)
    expect(svg).toContain(`Node ${process.version}`)
  })
})
