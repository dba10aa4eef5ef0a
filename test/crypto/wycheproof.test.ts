import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { hkdfSha256, S3sseError } from '../../src/index.js'
import { testBackends } from '../helpers/backends.js'

// Wycheproof (C2SP/wycheproof, Apache-2.0), copied from ../shared/vectors: test/vectors/wycheproof/LICENSE and SOURCE.
const dir = new URL('../vectors/wycheproof/', import.meta.url)
const hex = (s: string) => Buffer.from(s, 'hex')

interface GcmTest { tcId: number; comment: string; key: string; iv: string; aad: string; msg: string; ct: string; tag: string; result: 'valid' | 'invalid' | 'acceptable' }
interface GcmGroup { keySize: number; ivSize: number; tagSize: number; tests: GcmTest[] }
const gcm = JSON.parse(readFileSync(new URL('aes_gcm_test.json', dir), 'utf8')) as { testGroups: GcmGroup[] }
// The groups our format uses: 256-bit key, 96-bit IV, 128-bit tag.
const gcmTests = gcm.testGroups
  .filter((g) => g.keySize === 256 && g.ivSize === 96 && g.tagSize === 128)
  .flatMap((g) => g.tests)

describe.each(testBackends())('Wycheproof AES-256-GCM on %s', (_name, backend) => {
  it('has the vectors', () => {
    expect(gcmTests.length).toBeGreaterThan(50)
    expect(gcmTests.some((t) => t.result === 'invalid')).toBe(true)
  })

  it.each(gcmTests.map((t) => [t.tcId, t] as const))('tcId %i', (_id, t) => {
    const key = hex(t.key)
    const iv = hex(t.iv)
    const aad = hex(t.aad)
    const sealed = Buffer.concat([hex(t.ct), hex(t.tag)])
    if (t.result === 'valid') {
      expect(Buffer.from(backend.gcm.seal(key, iv, aad, hex(t.msg))).toString('hex'), `seal tcId ${t.tcId}`).toBe(sealed.toString('hex'))
      expect(Buffer.from(backend.gcm.open(key, iv, aad, sealed)).toString('hex'), `open tcId ${t.tcId}`).toBe(t.msg)
    } else {
      // Invalid cases are modified tags or ciphertexts: opening must refuse them.
      let err: unknown
      try {
        backend.gcm.open(key, iv, aad, sealed)
      } catch (e) {
        err = e
      }
      expect(err, `tcId ${t.tcId} (${t.comment}) must be rejected`).toBeInstanceOf(S3sseError)
      expect((err as S3sseError).code).toBe('S3SSE_AUTH_FAILED')
    }
  })

  it('the one vector expressible as a package (empty AAD, flag byte 0/1) matches through seal/open', () => {
    const usable = gcmTests.filter((t) => t.result === 'valid' && t.aad === '' && t.msg !== '' && hex(t.iv)[11] <= 1)
    expect(usable.length).toBeGreaterThan(0)
    for (const t of usable) {
      const iv = hex(t.iv)
      const msg = hex(t.msg)
      const out = Buffer.alloc(msg.length + 16)
      const n = backend.seal(hex(t.key), iv.subarray(0, 7), iv.readUInt32BE(7), iv[11] === 1, msg, out, msg.length)
      expect(out.subarray(0, n).toString('hex'), `tcId ${t.tcId}`).toBe(t.ct + t.tag)
    }
  })
})

interface HkdfTest { tcId: number; ikm: string; salt: string; info: string; size: number; okm: string; result: string }
const hkdf = JSON.parse(readFileSync(new URL('hkdf_sha256_test.json', dir), 'utf8')) as { testGroups: Array<{ tests: HkdfTest[] }> }
const hkdfTests = hkdf.testGroups.flatMap((g) => g.tests)

describe('Wycheproof HKDF-SHA256 (the stream key derivation)', () => {
  it.each(hkdfTests.map((t) => [t.tcId, t] as const))('tcId %i', (_id, t) => {
    if (t.result === 'valid') {
      expect(Buffer.from(hkdfSha256(hex(t.ikm), hex(t.salt), hex(t.info), t.size)).toString('hex'), `tcId ${t.tcId}`).toBe(t.okm)
    } else {
      // The invalid cases ask for more than 255·HashLen bytes (RFC 5869 2.3).
      expect(() => hkdfSha256(hex(t.ikm), hex(t.salt), hex(t.info), t.size), `tcId ${t.tcId}`).toThrow()
    }
  })
})
