/**
 * What only the PKCS#11 kind has: master keys that never leave the token, a PIN that never
 * shows, a pool of sessions under load, gateways sharing one token, and a token that goes away.
 */
import { readdirSync, renameSync } from 'node:fs'
import { createRequire } from 'node:module'
import { afterEach, describe, expect, it } from 'vitest'
import { openPkcs11Kms, type Pkcs11Kms } from '../../src/keys/pkcs11.js'
import { expectCode } from '../helpers/objects.js'
import { createSoftHsmToken, requireOrSkip, softhsmMissing, type SoftHsmToken } from '../helpers/softhsm.js'

const runs = requireOrSkip(softhsmMissing(), 'PKCS#11 tests')
const test = runs ? it : it.skip
const ctx = { bucket: 'b', key: 'k' }

describe('PKCS#11 KMS on SoftHSM2', () => {
  const cleanups: Array<() => Promise<void> | void> = []
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c()
  })

  function token(): SoftHsmToken {
    const t = createSoftHsmToken()
    cleanups.push(() => t.cleanup())
    return t
  }

  async function open(t: SoftHsmToken, extra: Partial<Parameters<typeof openPkcs11Kms>[0]> = {}): Promise<Pkcs11Kms> {
    const kms = await openPkcs11Kms({ module: t.module, token: t.label, pinFile: t.pinFile, ...extra })
    cleanups.push(() => kms.close())
    return kms
  }

  test('picks CKM_AES_KEY_WRAP_PAD on SoftHSM2; master keys are sensitive, non-extractable token objects', async () => {
    const t = token()
    const kms = await open(t)
    expect(kms.mechanism).toBe('kwp')
    const key = await kms.createKey({ alias: 'inspect' })
    await kms.rotateKey(key.keyId)
    // Look into the token with the binding directly, as an auditor would.
    const lib = createRequire(import.meta.url)('pkcs11js') as typeof import('pkcs11js')
    const p11 = new lib.PKCS11()
    p11.load(t.module)
    try {
      p11.C_Initialize()
    } catch (e) {
      expect((e as { code: number }).code).toBe(lib.CKR_CRYPTOKI_ALREADY_INITIALIZED)
    }
    const slot = p11.C_GetSlotList(true).find((s) => p11.C_GetTokenInfo(s).label.trim() === t.label)!
    const s = p11.C_OpenSession(slot, lib.CKF_SERIAL_SESSION)
    try {
      p11.C_Login(s, lib.CKU_USER, t.pin)
    } catch (e) {
      expect((e as { code: number }).code).toBe(lib.CKR_USER_ALREADY_LOGGED_IN)
    }
    p11.C_FindObjectsInit(s, [{ type: lib.CKA_CLASS, value: lib.CKO_SECRET_KEY }])
    const keys = p11.C_FindObjects(s, 100)
    p11.C_FindObjectsFinal(s)
    expect(keys).toHaveLength(2) // one object per version
    for (const h of keys) {
      const [sensitive, extractable, token, label] = p11.C_GetAttributeValue(s, h, [
        { type: lib.CKA_SENSITIVE }, { type: lib.CKA_EXTRACTABLE }, { type: lib.CKA_TOKEN }, { type: lib.CKA_LABEL },
      ])
      expect(sensitive.value).toEqual(Buffer.from([1]))
      expect(extractable.value).toEqual(Buffer.from([0]))
      expect(token.value).toEqual(Buffer.from([1]))
      expect(label.value!.toString()).toMatch(new RegExp(`^s3-sse ${key.keyId} v[12]$`))
      expect(() => p11.C_GetAttributeValue(s, h, [{ type: lib.CKA_VALUE }])).toThrow(/CKR_ATTRIBUTE_SENSITIVE/)
    }
    p11.C_CloseSession(s)
  })

  test('a wrong PIN is S3SSE_KMS_ACCESS_DENIED and the PIN appears nowhere', async () => {
    const t = token()
    const wrong = 'wrong-pin-1234'
    const e = await expectCode(openPkcs11Kms({ module: t.module, token: t.label, pin: wrong }), 'S3SSE_KMS_ACCESS_DENIED')
    expect(`${e.message} ${String(e.cause ?? '')} ${e.stack}`).not.toContain(wrong)
    await expectCode(openPkcs11Kms({ module: t.module, token: 'no-such-token', pin: t.pin }), 'S3SSE_KMS_UNAVAILABLE')
    await expectCode(openPkcs11Kms({ module: '/nonexistent/libpkcs11.so', token: t.label, pin: t.pin }), 'S3SSE_KMS_UNAVAILABLE')
  })

  test('many concurrent calls share a small pool of sessions', async () => {
    const t = token()
    const kms = await open(t, { sessions: 2 })
    const key = await kms.ensureKey('busy')
    const dks = await Promise.all(Array.from({ length: 40 }, (_, i) => kms.generateDataKey(key.keyId, { ...ctx, key: `k${i}` })))
    const back = await Promise.all(dks.map((dk, i) => kms.decrypt(dk.wrapped, { ...ctx, key: `k${i}` })))
    back.forEach((b, i) => expect(Buffer.from(b)).toEqual(Buffer.from(dks[i].plaintext)))
  })

  test('two gateways on one token see the same keys, aliases and state', async () => {
    const t = token()
    const a = await open(t, { metadataTtlMs: 0 })
    const b = await open(t, { metadataTtlMs: 0 })
    const key = await a.ensureKey('shared')
    expect((await b.ensureKey('shared')).keyId).toBe(key.keyId)
    const dk = await a.generateDataKey('shared', ctx)
    expect(Buffer.from(await b.decrypt(dk.wrapped, ctx))).toEqual(Buffer.from(dk.plaintext))
    await b.rotateKey('shared')
    expect((await a.generateDataKey('shared', ctx)).keyVersion).toBe(2)
    await a.disableKey('shared')
    await expectCode(b.decrypt(dk.wrapped, ctx), 'S3SSE_KMS_KEY_DISABLED')
  })

  test('a token that goes away fails calls with S3SSE_KMS_UNAVAILABLE, and the KMS recovers when it is back', async () => {
    const t = token()
    const kms = await open(t)
    const key = await kms.ensureKey('fragile')
    const dk = await kms.generateDataKey(key.keyId, ctx)
    const [dir] = readdirSync(`${t.dir}/tokens`)
    renameSync(`${t.dir}/tokens/${dir}`, `${t.dir}/away`)
    await expectCode(kms.generateDataKey(key.keyId, ctx), 'S3SSE_KMS_UNAVAILABLE')
    await expectCode(kms.decrypt(dk.wrapped, ctx), 'S3SSE_KMS_UNAVAILABLE')
    await expectCode(kms.ensureKey('fragile'), 'S3SSE_KMS_UNAVAILABLE')
    renameSync(`${t.dir}/away`, `${t.dir}/tokens/${dir}`)
    expect(Buffer.from(await kms.decrypt(dk.wrapped, ctx))).toEqual(Buffer.from(dk.plaintext))
    expect((await kms.generateDataKey('fragile', ctx)).plaintext).toHaveLength(32)
  })

  test('a blob of another kind or another token is refused, not misread', async () => {
    const t1 = token()
    const one = await open(t1)
    const dk = await one.generateDataKey((await one.ensureKey('x')).keyId, ctx)
    await one.close()
    const t2 = token()
    const two = await open(t2)
    await expectCode(two.decrypt(dk.wrapped, ctx), 'S3SSE_KMS_KEY_NOT_FOUND')
  })
})
