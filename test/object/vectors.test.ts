import { createCipheriv, createHmac, hkdfSync } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { canonicalContext } from '../../src/keys/context.js'
import { unwrapDataKey } from '../../src/keys/wrap.js'
import type { Kms } from '../../src/keys/kms.js'
import { decodeManifest, encodeManifest, openObject, openRange } from '../../src/object/index.js'
import { bucketObjectKey } from '../../src/object/manifest.js'
import { MemoryStore, collect, expectCode } from '../helpers/objects.js'

interface ObjectVector {
  object: { bucket: string; key: string }
  packageSize: number
  kms: { masterKey: string; keyId: string; keyVersion: number; context: Record<string, string>; canonicalContext: string; wrapNonce: string; wrappedKey: string }
  dataKey: string
  parts: Array<{ number: number; size: number; salt: string; streamKey: string; noncePrefix: string; plaintext: string; stored: string }>
  macKey: string
  manifest: string
  plaintext: string
  bucketKey: { bucketKey: string; keyNonce: string; dataKey: string }
}

const v = JSON.parse(readFileSync(new URL('../vectors/object-v1.json', import.meta.url), 'utf8')) as ObjectVector
const h = (s: string) => Buffer.from(s, 'hex')
const hkdf = (ikm: Buffer, salt: Buffer, info: Buffer | string, n: number) => Buffer.from(hkdfSync('sha256', ikm, salt, typeof info === 'string' ? Buffer.from(info, 'latin1') : info, n))

/** docs/FORMAT.md 6.2, written from the text alone. */
function specContext(ctx: Record<string, string>): Buffer {
  const pairs = Object.entries(ctx).map(([k, val]) => [Buffer.from(k), Buffer.from(val)]).sort((a, b) => Buffer.compare(a[0], b[0]))
  const u16 = (n: number) => { const b = Buffer.alloc(2); b.writeUInt16BE(n); return b }
  return Buffer.concat([u16(pairs.length), ...pairs.flatMap(([k, val]) => [u16(k.length), k, u16(val.length), val])])
}

describe('object-v1 vector, recomputed from docs/FORMAT.md with node:crypto only', () => {
  it('canonical encryption context (6.2)', () => {
    expect(specContext(v.kms.context).toString('hex')).toBe(v.kms.canonicalContext)
  })

  it('wrapped data key (7)', () => {
    const id = Buffer.from(v.kms.keyId, 'latin1')
    const version = Buffer.alloc(4)
    version.writeUInt32BE(v.kms.keyVersion)
    const nonce = h(v.kms.wrapNonce)
    const okm = hkdf(h(v.kms.masterKey), nonce, 's3-sse v1 wrap', 76)
    const ctx = h(v.kms.canonicalContext)
    const check = createHmac('sha256', okm.subarray(44)).update(ctx).digest().subarray(0, 16)
    const header = Buffer.concat([Buffer.of(1, id.length), id, version, nonce, check])
    const gcm = createCipheriv('aes-256-gcm', okm.subarray(0, 32), okm.subarray(32, 44))
    gcm.setAAD(Buffer.concat([header, ctx]))
    const ct = Buffer.concat([gcm.update(h(v.dataKey)), gcm.final()])
    expect(Buffer.concat([header, ct, gcm.getAuthTag()]).toString('hex')).toBe(v.kms.wrappedKey)
  })

  it('stream keys and stored bytes of each part (2, 3)', () => {
    for (const p of v.parts) {
      const info = Buffer.concat([Buffer.from('s3-sse v1 stream\0', 'latin1'), Buffer.alloc(4)])
      info.writeUInt32BE(p.number, info.length - 4)
      const okm = hkdf(h(v.dataKey), h(p.salt), info, 39)
      expect(okm.subarray(0, 32).toString('hex')).toBe(p.streamKey)
      expect(okm.subarray(32).toString('hex')).toBe(p.noncePrefix)
      const plain = h(p.plaintext)
      const count = Math.max(1, Math.ceil(plain.length / v.packageSize))
      const stored: Buffer[] = []
      for (let i = 0; i < count; i++) {
        const nonce = Buffer.concat([okm.subarray(32), Buffer.alloc(5)])
        nonce.writeUInt32BE(i, 7)
        nonce[11] = i === count - 1 ? 1 : 0
        const c = createCipheriv('aes-256-gcm', okm.subarray(0, 32), nonce)
        stored.push(c.update(plain.subarray(i * v.packageSize, (i + 1) * v.packageSize)), c.final(), c.getAuthTag())
      }
      expect(Buffer.concat(stored).toString('hex')).toBe(p.stored)
    }
  })

  it('manifest layout and MAC (6.1, 6.3)', () => {
    const m = h(v.manifest)
    let pos = 0
    const take = (n: number) => m.subarray(pos, (pos += n))
    expect(take(4).toString('latin1')).toBe('S3SM')
    expect(take(1)[0]).toBe(1) // version
    expect(take(1)[0]).toBe(0x01) // encrypted, no bucket key
    expect(take(4).readUInt32BE()).toBe(v.packageSize)
    expect(take(2).readUInt16BE()).toBe(v.parts.length)
    for (const p of v.parts) {
      expect(take(2).readUInt16BE()).toBe(p.number)
      expect(Number(take(8).readBigUInt64BE())).toBe(p.size)
      expect(take(32).toString('hex')).toBe(p.salt)
    }
    expect(take(1)[0]).toBe(1) // aws:kms
    expect(take(take(2).readUInt16BE()).toString()).toBe(v.kms.keyId)
    expect(take(4).readUInt32BE()).toBe(v.kms.keyVersion)
    expect(take(take(2).readUInt16BE()).toString('hex')).toBe(v.kms.wrappedKey)
    expect(take(specContext(v.kms.context).length).toString('hex')).toBe(v.kms.canonicalContext)
    const body = m.subarray(0, pos)
    const mac = take(32)
    expect(pos).toBe(m.length)

    const macKey = hkdf(h(v.dataKey), Buffer.alloc(0), 's3-sse v1 manifest mac', 32)
    expect(macKey.toString('hex')).toBe(v.macKey)
    const want = createHmac('sha256', macKey)
      .update(Buffer.from('s3-sse v1 manifest\0', 'latin1'))
      .update(specContext({ bucket: v.object.bucket, key: v.object.key }))
      .update(body).digest()
    expect(want).toEqual(mac)
  })

  it('bucket-key data key (6.4)', () => {
    expect(hkdf(h(v.bucketKey.bucketKey), h(v.bucketKey.keyNonce), 's3-sse v1 bucket object key', 32).toString('hex')).toBe(v.bucketKey.dataKey)
  })
})

