// What only the WebAssembly backend has: a fixed arena in linear memory, slicing of large
// calls, wiping, the module loaders. The shared suite (Wycheproof, cross-backend, stream
// vectors, tamper) runs on wasm through test/helpers/backends.ts.
import { randomBytes } from 'node:crypto'
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { MAX_PACKAGE_SIZE, S3sseError, sealedLength, TAG_SIZE } from '../../src/index.js'
import { createWasmBackendSync, instantiateWasmBackend, type WasmBackend } from '../../src/crypto/backends/wasm-core.js'
import { createWasmBackend, WASM_MODULE_URL } from '../../src/crypto/backends/wasm.js'
import { referenceSeal } from '../helpers/backends.js'

const bytes = readFileSync(WASM_MODULE_URL)
const root = new URL('../../', import.meta.url).pathname.replace(/\/$/, '')

function memoryOf(b: WasmBackend): Buffer {
  return Buffer.from(b.memory.buffer)
}

function authError(call: () => unknown): S3sseError {
  try {
    call()
  } catch (e) {
    expect(e).toBeInstanceOf(S3sseError)
    return e as S3sseError
  }
  throw new Error('expected S3SSE_AUTH_FAILED, the call succeeded')
}

describe('wasm backend: arena and wiping', () => {
  it('after seal, open, a failed open and a gcm call its memory is byte-identical to a fresh instance (no key, keystream or plaintext left, stack included)', () => {
    const fresh = createWasmBackendSync(bytes)
    const used = createWasmBackendSync(bytes)
    const key = randomBytes(32)
    const prefix = randomBytes(7)
    const pt = randomBytes(3 * 65536 + 77)
    const sealed = Buffer.alloc(sealedLength(pt.length, true))
    used.seal(key, prefix, 9, true, pt, sealed)
    expect(sealed.equals(referenceSeal(key, prefix, 9, true, pt, 65536))).toBe(true)
    const back = Buffer.alloc(pt.length)
    used.open(key, prefix, 9, true, sealed, back)
    expect(back.equals(pt)).toBe(true)
    sealed[70000] ^= 1
    expect(authError(() => used.open(key, prefix, 9, true, sealed, back)).code).toBe('S3SSE_AUTH_FAILED')
    const iv = randomBytes(12)
    used.gcm.open(key, iv, Buffer.from('aad'), used.gcm.seal(key, iv, Buffer.from('aad'), pt.subarray(0, 1000)))

    const after = memoryOf(used)
    expect(after.length).toBe(memoryOf(fresh).length)
    // Not even a 32-byte window of the key, and nothing of the plaintext, is left anywhere.
    expect(after.indexOf(key)).toBe(-1)
    expect(after.indexOf(pt.subarray(0, 32))).toBe(-1)
    expect(after.equals(memoryOf(fresh))).toBe(true)
  })

  it('never grows its memory, and takes a package of MAX_PACKAGE_SIZE whole', () => {
    const b = createWasmBackendSync(bytes)
    const size = b.memory.buffer.byteLength
    expect(b.arenaBytes).toBeGreaterThanOrEqual(MAX_PACKAGE_SIZE + TAG_SIZE)
    const key = randomBytes(32)
    const prefix = randomBytes(7)
    const pt = randomBytes(MAX_PACKAGE_SIZE + 5)
    const expected = referenceSeal(key, prefix, 0, true, pt, MAX_PACKAGE_SIZE)
    const out = Buffer.alloc(expected.length)
    expect(b.seal(key, prefix, 0, true, pt, out, MAX_PACKAGE_SIZE)).toBe(expected.length)
    expect(out.equals(expected)).toBe(true)
    const back = Buffer.alloc(pt.length)
    expect(b.open(key, prefix, 0, true, expected, back, MAX_PACKAGE_SIZE)).toBe(pt.length)
    expect(back.equals(pt)).toBe(true)
    expect(b.memory.buffer.byteLength).toBe(size)
  })

  it('cuts calls larger than a slice (1 MiB) at package boundaries, for small and large packages', () => {
    const b = createWasmBackendSync(bytes)
    const key = randomBytes(32)
    const prefix = randomBytes(7)
    const pt = randomBytes(5 * 1024 * 1024 + 3)
    for (const p of [1000, 65536, 3 * 1024 * 1024]) {
      for (const final of [true, false]) {
        const expected = referenceSeal(key, prefix, 0xfffffff0 - Math.ceil(pt.length / p), final, pt, p)
        const out = Buffer.alloc(expected.length)
        expect(b.seal(key, prefix, 0xfffffff0 - Math.ceil(pt.length / p), final, pt, out, p)).toBe(expected.length)
        expect(out.equals(expected), `P=${p} final=${final}`).toBe(true)
        const back = Buffer.alloc(pt.length)
        expect(b.open(key, prefix, 0xfffffff0 - Math.ceil(pt.length / p), final, expected, back, p)).toBe(pt.length)
        expect(back.equals(pt), `P=${p} final=${final}`).toBe(true)
      }
    }
  })

  it('a bad tag in a later slice: the packages before it are released, none of the bad one, and the error names its absolute number', () => {
    const b = createWasmBackendSync(bytes)
    const key = randomBytes(32)
    const prefix = randomBytes(7)
    const p = 65536
    const pt = randomBytes(40 * p)
    const first = 1000
    const sealed = referenceSeal(key, prefix, first, true, pt, p)
    const bad = 23 // in the second 1 MiB slice
    sealed[bad * (p + TAG_SIZE) + 5] ^= 0x80
    const out = Buffer.alloc(pt.length, 0xee)
    const err = authError(() => b.open(key, prefix, first, true, sealed, out, p))
    expect(err.code).toBe('S3SSE_AUTH_FAILED')
    expect(err.packageNumber).toBe(first + bad)
    expect(out.subarray(0, bad * p).equals(pt.subarray(0, bad * p))).toBe(true)
    expect(out.subarray(bad * p).every((x) => x === 0xee)).toBe(true)
  })

  it('keeps working when its memory is grown from outside (typed-array views are refreshed)', () => {
    const b = createWasmBackendSync(bytes)
    const key = randomBytes(32)
    const prefix = randomBytes(7)
    const pt = randomBytes(100_000)
    const out1 = Buffer.alloc(sealedLength(pt.length, true))
    b.seal(key, prefix, 0, true, pt, out1)
    b.memory.grow(1) // detaches every view of the old buffer
    const out2 = Buffer.alloc(out1.length)
    b.seal(key, prefix, 0, true, pt, out2)
    expect(out2.equals(out1)).toBe(true)
    expect(out2.equals(referenceSeal(key, prefix, 0, true, pt, 65536))).toBe(true)
  })

  it('single messages larger than the arena are refused with a clear error, not truncated', () => {
    const b = createWasmBackendSync(bytes)
    const big = new Uint8Array(b.arenaBytes + 1)
    let err: unknown
    try {
      b.gcm.seal(new Uint8Array(32), new Uint8Array(12), new Uint8Array(0), big)
    } catch (e) {
      err = e
    }
    expect(err).toBeInstanceOf(S3sseError)
    expect((err as S3sseError).code).toBe('S3SSE_BAD_ARGUMENT')
    expect((err as Error).message).toMatch(/limited to \d+ bytes/)
  })
})

