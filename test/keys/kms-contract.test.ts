/**
 * The Kms contract, written once and run for every kind (like the crypto suite's
 * describe.each over backends): the embedded keyring; the AWS KMS API adapter against a real
 * `s3-sse kms serve` process; the PKCS#11 adapter against SoftHSM2 with each wrapping
 * mechanism. Each kind is a real component; nothing is mocked.
 */
import { randomBytes } from 'node:crypto'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { KmsAdmin } from '../../src/keys/kms.js'
import { openEmbeddedKms } from '../../src/keys/embedded.js'
import { AwsKms } from '../../src/keys/aws.js'
import { openPkcs11Kms } from '../../src/keys/pkcs11.js'
import { expectCode, tempDir } from '../helpers/objects.js'
import { startKmsServe, type KmsServeProcess } from '../helpers/kms-server.js'
import { createSoftHsmToken, requireOrSkip, softhsmMissing } from '../helpers/softhsm.js'

/** Every kind offers s3-sse the data path and the admin surface of `s3-sse kms`. */
type AnyKms = KmsAdmin

interface Kind {
  name: string
  /** Why it cannot run here (then it skips, or fails under S3SSE_REQUIRE_SERVICES=1). */
  missing?: () => string | undefined
  setup?: () => Promise<void>
  teardown?: () => Promise<void>
  open(): Promise<{ kms: AnyKms; cleanup(): Promise<void> }>
  /** AWS answers InvalidCiphertextException for a wrong context too, so the adapter cannot tell. */
  contextMismatch: string
  /** Whether the kind reports key versions in DataKey.keyVersion (AWS keeps them in the blob). */
  versionsInDataKey: boolean
}

let server: KmsServeProcess | undefined

const kinds: Kind[] = [
  {
    name: 'embedded',
    async open() {
      const { dir, cleanup } = tempDir('s3sse-contract-')
      const kms = await openEmbeddedKms(dir)
      return { kms, cleanup: async () => { await kms.close(); cleanup() } }
    },
    contextMismatch: 'S3SSE_KMS_CONTEXT_MISMATCH',
    versionsInDataKey: true,
  },
  {
    name: 'aws (kms serve)',
    async setup() {
      server = await startKmsServe()
    },
    async teardown() {
      await server?.stop()
    },
    async open() {
      const kms = new AwsKms({ endpoint: server!.url, region: 'us-east-1', credentials: server!.credentials, ca: server!.ca, maxAttempts: 2 })
      return { kms, cleanup: () => kms.close() }
    },
    contextMismatch: 'S3SSE_KMS_BAD_CIPHERTEXT',
    versionsInDataKey: false,
  },
  {
    // The same service, with contexts sent the way Amazon S3 sends them (aws:s3:arn).
    name: 'aws (kms serve, aws:s3:arn contexts)',
    async open() {
      const kms = new AwsKms({ endpoint: server!.url, credentials: server!.credentials, ca: server!.ca, maxAttempts: 2, contextStyle: 's3-arn' })
      return { kms, cleanup: () => kms.close() }
    },
    contextMismatch: 'S3SSE_KMS_BAD_CIPHERTEXT',
    versionsInDataKey: false,
  },
  ...(['kwp', 'gcm'] as const).map((mechanism): Kind => ({
    name: `pkcs11 (SoftHSM2, ${mechanism})`,
    missing: softhsmMissing,
    async open() {
      const token = createSoftHsmToken()
      const kms = await openPkcs11Kms({ module: token.module, token: token.label, pinFile: token.pinFile, mechanism })
      expect(kms.mechanism).toBe(mechanism)
      return { kms, cleanup: async () => { await kms.close(); token.cleanup() } }
    },
    contextMismatch: 'S3SSE_KMS_CONTEXT_MISMATCH',
    versionsInDataKey: true,
  })),
]

const ctx = { bucket: 'photos', key: '2024/cat.jpg' }

// The second aws kind reuses the first one's server: give it the same setup and teardown.
kinds[2].setup = kinds[1].setup
kinds[2].teardown = kinds[1].teardown

