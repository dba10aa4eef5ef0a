/**
 * Moving objects from the embedded keyring to an external KMS: rewrap with `toKms` unwraps the
 * data key with the keyring and wraps it in the target (AWS KMS API via a real kms serve, and
 * a PKCS#11 token on SoftHSM2). The sealed bytes are not touched; the object then reads with
 * the target KMS alone.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openEmbeddedKms, type EmbeddedKms } from '../../src/keys/embedded.js'
import { AwsKms } from '../../src/keys/aws.js'
import { openPkcs11Kms } from '../../src/keys/pkcs11.js'
import type { Kms } from '../../src/keys/kms.js'
import { openObject, rewrap, sealObject, type ObjectContext } from '../../src/object/index.js'
import { MemoryStore, chunks, collect, expectCode, randomData, tempDir } from '../helpers/objects.js'
import { startKmsServe, type KmsServeProcess } from '../helpers/kms-server.js'
import { createSoftHsmToken, requireOrSkip, softhsmMissing, type SoftHsmToken } from '../helpers/softhsm.js'

const ctx: ObjectContext = { bucket: 'photos', key: 'cat.jpg' }

describe('rewrap from the embedded keyring into an external KMS', () => {
  let embedded: EmbeddedKms
  let cleanup: () => void
  let server: KmsServeProcess
  let token: SoftHsmToken | undefined
  const hsm = requireOrSkip(softhsmMissing(), 'rewrap into PKCS#11')

  beforeAll(async () => {
    const t = tempDir('s3sse-rewrap-')
    cleanup = t.cleanup
    embedded = await openEmbeddedKms(t.dir)
    await embedded.ensureKey('s3-sse/bucket/photos')
    server = await startKmsServe()
    if (hsm) token = createSoftHsmToken()
  }, 60_000)
  afterAll(async () => {
    await embedded?.close()
    cleanup?.()
    await server?.stop()
    token?.cleanup()
  })

  async function targets(): Promise<Array<{ name: string; kms: Kms & { close(): Promise<void> } }>> {
    const out: Array<{ name: string; kms: Kms & { close(): Promise<void> } }> = [
      { name: 'aws', kms: new AwsKms({ endpoint: server.url, credentials: server.credentials, ca: server.ca }) },
    ]
    if (token) out.push({ name: 'pkcs11', kms: await openPkcs11Kms({ module: token.module, token: token.label, pinFile: token.pinFile }) })
    return out
  }

  it('moves plain and bucket-key objects; the data is read back by the target alone', async () => {
    for (const { name, kms: target } of await targets()) {
      try {
        for (const bucketKey of [false, true]) {
          const data = randomData(200_000)
          const sealed = await sealObject(chunks(data, 5000), { context: ctx, encryption: { algorithm: 'aws:kms', kms: embedded, keyId: 's3-sse/bucket/photos', bucketKey } })
          const store = new MemoryStore()
          store.parts.push(await collect(sealed.stream))
          const before = sealed.result()
          const key = await target.ensureKey('s3-sse/bucket/photos')
          const moved = await rewrap(before, { kms: embedded, toKms: target, from: ctx, to: ctx, keyId: key.keyId })
          expect((await target.describeKey(moved.encryption!.keyId)).keyId, name).toBe(key.keyId)
          expect(moved.parts, name).toEqual(before.parts)
          expect(await collect(openObject(moved, { context: ctx, kms: target }, store.read)), name).toEqual(data)
          // The keyring no longer opens it.
          await expect(collect(openObject(moved, { context: ctx, kms: embedded }, store.read))).rejects.toThrow()
        }
        const small = await sealObject(chunks(Buffer.from('x')), { context: ctx, encryption: { algorithm: 'aws:kms', kms: embedded, keyId: 's3-sse/bucket/photos' } })
        await collect(small.stream)
        await expectCode(rewrap(small.result(), { kms: embedded, toKms: target, from: ctx, to: ctx }), 'S3SSE_BAD_ARGUMENT')
      } finally {
        await target.close()
      }
    }
  })
})