describe('wasm backend: random shapes against node:crypto', () => {
  it('300 calls of random length, package size, first package and final flag seal and open like the reference', () => {
    const b = createWasmBackendSync(bytes)
    // A fixed-seed xorshift picks the shapes, so a failure names a reproducible case.
    let seed = 0x2545f491
    const rnd = (n: number) => {
      seed ^= seed << 13
      seed ^= seed >>> 17
      seed ^= seed << 5
      return (seed >>> 0) % n
    }
    for (let i = 0; i < 300; i++) {
      const p = [1, 15, 16, 17, 127, 128, 129, 1000, 4096, 65536, 70001][rnd(11)]
      const n = rnd(p < 128 ? 2000 : 300_000)
      const final = rnd(2) === 1
      const count = n === 0 ? (final ? 1 : 0) : Math.ceil(n / p)
      const first = [0, rnd(1 << 30), 0xffffffff - Math.max(count, 1) + 1][rnd(3)]
      const key = randomBytes(32)
      const prefix = randomBytes(7)
      const pt = randomBytes(n)
      const where = `case ${i}: n=${n} P=${p} first=${first} final=${final}`
      const expected = referenceSeal(key, prefix, first, final, pt, p)
      const out = Buffer.alloc(expected.length)
      expect(b.seal(key, prefix, first, final, pt, out, p), where).toBe(expected.length)
      expect(out.equals(expected), where).toBe(true)
      const back = Buffer.alloc(n)
      expect(b.open(key, prefix, first, final, expected, back, p), where).toBe(n)
      expect(back.equals(pt), where).toBe(true)
    }
  })
})

