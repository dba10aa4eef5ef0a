/**
 * SSE-C data keys (docs/FORMAT.md 7.6): the vector, computed independently with an HKDF
 * written from RFC 5869 here; a wrong key refused; nothing of the key in what is stored.
 */
import { createHmac, randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { S3sseError } from '../../src/errors.js'
import { CUSTOMER_KEY_CHECK_SIZE, CUSTOMER_KEY_SALT_SIZE, customerDataKey, newCustomerDataKey } from '../../src/object/customer-key.js'

/** RFC 5869 HKDF-SHA256 from HMAC alone. */
function hkdf(ikm: Buffer, salt: Buffer, info: string, length: number): Buffer {
  const prk = createHmac('sha256', salt).update(ikm).digest()
  let t = Buffer.alloc(0)
  const out: Buffer[] = []
  for (let i = 1; Buffer.concat(out).length < length; i++) {
    t = createHmac('sha256', prk).update(Buffer.concat([t, Buffer.from(info, 'latin1'), Buffer.from([i])])).digest()
    out.push(t)
  }
  return Buffer.concat(out).subarray(0, length)
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')

async function collect(source: AsyncIterable<Uint8Array>): Promise<Buffer[]> {
  const out: Buffer[] = []
  for await (const c of source) out.push(Buffer.from(c))
  return out
}
const K = Buffer.from(Array.from({ length: 32 }, (_, i) => i))
const S = Buffer.from(Array.from({ length: 32 }, (_, i) => 0xa0 + i))

describe('SSE-C data keys', () => {
  it('matches the FORMAT.md vector and an independent HKDF', () => {
    const record = { salt: new Uint8Array(S), check: new Uint8Array(hkdf(K, S, 's3-sse v1 sse-c key check', 32)) }
    expect(hex(record.check)).toBe('fb21503ab652716e38014a3e8cb213b26adb108116008132e12f389cd7b735d9')
    const dek = customerDataKey(K, record)
    expect(hex(dek)).toBe('52af4183c4414de43001b47f182511a4f5f451c0a1a78934798c86812c2f6be7')
    expect(hex(dek)).toBe(hex(hkdf(K, S, 's3-sse v1 sse-c data key', 32)))
  })

  it('draws a fresh salt per object: one key gives different data keys and checks', () => {
    const a = newCustomerDataKey(K)
    const b = newCustomerDataKey(K)
    expect(a.record.salt.length).toBe(CUSTOMER_KEY_SALT_SIZE)
    expect(a.record.check.length).toBe(CUSTOMER_KEY_CHECK_SIZE)
    expect(hex(a.record.salt)).not.toBe(hex(b.record.salt))
    expect(hex(a.dataKey)).not.toBe(hex(b.dataKey))
    expect(hex(a.record.check)).not.toBe(hex(b.record.check))
    expect(hex(customerDataKey(K, a.record))).toBe(hex(a.dataKey))
  })

  it('stores neither the key nor anything equal to the data key', () => {
    const { dataKey, record } = newCustomerDataKey(K)
    const stored = Buffer.concat([record.salt, record.check]).toString('hex')
    expect(stored).not.toContain(K.toString('hex'))
    expect(stored).not.toContain(hex(dataKey))
  })

  it('refuses a different key with S3SSE_CUSTOMER_KEY_MISMATCH, and malformed input', () => {
    const { record } = newCustomerDataKey(K)
    const wrong = Buffer.from(K)
    wrong[31] ^= 1
    expect(() => customerDataKey(wrong, record)).toThrow(expect.objectContaining({ code: 'S3SSE_CUSTOMER_KEY_MISMATCH' }))
    expect(() => customerDataKey(randomBytes(16), record)).toThrow(S3sseError)
    expect(() => customerDataKey(K, { salt: record.salt.subarray(0, 16), check: record.check })).toThrow(expect.objectContaining({ code: 'S3SSE_BAD_MANIFEST' }))
    expect(() => newCustomerDataKey(randomBytes(31))).toThrow(expect.objectContaining({ code: 'S3SSE_BAD_KEY_SIZE' }))
  })
})

describe('SSE-C objects through the object layer', () => {
  it('seal, open, range and a multipart upload completed without the key; a wrong key releases nothing', async () => {
    const { sealObject, openObject, openRange, startUpload, sealPart, completeUpload, decodeManifest, encodeManifest } = await import('../../src/object/index.js')
    const context = { bucket: 'b', key: 'k' }
    const data = randomBytes(200_000)
    const sealed = await sealObject((async function* () { yield data })(), { context, encryption: { algorithm: 'SSE-C', customerKey: K, keyId: 'sse-c', kms: undefined as never } })
    const stored = Buffer.concat(await collect(sealed.stream))
    const manifest = decodeManifest(encodeManifest(sealed.result()))
    expect(manifest.encryption).toMatchObject({ algorithm: 'SSE-C', keyId: 'sse-c', keyVersion: 0 })
    expect(manifest.encryption!.wrappedKey.length).toBe(64)
    const read = (_i: number, start: number, end: number) => (async function* () { yield stored.subarray(start, end) })()
    const whole = Buffer.concat(await collect(openObject(manifest, { context, customerKey: K }, read)))
    expect(whole.equals(data)).toBe(true)
    const part = Buffer.concat(await collect(openRange(manifest, { context, customerKey: K }, 70_000, 70_009, read)))
    expect(part.equals(data.subarray(70_000, 70_010))).toBe(true)
    const wrong = Buffer.from(K)
    wrong[0] ^= 0x80
    await expect(collect(openObject(manifest, { context, customerKey: wrong }, read))).rejects.toMatchObject({ code: 'S3SSE_CUSTOMER_KEY_MISMATCH' })
    await expect(collect(openObject(manifest, { context }, read))).rejects.toMatchObject({ code: 'S3SSE_CUSTOMER_KEY_MISSING' })

    const upload = await startUpload({ context, encryption: { algorithm: 'SSE-C', customerKey: K, keyId: 'sse-c', kms: undefined as never } })
    expect(upload.encryption?.macKey).toMatch(/^[A-Za-z0-9+/]{43}=$/)
    await expect(sealPart(upload, { customerKey: wrong }, 1, (async function* () { yield data })())).rejects.toMatchObject({ code: 'S3SSE_CUSTOMER_KEY_MISMATCH' })
    const p1 = await sealPart(upload, { customerKey: K }, 1, (async function* () { yield data })())
    const p1Bytes = Buffer.concat(await collect(p1.stream))
    const m = await completeUpload(upload, {}, [p1.result()])
    const readMp = (_i: number, start: number, end: number) => (async function* () { yield p1Bytes.subarray(start, end) })()
    expect(Buffer.concat(await collect(openObject(m, { context, customerKey: K }, readMp))).equals(data)).toBe(true)
  })
})
