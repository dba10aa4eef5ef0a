/**
 * The embedded blob store (files) under the object layer, with encryption on: single objects,
 * ranges across packages and parts, multipart assembled from part blobs without copying,
 * copied parts, and a tampered file.
 */
import { randomBytes } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openEmbeddedKms, type EmbeddedKms } from '../../src/keys/index.js'
import { completeUpload as finishUpload, startUpload as beginUpload, type EncryptionRequest, type Manifest } from '../../src/object/index.js'
import { readObject, stageCopiedPart, stageObject, stagePart } from '../../src/server/sealed.js'
import { FileBlobStore } from '../../src/server/store/files.js'
import { removeDir, tempDir } from './helpers.js'

let dir: string
let files: FileBlobStore
let kms: EmbeddedKms
let encryption: EncryptionRequest

async function* chunks(data: Buffer, size = 100_000): AsyncGenerator<Buffer> {
  for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size)
}

async function collect(it: AsyncIterable<Buffer>): Promise<Buffer> {
  const out: Buffer[] = []
  for await (const c of it) out.push(c)
  return Buffer.concat(out)
}

beforeAll(async () => {
  dir = tempDir()
  files = await FileBlobStore.open(dir)
  kms = await openEmbeddedKms(dir, { rootKey: randomBytes(32) })
  encryption = { algorithm: 'aws:kms', kms, keyId: 'store-test', createKey: true }
})

afterAll(() => removeDir(dir))

describe('file store over the object layer, encrypted', () => {
  const context = { bucket: 'b', key: 'k' }

  it('stores sealed bytes and reads back the whole object and ranges', async () => {
    const data = randomBytes(300_000)
    const staged = await stageObject(files, chunks(data), { context, encryption })
    await files.publish([staged.blob])
    const m: Manifest = staged.result
    expect(m.encryption?.algorithm).toBe('aws:kms')
    const stored = readFileSync(files.pathOf(staged.blob.id))
    expect(stored.length).toBe(m.parts[0].storedSize)
    expect(stored.length).toBeGreaterThan(data.length) // tags
    expect(stored.includes(data.subarray(1000, 1064))).toBe(false) // not plaintext
    const obj = { manifest: m, blobs: [staged.blob.id], context }
    expect((await collect(await readObject(files, obj, { kms }))).equals(data)).toBe(true)
    for (const [start, end] of [[0, 0], [65535, 65537], [299_999, 299_999], [1, 200_000]]) {
      expect((await collect(await readObject(files, obj, { kms }, { start, end }))).equals(data.subarray(start, end + 1))).toBe(true)
    }
  })

  it('assembles multipart objects from part files and copied ranges', async () => {
    const mp = { bucket: 'b', key: 'mp' }
    const upload = await beginUpload({ context: mp, encryption })
    const p1 = randomBytes(70_000)
    const p2 = randomBytes(1)
    const s1 = await stagePart(files, upload, { kms }, 1, chunks(p1))
    const s2 = await stagePart(files, upload, { kms }, 2, chunks(p2))
    const srcData = randomBytes(200_000)
    const src = await stageObject(files, chunks(srcData), { context, encryption })
    await files.publish([s1.blob, s2.blob, src.blob])
    let tapped = 0
    const s3 = await stageCopiedPart(
      files,
      { manifest: src.result, blobs: [src.blob.id], context },
      { start: 10, end: 150_009 },
      upload,
      { kms },
      3,
      (c) => (tapped += c.length),
    )
    await files.publish([s3.blob])
    expect(tapped).toBe(150_000)
    const m = await finishUpload(upload, { kms }, [s1.result, s2.result, s3.result])
    const obj = { manifest: m, blobs: [s1.blob.id, s2.blob.id, s3.blob.id], context: mp }
    const whole = Buffer.concat([p1, p2, srcData.subarray(10, 150_010)])
    expect((await collect(await readObject(files, obj, { kms }))).equals(whole)).toBe(true)
    const across = await collect(await readObject(files, obj, { kms }, { start: 69_990, end: 70_010 }))
    expect(across.equals(whole.subarray(69_990, 70_011))).toBe(true)
  })

  it('refuses a tampered file before sending any plaintext', async () => {
    const data = randomBytes(200_000)
    const staged = await stageObject(files, chunks(data), { context, encryption })
    await files.publish([staged.blob])
    const path = files.pathOf(staged.blob.id)
    const bytes = readFileSync(path)
    bytes[10] ^= 1
    writeFileSync(path, bytes)
    const obj = { manifest: staged.result, blobs: [staged.blob.id], context }
    await expect(readObject(files, obj, { kms })).rejects.toMatchObject({ code: 'S3SSE_AUTH_FAILED' })
  })
})