describe('wasm backend: async calls on worker threads (Node)', () => {
  it('seals and opens 16 MiB on 1 and 2 workers like the reference, while the event loop keeps running', async () => {
    const b = createWasmBackend()
    try {
      const key = randomBytes(32)
      const prefix = randomBytes(7)
      const pt = randomBytes(16 * 1024 * 1024 + 99)
      const expected = referenceSeal(key, prefix, 77, true, pt, 65536)
      for (const threads of [1, 2]) {
        let ticks = 0
        const timer = setInterval(() => ticks++, 1)
        const out = Buffer.alloc(expected.length)
        const n = await b.sealAsync(key, prefix, 77, true, pt, out, 65536, { threads })
        clearInterval(timer)
        expect(n).toBe(expected.length)
        expect(out.equals(expected), `threads=${threads}`).toBe(true)
        // A call on this thread would have let no timer fire until it returned.
        expect(ticks, `threads=${threads}`).toBeGreaterThan(0)
        const back = Buffer.alloc(pt.length)
        expect(await b.openAsync(key, prefix, 77, true, expected, back, 65536, { threads })).toBe(pt.length)
        expect(back.equals(pt), `threads=${threads}`).toBe(true)
      }
      // The caller's buffers were copied, not moved: still attached and unchanged.
      expect(pt.buffer.byteLength).toBeGreaterThan(0)
      expect(key.length).toBe(32)
    } finally {
      await b.pool.close()
    }
  })

  it('a bad tag in the second worker\'s run: the first run is released, nothing from the bad run on, and the package number is absolute', async () => {
    const b = createWasmBackend()
    try {
      const key = randomBytes(32)
      const prefix = randomBytes(7)
      const p = 65536
      const pt = randomBytes(32 * p)
      const sealed = referenceSeal(key, prefix, 500, true, pt, p)
      sealed[20 * (p + TAG_SIZE) + 9] ^= 4 // package 20 of 32: the second half
      const out = Buffer.alloc(pt.length, 0xee)
      let err: unknown
      try {
        await b.openAsync(key, prefix, 500, true, sealed, out, p, { threads: 2 })
      } catch (e) {
        err = e
      }
      expect(err).toBeInstanceOf(S3sseError)
      expect((err as S3sseError).code).toBe('S3SSE_AUTH_FAILED')
      expect((err as S3sseError).packageNumber).toBe(520)
      expect(out.subarray(0, 16 * p).equals(pt.subarray(0, 16 * p))).toBe(true)
      expect(out.subarray(16 * p).every((x) => x === 0)).toBe(true)
    } finally {
      await b.pool.close()
    }
  })

  it('idle workers do not keep a process alive', () => {
    const code = `import { loadBackend } from 's3-sse'
const b = loadBackend('wasm')
const pt = Buffer.alloc(1 << 20, 7)
const out = Buffer.alloc(pt.length + 16 * 16)
console.log(await b.sealAsync(Buffer.alloc(32, 1), Buffer.alloc(7), 0, true, pt, out, 65536, { threads: 2 }))`
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { cwd: root, encoding: 'utf8', timeout: 30_000 })
    expect(r.stderr).toBe('')
    expect(r.status).toBe(0)
    expect(r.stdout.trim()).toBe(String((1 << 20) + 16 * 16))
  })
})

describe('wasm backend: loading', () => {
  it('instantiates asynchronously from bytes or a compiled Module (the browser path), with the same output', async () => {
    const key = randomBytes(32)
    const prefix = randomBytes(7)
    const pt = randomBytes(70_000)
    const expected = referenceSeal(key, prefix, 4, true, pt, 65536)
    for (const b of [await instantiateWasmBackend(bytes), await instantiateWasmBackend(await WebAssembly.compile(bytes))]) {
      expect(b.name).toBe('wasm')
      const out = Buffer.alloc(expected.length)
      b.seal(key, prefix, 4, true, pt, out)
      expect(out.equals(expected)).toBe(true)
    }
  })

  it('refuses a module that is not ours, saying so', () => {
    const empty = new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00])
    expect(() => createWasmBackendSync(empty)).toThrow(/not the s3-sse WebAssembly module/)
  })

  it('the committed module carries no path of the machine that built it', () => {
    expect(bytes.indexOf(Buffer.from(root))).toBe(-1)
    expect(bytes.indexOf(Buffer.from('/home/'))).toBe(-1)
    expect(bytes.indexOf(Buffer.from('/work/'))).toBe(-1)
  })
})