describe.each(kinds)('Kms contract: $name', (kind) => {
  const runs = requireOrSkip(kind.missing?.(), `Kms contract (${kind.name})`)
  let opened: Array<() => Promise<void>> = []

  beforeAll(async () => {
    if (runs) await kind.setup?.()
  }, 60_000)
  afterAll(async () => {
    if (runs) await kind.teardown?.()
  })
  afterEach(async () => {
    for (const c of opened.splice(0)) await c()
  })

  async function open(): Promise<AnyKms> {
    const { kms, cleanup } = await kind.open()
    opened.push(cleanup)
    return kms
  }

  const test = runs ? it : it.skip
  const unique = () => `bucket/${randomBytes(6).toString('hex')}`

  test('ensureKey creates a key by alias once, also when first calls race', async () => {
    const kms = await open()
    const alias = unique()
    const [a, b, c] = await Promise.all([kms.ensureKey(alias), kms.ensureKey(alias), kms.ensureKey(alias)])
    expect(b.keyId).toBe(a.keyId)
    expect(c.keyId).toBe(a.keyId)
    expect((await kms.ensureKey(alias)).keyId).toBe(a.keyId)
    expect((await kms.describeKey(`alias/${alias}`)).keyId).toBe(a.keyId)
    expect(a.enabled).toBe(true)
    const listed = (await kms.listKeys()).filter((k) => k.alias === `alias/${alias}`)
    expect(listed.map((k) => k.keyId)).toEqual([a.keyId])
  })

  test('a data key is 32 fresh bytes that decrypt only under the same context', async () => {
    const kms = await open()
    const key = await kms.ensureKey(unique())
    const dk = await kms.generateDataKey(key.keyId, ctx)
    const dk2 = await kms.generateDataKey(key.keyId, ctx)
    expect(dk.plaintext).toHaveLength(32)
    expect(Buffer.from(dk.plaintext).equals(Buffer.from(dk2.plaintext))).toBe(false)
    expect(Buffer.from(dk.wrapped).includes(Buffer.from(dk.plaintext))).toBe(false)
    expect((await kms.describeKey(dk.keyId)).keyId).toBe(key.keyId)
    expect(Buffer.from(await kms.decrypt(dk.wrapped, ctx))).toEqual(Buffer.from(dk.plaintext))
    // The order of the context's pairs does not matter; their values do.
    expect(Buffer.from(await kms.decrypt(dk.wrapped, { key: ctx.key, bucket: ctx.bucket }))).toEqual(Buffer.from(dk.plaintext))
    await expectCode(kms.decrypt(dk.wrapped, { ...ctx, key: 'other.jpg' }), kind.contextMismatch)
    await expectCode(kms.decrypt(dk.wrapped, { bucket: ctx.bucket }), kind.contextMismatch)
    await expectCode(kms.decrypt(dk.wrapped, { ...ctx, extra: 'x' }), kind.contextMismatch)
  })

  test('an altered, truncated or foreign blob is S3SSE_KMS_BAD_CIPHERTEXT', async () => {
    const kms = await open()
    const key = await kms.ensureKey(unique())
    const dk = await kms.generateDataKey(key.keyId, ctx)
    const flipped = new Uint8Array(dk.wrapped)
    flipped[flipped.length - 20] ^= 0x01
    await expectCode(kms.decrypt(flipped, ctx), 'S3SSE_KMS_BAD_CIPHERTEXT')
    await expectCode(kms.decrypt(dk.wrapped.subarray(0, dk.wrapped.length - 1), ctx), 'S3SSE_KMS_BAD_CIPHERTEXT')
    await expectCode(kms.decrypt(new Uint8Array(randomBytes(140)), ctx), 'S3SSE_KMS_BAD_CIPHERTEXT')
  })

  test('an unknown key is S3SSE_KMS_KEY_NOT_FOUND', async () => {
    const kms = await open()
    await expectCode(kms.generateDataKey(`alias/${unique()}`, ctx), 'S3SSE_KMS_KEY_NOT_FOUND')
    await expectCode(kms.describeKey('0b4a2f5e-4a51-4e55-9d0e-6f9c1e2a3b4c'), 'S3SSE_KMS_KEY_NOT_FOUND')
    await expectCode(kms.encrypt(`alias/${unique()}`, new Uint8Array(32), ctx), 'S3SSE_KMS_KEY_NOT_FOUND')
  })

  test('a disabled key neither wraps nor unwraps until it is enabled again', async () => {
    const kms = await open()
    const key = await kms.createKey({ alias: unique(), description: 'contract' })
    const dk = await kms.generateDataKey(key.keyId, ctx)
    expect((await kms.disableKey(key.keyId)).enabled).toBe(false)
    expect((await kms.describeKey(key.keyId)).enabled).toBe(false)
    await expectCode(kms.generateDataKey(key.keyId, ctx), 'S3SSE_KMS_KEY_DISABLED')
    await expectCode(kms.decrypt(dk.wrapped, ctx), 'S3SSE_KMS_KEY_DISABLED')
    await expectCode(kms.encrypt(key.keyId, dk.plaintext, ctx), 'S3SSE_KMS_KEY_DISABLED')
    expect((await kms.enableKey(key.keyId)).enabled).toBe(true)
    expect(Buffer.from(await kms.decrypt(dk.wrapped, ctx))).toEqual(Buffer.from(dk.plaintext))
  })

  test('rotation: new data keys under the new version, old blobs keep decrypting', async () => {
    const kms = await open()
    const key = await kms.createKey({ alias: unique() })
    const before = await kms.generateDataKey(key.keyId, ctx)
    const rotated = await kms.rotateKey(key.keyId)
    expect(rotated.versions).toBe(2)
    expect(rotated.current).toBe(2)
    const after = await kms.generateDataKey(key.keyId, ctx)
    if (kind.versionsInDataKey) {
      expect(before.keyVersion).toBe(1)
      expect(after.keyVersion).toBe(2)
    }
    expect(Buffer.from(await kms.decrypt(before.wrapped, ctx))).toEqual(Buffer.from(before.plaintext))
    expect(Buffer.from(await kms.decrypt(after.wrapped, ctx))).toEqual(Buffer.from(after.plaintext))
    // Rewrap moves an old blob to the current version without changing the data key.
    const moved = await kms.reEncrypt(before.wrapped, ctx, ctx)
    if (kind.versionsInDataKey) expect(moved.keyVersion).toBe(2)
    expect(Buffer.from(await kms.decrypt(moved.wrapped, ctx))).toEqual(Buffer.from(before.plaintext))
  })

  test('encrypt wraps a given data key; reEncrypt moves a blob to a new context and key', async () => {
    const kms = await open()
    const a = await kms.createKey({ alias: unique() })
    const b = await kms.createKey({ alias: unique() })
    const secret = new Uint8Array(randomBytes(32))
    const enc = await kms.encrypt(a.keyId, secret, ctx)
    expect((await kms.describeKey(enc.keyId)).keyId).toBe(a.keyId)
    expect(Buffer.from(await kms.decrypt(enc.wrapped, ctx))).toEqual(Buffer.from(secret))
    const moved = await kms.reEncrypt(enc.wrapped, ctx, { bucket: 'archive', key: 'cat.jpg' }, b.keyId)
    expect((await kms.describeKey(moved.keyId)).keyId).toBe(b.keyId)
    expect(Buffer.from(await kms.decrypt(moved.wrapped, { bucket: 'archive', key: 'cat.jpg' }))).toEqual(Buffer.from(secret))
    await expectCode(kms.decrypt(moved.wrapped, ctx), kind.contextMismatch)
    // The source blob must open under its own context first.
    await expectCode(kms.reEncrypt(enc.wrapped, { bucket: 'x', key: 'y' }, ctx), kind.contextMismatch)
    // Disabling the source key stops reEncrypt too.
    await kms.disableKey(a.keyId)
    await expectCode(kms.reEncrypt(enc.wrapped, ctx, ctx, b.keyId), 'S3SSE_KMS_KEY_DISABLED')
  })

  test('aliases name one key each, and keys are listed with theirs', async () => {
    const kms = await open()
    const alias = unique()
    const key = await kms.createKey({ alias, description: 'listed' })
    await expectCode(kms.createKey({ alias }), 'S3SSE_KMS_ALIAS_EXISTS')
    const found = (await kms.listKeys()).find((k) => k.keyId === key.keyId)
    expect(found?.alias).toBe(`alias/${alias}`)
    expect(found?.description).toBe('listed')
    expect((await kms.describeKey(alias)).keyId).toBe(key.keyId)
  })
})
