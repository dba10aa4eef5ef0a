import { randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { deriveStreamKey, newSalt, openStream, S3sseError, TAG_SIZE, type Backend } from '../../src/index.js'
import { referenceSeal, testBackends } from '../helpers/backends.js'

// STYLE.md 10: every way of damaging a sealed stream fails with the right code and
// releases no plaintext of the bad package.
const P = 64
const S = P + TAG_SIZE
const COUNT = 6
const DATA_KEY = randomBytes(32)

interface Outcome { released: Buffer; error?: S3sseError }

async function openAll(backend: Backend, sk: ReturnType<typeof deriveStreamKey>, sealed: Buffer, batchPackages: number): Promise<Outcome> {
  const parts: Buffer[] = []
  try {
    for await (const c of openStream([sealed], sk, { backend, packageSize: P, batchPackages })) parts.push(c)
  } catch (e) {
    return { released: Buffer.concat(parts), error: e as S3sseError }
  }
  return { released: Buffer.concat(parts) }
}

const pkg = (sealed: Buffer, i: number) => sealed.subarray(i * S, (i + 1) * S)

type Case = { name: string; code: string; pkg: number; make: (sealed: Buffer, pt: Buffer, reseal: (final: boolean, first: number, pt: Buffer) => Buffer) => Buffer }

const cases: Case[] = []
for (let i = 0; i < COUNT; i++) {
  cases.push({ name: `bit flipped in the ciphertext of package ${i}`, code: 'S3SSE_AUTH_FAILED', pkg: i, make: (s) => { const t = Buffer.from(s); t[i * S + 5] ^= 0x20; return t } })
  cases.push({ name: `bit flipped in the tag of package ${i}`, code: 'S3SSE_AUTH_FAILED', pkg: i, make: (s) => { const t = Buffer.from(s); t[i * S + P + 3] ^= 0x01; return t } })
}
cases.push(
  { name: 'truncated at a package boundary (last package dropped)', code: 'S3SSE_TRUNCATED', pkg: COUNT - 2, make: (s) => s.subarray(0, (COUNT - 1) * S) },
  { name: 'truncated at the first package boundary', code: 'S3SSE_TRUNCATED', pkg: 0, make: (s) => s.subarray(0, S) },
  { name: 'truncated inside the last package', code: 'S3SSE_AUTH_FAILED', pkg: COUNT - 1, make: (s) => s.subarray(0, s.length - 7) },
  { name: 'bytes appended that reach into a new package', code: 'S3SSE_TRAILING_DATA', pkg: COUNT - 1, make: (s) => Buffer.concat([s, randomBytes(40)]) },
  { name: 'a stray byte inserted in package 1', code: 'S3SSE_AUTH_FAILED', pkg: 1, make: (s) => Buffer.concat([s.subarray(0, S + 3), Buffer.from([7]), s.subarray(S + 3)]) },
  { name: 'truncated inside a package, shorter than a tag', code: 'S3SSE_TRUNCATED', pkg: COUNT - 1, make: (s) => s.subarray(0, (COUNT - 1) * S + 5) },
  { name: 'truncated to nothing', code: 'S3SSE_TRUNCATED', pkg: -1, make: () => Buffer.alloc(0) },
  { name: 'bytes appended after the final package', code: 'S3SSE_TRAILING_DATA', pkg: COUNT - 1, make: (s) => Buffer.concat([s, Buffer.from('extra')]) },
  { name: 'a whole package appended after the final package', code: 'S3SSE_TRAILING_DATA', pkg: COUNT - 1, make: (s) => Buffer.concat([s, pkg(s, 2)]) },
  { name: 'package 2 dropped', code: 'S3SSE_AUTH_FAILED', pkg: 2, make: (s) => Buffer.concat([s.subarray(0, 2 * S), s.subarray(3 * S)]) },
  { name: 'package 1 duplicated', code: 'S3SSE_AUTH_FAILED', pkg: 2, make: (s) => Buffer.concat([s.subarray(0, 2 * S), pkg(s, 1), s.subarray(2 * S)]) },
  { name: 'packages 3 and 4 swapped', code: 'S3SSE_AUTH_FAILED', pkg: 3, make: (s) => Buffer.concat([s.subarray(0, 3 * S), pkg(s, 4), pkg(s, 3), s.subarray(5 * S)]) },
  { name: 'final flag stripped (whole stream sealed non-final)', code: 'S3SSE_TRUNCATED', pkg: COUNT - 1, make: (_s, pt, reseal) => reseal(false, 0, pt) },
  {
    name: 'final flag added early (package 2 sealed as final)', code: 'S3SSE_TRAILING_DATA', pkg: 2,
    make: (_s, pt, reseal) => Buffer.concat([reseal(true, 0, pt.subarray(0, 3 * P)), reseal(true, 3, pt.subarray(3 * P))]),
  },
  {
    // Same data key and part number, another salt: the stream key differs, so it fails.
    name: 'package 1 taken from another stream of the same object key', code: 'S3SSE_AUTH_FAILED', pkg: 1,
    make: (s) => {
      const other = deriveStreamKey(DATA_KEY, newSalt(), 1)
      return Buffer.concat([pkg(s, 0), pkg(referenceSeal(other.key, other.noncePrefix, 0, true, randomBytes(COUNT * P), P), 1), s.subarray(2 * S)])
    },
  },
)

describe.each(testBackends())('tamper suite on %s', (name, backend) => {
  for (const batchPackages of [1, 4, 64]) {
    it.each(cases.map((c) => [c.name, c] as const))(`batch ${batchPackages}: %s`, async (_n, c) => {
      const sk = deriveStreamKey(DATA_KEY, newSalt(), 1)
      const pt = randomBytes(COUNT * P)
      const sealed = referenceSeal(sk.key, sk.noncePrefix, 0, true, pt, P)
      const reseal = (final: boolean, first: number, p: Buffer) => referenceSeal(sk.key, sk.noncePrefix, first, final, p, P)
      const r = await openAll(backend, sk, c.make(sealed, pt, reseal), batchPackages)
      expect(r.error, `${name}: ${c.name} must fail`).toBeInstanceOf(S3sseError)
      expect(r.error!.code).toBe(c.code)
      if (c.pkg >= 0) expect(r.error!.packageNumber).toBe(c.pkg)
      // What was released is a prefix of the plaintext that stops before the bad package.
      const limit = Math.max(0, Math.min(c.pkg, COUNT)) * P
      expect(r.released.length).toBeLessThanOrEqual(limit)
      expect(r.released.equals(pt.subarray(0, r.released.length))).toBe(true)
    })
  }

  it('with several large batches in flight on the pool, nothing from the failing batch or after it is released', async () => {
    // 256 KiB batches go to the pool, two at a time: a later batch may finish first.
    const P64 = 65536
    const sk = deriveStreamKey(DATA_KEY, newSalt(), 1)
    const pt = randomBytes(16 * P64 + 5)
    const sealed = referenceSeal(sk.key, sk.noncePrefix, 0, true, pt, P64)
    for (const bad of [1, 5, 9, 16]) {
      const t = Buffer.from(sealed)
      t[bad * (P64 + TAG_SIZE) + 3] ^= 0x40
      const parts: Buffer[] = []
      let err: S3sseError | undefined
      try {
        for await (const c of openStream([t], sk, { backend, batchPackages: 4 })) parts.push(c)
      } catch (e) {
        err = e as S3sseError
      }
      expect(err?.code, `package ${bad}`).toBe('S3SSE_AUTH_FAILED')
      expect(err?.packageNumber).toBe(bad)
      const released = Buffer.concat(parts)
      expect(released.length, `package ${bad}`).toBeLessThanOrEqual(Math.floor(bad / 4) * 4 * P64)
      expect(released.equals(pt.subarray(0, released.length))).toBe(true)
    }
  })

  it('open() leaves no plaintext of the failing package in out, sync and async', async () => {
    const key = randomBytes(32)
    const prefix = randomBytes(7)
    const pt = randomBytes(16 * 4096)
    const sealed = referenceSeal(key, prefix, 0, true, pt, 4096)
    for (const bad of [0, 7, 15]) {
      const t = Buffer.from(sealed)
      t[bad * (4096 + 16) + 100] ^= 1
      for (const mode of ['sync', 'async'] as const) {
        const out = Buffer.alloc(pt.length, 0xaa)
        let err: S3sseError | undefined
        try {
          if (mode === 'sync') backend.open(key, prefix, 0, true, t, out, 4096)
          else await backend.openAsync(key, prefix, 0, true, t, out, 4096, { threads: 2 })
        } catch (e) {
          err = e as S3sseError
        }
        expect(err?.code, `${mode} package ${bad}`).toBe('S3SSE_AUTH_FAILED')
        expect(err?.packageNumber).toBe(bad)
        const region = out.subarray(bad * 4096)
        // Untouched (0xaa) or wiped (0x00): no byte of that package's plaintext is released.
        expect(region.every((b) => b === 0xaa || b === 0), `${mode} package ${bad}`).toBe(true)
        expect(out.subarray(0, bad * 4096).every((b, i) => b === pt[i] || b === 0xaa || b === 0)).toBe(true)
      }
    }
  })
})
