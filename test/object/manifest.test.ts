import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { S3sseError } from '../../src/errors.js'
import { sealedStreamSize } from '../../src/crypto/offsets.js'
import { openEmbeddedKms, type EmbeddedKms } from '../../src/keys/embedded.js'
import { ROOT_KEY_ENV } from '../../src/keys/keyring.js'
import {
  completeUpload, decodeManifest, encodeManifest, openObject, sealObject, sealPart, startUpload, validateManifest,
  type Manifest, type ObjectContext, type PartRecord,
} from '../../src/object/index.js'
import { MemoryStore, chunks, collect, expectCode, randomData, tempDir } from '../helpers/objects.js'

const P = 64
const ctx: ObjectContext = { bucket: 'b', key: 'k/1' }
let kms: EmbeddedKms
let cleanup: () => void
let object: { manifest: Manifest; store: MemoryStore; plain: Buffer }
let bucketKeyObject: { manifest: Manifest; store: MemoryStore }

beforeAll(async () => {
  delete process.env[ROOT_KEY_ENV]
  const t = tempDir('s3sse-manifest-')
  cleanup = t.cleanup
  kms = await openEmbeddedKms(t.dir)
  await kms.createKey({ alias: 'm' })
  const upload = await startUpload({ context: ctx, encryption: { algorithm: 'aws:kms', kms, keyId: 'm', extraContext: { team: 'a' } }, packageSize: P })
  const store = new MemoryStore()
  const records: PartRecord[] = []
  const plain: Buffer[] = []
  for (const [i, n] of [150, 64, 99].entries()) {
    const data = randomData(n)
    plain.push(data)
    const out = await sealPart(upload, { kms }, i + 1, chunks(data))
    store.parts.push(await collect(out.stream))
    records.push(out.result())
  }
  object = { manifest: await completeUpload(upload, { kms }, records), store, plain: Buffer.concat(plain) }
  const single = await sealObject(chunks(randomData(300)), { context: ctx, encryption: { algorithm: 'aws:kms', kms, keyId: 'm', bucketKey: true }, packageSize: P })
  const bstore = new MemoryStore()
  bstore.parts.push(await collect(single.stream))
  bucketKeyObject = { manifest: single.result(), store: bstore }
})
afterAll(async () => {
  await kms.close()
  cleanup()
})

/** A deep copy through the canonical bytes. */
function copy(m: Manifest): Manifest {
  return decodeManifest(encodeManifest(m))
}

function resize(m: Manifest): Manifest {
  for (const p of m.parts) p.storedSize = m.encryption ? sealedStreamSize(p.size, m.packageSize) : p.size
  m.size = m.parts.reduce((a, p) => a + p.size, 0)
  return m
}

async function open(m: Manifest, store = object.store, context = ctx): Promise<Buffer> {
  return collect(openObject(m, { context, kms }, store.read))
}

