/**
 * verifyObject (the scrub job's check): every package of every part, each damaged part
 * reported with its first bad package, the manifest and wrapped key checked first, no
 * plaintext of an encrypted object ever handed out, and failures of the KMS told apart from
 * damage of the bytes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { TAG_SIZE } from '../../src/crypto/constants.js'
import { openEmbeddedKms, type EmbeddedKms } from '../../src/keys/embedded.js'
import { ROOT_KEY_ENV } from '../../src/keys/keyring.js'
import {
  completeUpload, encodeManifest, decodeManifest, sealObject, sealPart, startUpload, verifyObject,
  type EncryptionRequest, type Manifest, type ObjectContext, type PartRecord,
} from '../../src/object/index.js'
import { FlakyKms, MemoryStore, chunks, collect, expectCode, randomData, tempDir } from '../helpers/objects.js'

const P = 64
const SEALED = P + TAG_SIZE
const ctx: ObjectContext = { bucket: 'bucket-v', key: 'dir/obj' }

let dir: string
let cleanup: () => void
let kms: EmbeddedKms

beforeAll(async () => {
  delete process.env[ROOT_KEY_ENV]
  ;({ dir, cleanup } = tempDir('s3sse-verify-'))
  kms = await openEmbeddedKms(dir)
  await kms.createKey({ alias: 'verify' })
})
afterAll(async () => {
  await kms.close()
  cleanup()
})

const enc = (): EncryptionRequest => ({ algorithm: 'aws:kms', kms, keyId: 'verify' })

async function multipart(sizes: number[], encryption: EncryptionRequest | null) {
  const upload = await startUpload({ context: ctx, encryption, packageSize: P })
  const store = new MemoryStore()
  const records: PartRecord[] = []
  for (let i = 0; i < sizes.length; i++) {
    const out = await sealPart(upload, { kms }, i + 1, chunks(randomData(sizes[i]), 7))
    store.parts.push(await collect(out.stream))
    records.push(out.result())
  }
  return { store, manifest: await completeUpload(upload, { kms }, records) }
}

async function single(size: number, encryption: EncryptionRequest | null) {
  const out = await sealObject(chunks(randomData(size), 13), { context: ctx, encryption, packageSize: P })
  const store = new MemoryStore()
  store.parts.push(await collect(out.stream))
  return { store, manifest: out.result() }
}

describe('verifyObject', () => {
  it('finds nothing wrong with intact objects of every shape, and reads every stored byte', async () => {
    for (const sizes of [[0], [1], [P - 1], [P], [P + 1], [5 * P + 3], [3 * P, 0, 2 * P + 1]]) {
      const { store, manifest } = sizes.length === 1 ? await single(sizes[0], enc()) : await multipart(sizes, enc())
      expect(await verifyObject(manifest, { context: ctx, kms }, store.read), String(sizes)).toEqual([])
      expect(store.bytesRead).toBe(manifest.parts.reduce((n, p) => n + p.storedSize, 0))
    }
  })

  it('reports each damaged part with its first bad package, and checks the parts after it', async () => {
    const { store, manifest } = await multipart([10 * P, 10 * P, 4 * P + 5], enc())
    // Part 2: packages 3 and 7 flipped (3 is reported); part 3: package 1.
    store.parts[1][3 * SEALED + 5] ^= 1
    store.parts[1][7 * SEALED + 1] ^= 0x80
    store.parts[2][1 * SEALED + P] ^= 1 // in the tag
    const found = await verifyObject(manifest, { context: ctx, kms }, store.read)
    expect(found.map(({ part, package: pkg, code }) => ({ part, pkg, code }))).toEqual([
      { part: 2, pkg: 3, code: 'S3SSE_AUTH_FAILED' },
      { part: 3, pkg: 1, code: 'S3SSE_AUTH_FAILED' },
    ])
  })

  it('reports a cut, an extended and a swapped part', async () => {
    const { store, manifest } = await multipart([3 * P, 3 * P], enc())
    const cut = new MemoryStore()
    cut.parts = [store.parts[0].subarray(0, 2 * SEALED), store.parts[1]]
    const short = await verifyObject(manifest, { context: ctx, kms }, cut.read)
    expect(short).toEqual([expect.objectContaining({ part: 1, code: 'S3SSE_TRUNCATED' })])
    const swapped = new MemoryStore()
    swapped.parts = [store.parts[1], store.parts[0]]
    expect((await verifyObject(manifest, { context: ctx, kms }, swapped.read)).map((d) => [d.part, d.package, d.code])).toEqual([
      [1, 0, 'S3SSE_AUTH_FAILED'],
      [2, 0, 'S3SSE_AUTH_FAILED'],
    ])
  })

  it('reports an altered manifest or one moved to another name as damage of the manifest', async () => {
    const { store, manifest } = await single(3 * P, enc())
    const bytes = Buffer.from(encodeManifest(manifest))
    bytes[bytes.length - 1] ^= 1 // the MAC
    const altered = decodeManifest(bytes)
    expect(await verifyObject(altered, { context: ctx, kms }, store.read)).toEqual([
      expect.objectContaining({ part: null, package: null, code: 'S3SSE_MANIFEST_AUTH_FAILED' }),
    ])
    expect(await verifyObject(manifest, { context: { ...ctx, key: 'elsewhere' }, kms }, store.read)).toEqual([
      expect.objectContaining({ part: null, code: 'S3SSE_KMS_CONTEXT_MISMATCH' }),
    ])
    expect(store.bytesRead).toBe(0)
  })

  it('hands no plaintext of an encrypted object to anyone; a plaintext object’s bytes go to the callback', async () => {
    const sealed = await single(4 * P, enc())
    let handed = 0
    expect(await verifyObject(sealed.manifest, { context: ctx, kms }, sealed.store.read, () => handed++)).toEqual([])
    expect(handed).toBe(0)

    const plain = await multipart([2 * P, P + 1], null)
    const seen: Buffer[][] = [[], []]
    expect(await verifyObject(plain.manifest, { context: ctx }, plain.store.read, (i, c) => seen[i].push(Buffer.from(c)))).toEqual([])
    expect(seen.map((s) => Buffer.concat(s))).toEqual(plain.store.parts)
    const cut = new MemoryStore()
    cut.parts = [plain.store.parts[0], plain.store.parts[1].subarray(0, P)]
    expect(await verifyObject(plain.manifest, { context: ctx }, cut.read, () => {})).toEqual([expect.objectContaining({ part: 2, code: 'S3SSE_TRUNCATED' })])
  })

  it('throws (it is no damage) when the KMS does not answer or the key is disabled', async () => {
    const { store, manifest } = await single(P, enc())
    const flaky = new FlakyKms(kms)
    flaky.down = true
    await expectCode(verifyObject(manifest, { context: ctx, kms: flaky.kms }, store.read), 'S3SSE_KMS_UNAVAILABLE')
    const other = await kms.createKey({ alias: 'soon-disabled' })
    const m2 = (await single(P, { algorithm: 'aws:kms', kms, keyId: other.keyId })) as { store: MemoryStore; manifest: Manifest }
    await kms.disableKey(other.keyId)
    await expectCode(verifyObject(m2.manifest, { context: ctx, kms }, m2.store.read), 'S3SSE_KMS_KEY_DISABLED')
  })
})
