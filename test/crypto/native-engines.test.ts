import { spawnSync } from 'node:child_process'
import { createCipheriv, randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { describeBackendReport, loadNativeBackend, sealedLength, type NativeBackend } from '../../src/index.js'
import { testNativeEngines } from '../helpers/backends.js'

// The two engines of the native addon: how each is chosen, forced and reported, and what
// happens where ipsec-mb is missing, is something else, or is another version.

const root = new URL('../../', import.meta.url)
const engines = testNativeEngines()

/** Runs a snippet in a fresh Node process against the built package (dist/). */
function child(code: string, env: Record<string, string> = {}): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], {
    cwd: root,
    env: { ...process.env, S3SSE_BACKEND: '', S3SSE_DEBUG: '', S3SSE_NATIVE_ENGINE: '', S3SSE_IPSEC_MB_PATH: '', S3SSE_IPSEC_MB_ARCH: '', ...env },
    encoding: 'utf8',
  })
  return { status: r.status, stdout: r.stdout.trim(), stderr: r.stderr.trim() }
}

const REPORT = `import { loadBackend, backendReport, describeBackendReport } from 's3-sse'; const b = loadBackend(); const r = backendReport(); console.log(JSON.stringify({ name: b.name, engine: b.engine, report: r.engine, line: describeBackendReport(r) }))`
/** Seals 1 MiB + 5 with the default backend; prints its engine and the bytes' hex digest. */
const SEAL = `import { loadBackend, sealedLength } from 's3-sse'; import { createHash } from 'node:crypto'; const b = loadBackend(); const pt = Buffer.alloc(1048581, 7); const out = Buffer.alloc(sealedLength(pt.length, true)); b.seal(Buffer.alloc(32, 1), Buffer.alloc(7, 2), 3, true, pt, out); console.log(b.engine, createHash('sha256').update(out).digest('hex'))`

const work = mkdtempSync(join(tmpdir(), 's3sse-engines-'))
afterAll(() => rmSync(work, { recursive: true, force: true }))