describe('manifest', () => {
  it('round-trips canonically and reads back', async () => {
    const bytes = encodeManifest(object.manifest)
    const m = decodeManifest(bytes)
    expect(m).toEqual(object.manifest)
    expect(Buffer.from(encodeManifest(m))).toEqual(Buffer.from(bytes))
    expect(await open(m)).toEqual(object.plain)
    // Compact: a three-part encrypted object with a 138-byte wrapped key and context.
    expect(bytes.length).toBeLessThan(450)
  })

  const tampers: Array<[string, (m: Manifest) => Manifest, string]> = [
    ['a part size', (m) => { m.parts[1].size -= 1; return resize(m) }, 'S3SSE_MANIFEST_AUTH_FAILED'],
    ['the total size with the last part', (m) => { m.parts[2].size += 64; return resize(m) }, 'S3SSE_MANIFEST_AUTH_FAILED'],
    ['the part order (contents swapped)', (m) => {
      const [a, b] = [m.parts[0], m.parts[1]]
      m.parts[0] = { ...b, number: a.number }
      m.parts[1] = { ...a, number: b.number }
      return resize(m)
    }, 'S3SSE_MANIFEST_AUTH_FAILED'],
    ['a part number', (m) => { m.parts[2].number = 7; return m }, 'S3SSE_MANIFEST_AUTH_FAILED'],
    ['a salt', (m) => { m.parts[0].salt![0] ^= 1; return m }, 'S3SSE_MANIFEST_AUTH_FAILED'],
    ['the part count (last dropped)', (m) => { m.parts.pop(); return resize(m) }, 'S3SSE_MANIFEST_AUTH_FAILED'],
    ['the part count (middle dropped)', (m) => { m.parts.splice(1, 1); return resize(m) }, 'S3SSE_MANIFEST_AUTH_FAILED'],
    ['the MAC', (m) => { m.mac![31] ^= 0x80; return m }, 'S3SSE_MANIFEST_AUTH_FAILED'],
    ['the package size', (m) => { m.packageSize = 32; return resize(m) }, 'S3SSE_MANIFEST_AUTH_FAILED'],
    ['the key id field', (m) => { m.encryption!.keyId = 'another-key'; return m }, 'S3SSE_MANIFEST_AUTH_FAILED'],
    ['the key version field', (m) => { m.encryption!.keyVersion = 9; return m }, 'S3SSE_MANIFEST_AUTH_FAILED'],
    ['the algorithm', (m) => { m.encryption!.algorithm = 'AES256'; return m }, 'S3SSE_MANIFEST_AUTH_FAILED'],
    ['an extra context pair', (m) => { m.encryption!.context.team = 'b'; return m }, 'S3SSE_KMS_CONTEXT_MISMATCH'],
    ['an added context pair', (m) => { m.encryption!.context.more = 'x'; return m }, 'S3SSE_KMS_CONTEXT_MISMATCH'],
    ['the object key in the context', (m) => { m.encryption!.context.key = 'k/2'; return m }, 'S3SSE_KMS_CONTEXT_MISMATCH'],
    ['the wrapped key ciphertext', (m) => { m.encryption!.wrappedKey[m.encryption!.wrappedKey.length - 20] ^= 1; return m }, 'S3SSE_KMS_BAD_CIPHERTEXT'],
    ['the wrapped key tag', (m) => { m.encryption!.wrappedKey[m.encryption!.wrappedKey.length - 1] ^= 1; return m }, 'S3SSE_KMS_BAD_CIPHERTEXT'],
    ['the wrapped key format', (m) => { m.encryption!.wrappedKey[0] = 9; return m }, 'S3SSE_KMS_BAD_CIPHERTEXT'],
    ['the wrapped key length', (m) => { m.encryption!.wrappedKey = m.encryption!.wrappedKey.subarray(1); return m }, 'S3SSE_KMS_BAD_CIPHERTEXT'],
  ]
  it.each(tampers)('tampering with %s fails with the right code', async (_what, change, code) => {
    const m = change(copy(object.manifest))
    // It still parses (the tamper is well-formed), and open refuses it before reading data.
    const parsed = decodeManifest(encodeManifest(m))
    object.store.resetCounters()
    await expectCode(open(parsed), code)
    expect(object.store.bytesRead).toBe(0)
  })

  it('tampering with a bucket-key manifest (nonce, flag) fails', async () => {
    const m = copy(bucketKeyObject.manifest)
    m.encryption!.keyNonce![3] ^= 1
    await expectCode(open(m, bucketKeyObject.store), 'S3SSE_MANIFEST_AUTH_FAILED')
    const unflagged = copy(bucketKeyObject.manifest)
    delete unflagged.encryption!.bucketKey
    delete unflagged.encryption!.keyNonce
    // Without the flag the KMS is asked under the object context, which the bucket key was not made for.
    await expectCode(open(unflagged, bucketKeyObject.store), 'S3SSE_KMS_CONTEXT_MISMATCH')
  })

  it('the manifest of another object, or read under another name, is refused', async () => {
    await expectCode(open(object.manifest, object.store, { bucket: 'b', key: 'k/other' }), 'S3SSE_KMS_CONTEXT_MISMATCH')
    await expectCode(open(object.manifest, object.store, { bucket: 'c', key: 'k/1' }), 'S3SSE_KMS_CONTEXT_MISMATCH')
  })

  it('every single-byte change of the encoded bytes is refused (parse or authentication), never read', async () => {
    const bytes = Buffer.from(encodeManifest(object.manifest))
    const codes = new Map<string, number>()
    for (let i = 0; i < bytes.length; i++) {
      for (const bit of [0x01, 0x80]) {
        const bad = Buffer.from(bytes)
        bad[i] ^= bit
        let code = 'none'
        try {
          await open(decodeManifest(bad))
        } catch (e) {
          if (!(e instanceof S3sseError)) throw new Error(`byte ${i}: untyped ${String(e)}`)
          code = e.code
        }
        expect(code, `byte ${i} bit ${bit}`).not.toBe('none')
        codes.set(code, (codes.get(code) ?? 0) + 1)
      }
    }
    expect([...codes.keys()].every((c) => ['S3SSE_BAD_MANIFEST', 'S3SSE_MANIFEST_AUTH_FAILED', 'S3SSE_KMS_CONTEXT_MISMATCH',
      'S3SSE_KMS_BAD_CIPHERTEXT', 'S3SSE_KMS_KEY_NOT_FOUND'].includes(c)), JSON.stringify([...codes])).toBe(true)
    expect(codes.get('S3SSE_MANIFEST_AUTH_FAILED')).toBeGreaterThan(0)
    expect(codes.get('S3SSE_BAD_MANIFEST')).toBeGreaterThan(0)
  })

  it('parsing rejects truncation, trailing bytes, bad fields and garbage with S3SSE_BAD_MANIFEST', () => {
    const bytes = Buffer.from(encodeManifest(object.manifest))
    for (let n = 0; n < bytes.length; n++) expect(() => decodeManifest(bytes.subarray(0, n)), `length ${n}`).toThrow(expect.objectContaining({ code: 'S3SSE_BAD_MANIFEST' }))
    expect(() => decodeManifest(Buffer.concat([bytes, Buffer.of(0)]))).toThrow(expect.objectContaining({ code: 'S3SSE_BAD_MANIFEST' }))
    const at = (i: number, v: number) => { const b = Buffer.from(bytes); b[i] = v; return b }
    expect(() => decodeManifest(at(4, 2))).toThrow(/version 2/)
    expect(() => decodeManifest(at(5, 0x05))).toThrow(/flags/)
    expect(() => decodeManifest(at(6, 0xff))).toThrow(/packageSize/)
    for (let i = 0; i < 3000; i++) {
      const junk = randomBytes(Math.floor(Math.random() * 300))
      if (i % 2 === 0) Buffer.from('S3SM\x01', 'latin1').copy(junk)
      try {
        decodeManifest(junk)
      } catch (e) {
        expect((e as S3sseError).code).toBe('S3SSE_BAD_MANIFEST')
      }
    }
    expect(() => decodeManifest('S3SM' as unknown as Uint8Array)).toThrow(expect.objectContaining({ code: 'S3SSE_BAD_MANIFEST' }))
  })

  it('refuses a non-canonical context encoding', () => {
    const m = copy(object.manifest)
    const bytes = Buffer.from(encodeManifest(m))
    // The context is the last field before the MAC: 3 pairs, sorted bucket < key < team.
    const ctxStart = bytes.length - 32 - (2 + (2 + 6 + 2 + 1) + (2 + 3 + 2 + 3) + (2 + 4 + 2 + 1))
    expect(bytes.readUInt16BE(ctxStart)).toBe(3)
    // Swap the first two pairs (bucket=b and key=k/1): same pairs, unsorted.
    const pairA = bytes.subarray(ctxStart + 2, ctxStart + 2 + 11)
    const pairB = bytes.subarray(ctxStart + 13, ctxStart + 13 + 10)
    const swapped = Buffer.concat([bytes.subarray(0, ctxStart + 2), pairB, pairA, bytes.subarray(ctxStart + 23)])
    expect(swapped.length).toBe(bytes.length)
    expect(() => decodeManifest(swapped)).toThrow(/canonical/)
  })

  it('validates manifests built in memory', () => {
    const good = copy(object.manifest)
    const cases: Array<(m: Manifest) => void> = [
      (m) => { m.parts[0].storedSize += 1 },
      (m) => { m.size += 1 },
      (m) => { delete m.parts[0].salt },
      (m) => { m.parts = [] },
      (m) => { m.parts[1].number = m.parts[0].number },
      (m) => { m.encryption!.context = { bucket: 'b' } },
      (m) => { m.mac = new Uint8Array(5) },
      (m) => { m.encryption!.bucketKey = true },
      (m) => { (m as { version: number }).version = 2 },
    ]
    for (const change of cases) {
      const m = copy(good)
      change(m)
      expect(() => validateManifest(m)).toThrow(expect.objectContaining({ code: 'S3SSE_BAD_MANIFEST' }))
      expect(() => encodeManifest(m)).toThrow(expect.objectContaining({ code: 'S3SSE_BAD_MANIFEST' }))
    }
    const noMac = copy(good)
    delete noMac.mac
    expect(() => encodeManifest(noMac)).toThrow(/MAC/)
    const plain: Manifest = { version: 1, packageSize: P, size: 3, parts: [{ number: 1, size: 3, storedSize: 3 }] }
    expect(decodeManifest(encodeManifest(plain))).toEqual(plain)
    expect(encodeManifest(plain).length).toBe(22)
  })
})
