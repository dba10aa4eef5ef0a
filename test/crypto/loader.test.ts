import { execFileSync, spawnSync } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { BACKEND_ORDER, backendReport, describeBackendReport, loadBackend, S3sseError } from '../../src/index.js'
import { TEST_BACKENDS } from '../helpers/backends.js'

const root = new URL('../../', import.meta.url)

/** Runs a snippet in a fresh Node process against the built package (dist/). */
function child(code: string, env: Record<string, string> = {}): { stdout: string; stderr: string } {
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', code], {
    cwd: root, env: { ...process.env, S3SSE_BACKEND: '', S3SSE_DEBUG: '', ...env }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'],
  })
  return { stdout: out, stderr: '' }
}

describe('loader', () => {
  it('tries native → node → wasm → js', () => {
    expect(BACKEND_ORDER).toEqual(['native', 'node', 'wasm', 'js'])
  })

  it('loads the native backend here, and reports the CPU it probed', () => {
    const r = backendReport()
    expect(r.chosen).toBe('native')
    expect(r.cpu?.arch).toBe(process.arch === 'x64' ? 'x64' : 'arm64')
    if (process.arch === 'x64') {
      expect(typeof r.cpu?.aesni).toBe('boolean')
      expect(typeof r.cpu?.pclmulqdq).toBe('boolean')
      expect(typeof r.cpu?.avx).toBe('boolean')
    }
    expect(r.opensslVersion).toMatch(/OpenSSL 3\./)
    expect(describeBackendReport(r)).toMatch(/crypto backend native with engine (ipsec-mb|evp) \([^)]+\).*; cpu .*aes-ni=(yes|no)/)
    expect(r.engine?.name).toMatch(/^(ipsec-mb|evp)$/)
  })

  it('an unknown backend name is a typed error', () => {
    expect(() => loadBackend('rot13' as never)).toThrowError(S3sseError)
  })

  it.each(TEST_BACKENDS)('S3SSE_BACKEND=%s forces that backend in a fresh process', (name) => {
    const { stdout } = child(`import { loadBackend, backendReport } from 's3-sse'; const b = loadBackend(); console.log(b.name, backendReport().reason)`, { S3SSE_BACKEND: name })
    expect(stdout.trim()).toBe(`${name} forced`)
  })

  it('S3SSE_BACKEND with a bad value is refused with a clear error', () => {
    expect(() => child(`import { loadBackend } from 's3-sse'; loadBackend()`, { S3SSE_BACKEND: 'fast' })).toThrow(/S3SSE_BACKEND="fast" is not one of native, node, wasm, js/)
  })

  it('S3SSE_DEBUG prints the one-line report once, on stderr', () => {
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', `import { loadBackend } from 's3-sse'; loadBackend(); loadBackend(); loadBackend('js')`], {
      cwd: root, env: { ...process.env, S3SSE_BACKEND: '', S3SSE_DEBUG: '1' }, encoding: 'utf8',
    })
    expect(r.status).toBe(0)
    expect(r.stdout).toBe('')
    const lines = r.stderr.trim().split('\n')
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(/^s3-sse: crypto backend native with engine .*; cpu /)
  })

  it('without S3SSE_DEBUG the loader prints nothing', () => {
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', `import { loadBackend } from 's3-sse'; loadBackend()`], {
      cwd: root, env: { ...process.env, S3SSE_BACKEND: '', S3SSE_DEBUG: '' }, encoding: 'utf8',
    })
    expect(r.status).toBe(0)
    expect(r.stderr).toBe('')
  })
})