describe('object-v1 vector through s3-sse', () => {
  /** A KMS holding the vector's one master key version: the embedded KMS's own unwrap code. */
  const vectorKms = {
    decrypt: async (wrapped: Uint8Array, context: Record<string, string>) => unwrapDataKey(h(v.kms.masterKey), wrapped, context),
  } as unknown as Kms

  function store(): MemoryStore {
    const s = new MemoryStore()
    s.parts = v.parts.map((p) => h(p.stored))
    return s
  }

  it('decodes, re-encodes byte for byte, and opens to the plaintext', async () => {
    const m = decodeManifest(h(v.manifest))
    expect(m.parts.map((p) => [p.number, p.size])).toEqual(v.parts.map((p) => [p.number, p.size]))
    expect(m.encryption).toMatchObject({ algorithm: 'aws:kms', keyId: v.kms.keyId, keyVersion: 1, context: v.kms.context })
    expect(Buffer.from(encodeManifest(m)).toString('hex')).toBe(v.manifest)
    expect(Buffer.from(canonicalContext(v.kms.context)).toString('hex')).toBe(v.kms.canonicalContext)
    expect(Buffer.from(unwrapDataKey(h(v.kms.masterKey), h(v.kms.wrappedKey), v.kms.context)).toString('hex')).toBe(v.dataKey)
    expect((await collect(openObject(m, { context: v.object, kms: vectorKms }, store().read))).toString('hex')).toBe(v.plaintext)
    const plain = h(v.plaintext)
    for (const [s, e] of [[0, 0], [31, 32], [70, 71], [64, 102], [5, 90]]) {
      expect(await collect(openRange(m, { context: v.object, kms: vectorKms }, s, e, store().read))).toEqual(plain.subarray(s, e + 1))
    }
    expect(Buffer.from(bucketObjectKey(h(v.bucketKey.bucketKey), h(v.bucketKey.keyNonce))).toString('hex')).toBe(v.bucketKey.dataKey)
  })

  it('refuses the vector under another object name', async () => {
    const m = decodeManifest(h(v.manifest))
    await expectCode(collect(openObject(m, { context: { ...v.object, key: 'other' }, kms: vectorKms }, store().read)), 'S3SSE_KMS_CONTEXT_MISMATCH')
  })
})