describe('native engines', () => {
  it('the default engine is ipsec-mb where it loads, and the report says which, with its architecture', () => {
    const r = JSON.parse(child(REPORT).stdout)
    expect(r.name).toBe('native')
    if (engines.includes('ipsec-mb')) {
      expect(r.engine).toBe('ipsec-mb')
      expect(r.report).toMatchObject({ name: 'ipsec-mb', reason: 'order', ipsecMb: { available: true, version: expect.stringMatching(/^1\.3\./) } })
      expect(['sse', 'avx', 'avx2', 'avx512']).toContain(r.report.ipsecMb.arch)
      expect(r.line).toMatch(/^s3-sse: crypto backend native with engine ipsec-mb \(ipsec-mb 1\.3\.\d+, (sse|avx|avx2|avx512) with(out)? VAES\); cpu x64 aes-ni=yes/)
    } else {
      expect(r.engine).toBe('evp')
      expect(r.line).toMatch(/ipsec-mb unavailable: /)
    }
  })

  it('S3SSE_NATIVE_ENGINE=evp forces the EVP engine, and the report says so', () => {
    const r = JSON.parse(child(REPORT, { S3SSE_NATIVE_ENGINE: 'evp' }).stdout)
    expect(r.engine).toBe('evp')
    expect(r.report).toMatchObject({ name: 'evp', reason: 'forced', detail: expect.stringMatching(/^OpenSSL 3\./) })
    expect(r.line).toMatch(/with engine evp \(OpenSSL 3\.[^)]*, forced by S3SSE_NATIVE_ENGINE\)/)
  })

  it('a misspelt S3SSE_NATIVE_ENGINE is an error, not a fallback', () => {
    const r = child(REPORT, { S3SSE_NATIVE_ENGINE: 'aesni' })
    expect(r.status).not.toBe(0)
    expect(r.stderr).toMatch(/S3SSE_NATIVE_ENGINE="aesni" is not one of ipsec-mb, evp/)
  })

  it('with no ipsec-mb library the addon still loads, uses EVP and says why (S3SSE_IPSEC_MB_PATH pointing nowhere)', () => {
    const missing = join(work, 'no-such-dir', 'libIPSec_MB.so.1')
    const r = JSON.parse(child(REPORT, { S3SSE_IPSEC_MB_PATH: missing }).stdout)
    expect(r.name).toBe('native')
    expect(r.engine).toBe('evp')
    expect(r.report.ipsecMb).toMatchObject({ available: false, path: missing, reason: expect.stringMatching(/dlopen failed: .*No such file/) })
    expect(r.line).toMatch(/with engine evp \(OpenSSL 3\.[^)]*\); ipsec-mb unavailable: dlopen failed: /)
    // And seals the same bytes as with ipsec-mb.
    const a = child(SEAL, { S3SSE_IPSEC_MB_PATH: missing }).stdout.split(' ')
    const b = child(SEAL).stdout.split(' ')
    expect(a[0]).toBe('evp')
    expect(b[1]).toBe(a[1])
  })

  it('forcing ipsec-mb where it cannot load fails with the reason instead of falling back', () => {
    const r = child(REPORT, { S3SSE_NATIVE_ENGINE: 'ipsec-mb', S3SSE_IPSEC_MB_PATH: join(work, 'nothing.so') })
    expect(r.status).not.toBe(0)
    expect(r.stderr).toMatch(/S3SSE_BACKEND_UNAVAILABLE|the native backend did not load: the ipsec-mb engine did not load: dlopen failed/)
  })

  it('a library that is not ipsec-mb is refused with the reason', () => {
    const r = JSON.parse(child(REPORT, { S3SSE_IPSEC_MB_PATH: 'libz.so.1' }).stdout)
    expect(r.engine).toBe('evp')
    expect(r.report.ipsecMb.reason).toMatch(/lacks imb_get_version|dlopen failed/)
  })

  const cc = spawnSync('sh', ['-c', 'command -v cc'], { encoding: 'utf8' }).stdout.trim()
  it.runIf(cc !== '')('an ipsec-mb of another version is refused after imb_get_version, before anything else is called', () => {
    // A stand-in library with the entry points the loader looks up, reporting version 1.5.0;
    // its manager functions abort, so the test fails if the loader went past the version check.
    const src = join(work, 'fake-imb.c')
    const lib = join(work, 'libfake-imb.so')
    writeFileSync(src, [
      '#include <stdlib.h>',
      'unsigned imb_get_version(void) { return 0x10500; }',
      'const char *imb_get_version_str(void) { return "1.5.0"; }',
      'void *alloc_mb_mgr(unsigned long long f) { (void)f; abort(); }',
      'void init_mb_mgr_auto(void *m, int *a) { (void)m; (void)a; abort(); }',
      '',
    ].join('\n'))
    const built = spawnSync(cc, ['-shared', '-fPIC', '-o', lib, src], { encoding: 'utf8' })
    expect(built.status, built.stderr).toBe(0)
    const r = child(REPORT, { S3SSE_IPSEC_MB_PATH: lib })
    expect(r.status, r.stderr).toBe(0)
    const out = JSON.parse(r.stdout)
    expect(out.engine).toBe('evp')
    expect(out.report.ipsecMb).toMatchObject({ available: false, version: '1.5.0', reason: 'libIPSec_MB 1.5.0 is not the 1.3.x this addon was built for (imb_get_version)' })
  })

  it.runIf(engines.includes('ipsec-mb'))('S3SSE_IPSEC_MB_ARCH picks a lower architecture (what a CPU without VAES runs); the bytes are the same', () => {
    const want = child(SEAL, { S3SSE_NATIVE_ENGINE: 'evp' }).stdout.split(' ')[1]
    for (const arch of ['sse', 'avx', 'avx2', 'avx512']) {
      const r = JSON.parse(child(REPORT, { S3SSE_IPSEC_MB_ARCH: arch }).stdout)
      expect(r.report.ipsecMb, arch).toMatchObject({ available: true, arch, forced: true })
      if (arch !== 'avx512') expect(r.report.ipsecMb.vaes, arch).toBe(false)
      expect(r.line).toMatch(new RegExp(`ipsec-mb 1\\.3\\.\\d+, ${arch} with(out)? VAES \\(forced by S3SSE_IPSEC_MB_ARCH\\)`))
      expect(child(SEAL, { S3SSE_IPSEC_MB_ARCH: arch }).stdout, arch).toBe(`ipsec-mb ${want}`)
    }
    const bad = JSON.parse(child(REPORT, { S3SSE_IPSEC_MB_ARCH: 'avx10' }).stdout)
    expect(bad.engine).toBe('evp')
    expect(bad.report.ipsecMb.reason).toBe('S3SSE_IPSEC_MB_ARCH=avx10 is not one of auto, sse, avx, avx2, avx512')
  })

  describe.each(engines)('the %s engine', (engine) => {
    const b: NativeBackend = loadNativeBackend(engine)

    it('reports itself', () => {
      expect(b.engine).toBe(engine)
      expect(b.engineReport.name).toBe(engine)
      expect(describeBackendReport({ chosen: 'native', reason: 'order', failures: [], cpu: b.cpu, engine: b.engineReport })).toContain(`with engine ${engine}`)
    })

    it('raw one-shot GCM (the bench reference) equals node:crypto and the engine\'s gcm, both ways, and refuses a bad tag', () => {
      for (const n of [0, 1, 15, 16, 17, 65536, 1024 * 1024 + 3]) {
        const key = randomBytes(32)
        const iv = randomBytes(12)
        const pt = randomBytes(n)
        const c = createCipheriv('aes-256-gcm', key, iv)
        const want = Buffer.concat([c.update(pt), c.final(), c.getAuthTag()])
        const out = Buffer.alloc(n + 16 + 5, 0xee)
        expect(b.raw.seal(key, iv, pt, out), `n=${n}`).toBe(n + 16)
        expect(out.subarray(0, n + 16).equals(want), `n=${n}`).toBe(true)
        expect(out.subarray(n + 16).every((x) => x === 0xee)).toBe(true)
        expect(Buffer.from(b.gcm.seal(key, iv, new Uint8Array(0), pt)).equals(want)).toBe(true)
        const back = Buffer.alloc(n)
        expect(b.raw.open(key, iv, want, back)).toBe(n)
        expect(back.equals(pt)).toBe(true)
        want[want.length - 1] ^= 1
        const wiped = Buffer.alloc(n, 0xaa)
        expect(() => b.raw.open(key, iv, want, wiped)).toThrowError(expect.objectContaining({ code: 'S3SSE_AUTH_FAILED' }))
        // The plaintext of a message whose tag failed is never left in `out`.
        expect(wiped.every((x) => x === 0)).toBe(true)
      }
      expect(() => b.raw.seal(randomBytes(32), randomBytes(12), Buffer.alloc(10), Buffer.alloc(25))).toThrowError(expect.objectContaining({ code: 'S3SSE_BAD_OUTPUT_SIZE' }))
      expect(() => b.raw.seal(randomBytes(31), randomBytes(12), Buffer.alloc(10), Buffer.alloc(26))).toThrowError(expect.objectContaining({ code: 'S3SSE_BAD_KEY_SIZE' }))
      expect(() => b.raw.open(randomBytes(32), randomBytes(12), Buffer.alloc(15), Buffer.alloc(0))).toThrowError(expect.objectContaining({ code: 'S3SSE_TRUNCATED' }))
    })

    it('a failing package leaves none of its plaintext in out, in sync and async calls split across threads', async () => {
      const key = randomBytes(32)
      const prefix = randomBytes(7)
      const pt = randomBytes(40 * 65536)
      const sealed = Buffer.alloc(sealedLength(pt.length, true))
      b.seal(key, prefix, 0, true, pt, sealed)
      sealed[17 * (65536 + 16) + 100] ^= 4
      const out = Buffer.alloc(pt.length)
      expect(() => b.open(key, prefix, 0, true, sealed, out)).toThrowError(expect.objectContaining({ code: 'S3SSE_AUTH_FAILED', packageNumber: 17 }))
      expect(out.subarray(17 * 65536, 18 * 65536).every((x) => x === 0)).toBe(true)
      const outA = Buffer.alloc(pt.length)
      await expect(b.openAsync(key, prefix, 0, true, sealed, outA, 65536, { threads: 2 })).rejects.toMatchObject({ code: 'S3SSE_AUTH_FAILED', packageNumber: 17 })
      expect(outA.subarray(17 * 65536).every((x) => x === 0)).toBe(true)
    })
  })

  it.runIf(engines.length === 2)('the two engines seal byte for byte the same, for every package size and length tried', () => {
    const a = loadNativeBackend('ipsec-mb')
    const e = loadNativeBackend('evp')
    for (const p of [1, 16, 17, 4096, 65536, 1 << 20]) {
      for (const n of [0, 1, p - 1, p, p + 1, 3 * p + 7]) {
        if (n < 0) continue
        const key = randomBytes(32)
        const prefix = randomBytes(7)
        const pt = randomBytes(n)
        const x = Buffer.alloc(sealedLength(n, true, p))
        const y = Buffer.alloc(x.length)
        a.seal(key, prefix, 9, true, pt, x, p)
        e.seal(key, prefix, 9, true, pt, y, p)
        expect(x.equals(y), `P=${p} n=${n}`).toBe(true)
        const back = Buffer.alloc(n)
        e.open(key, prefix, 9, true, x, back, p)
        expect(back.equals(pt)).toBe(true)
        a.open(key, prefix, 9, true, y, back.fill(0), p)
        expect(back.equals(pt)).toBe(true)
      }
    }
  })
})
