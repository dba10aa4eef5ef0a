/**
 * docs/FORMAT.md section 9 is enough to decrypt a data dir offline: the real server stores an
 * encrypted single-part object and an encrypted multipart one, stops, and this test reads them
 * back from meta.sqlite, objects/ and kms/ with better-sqlite3 and node:crypto only, following
 * the document (9.2 → 6.1 → 7.4 → 7.2 → 2 → 3), without any s3-sse code.
 */
import { createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterAll, describe, expect, it } from 'vitest'
import {
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  PutBucketEncryptionCommand,
  PutObjectCommand,
  UploadPartCommand,
} from '@aws-sdk/client-s3'
import { removeDir, startServer, stopAll, tempDir } from './helpers.js'

const hkdf = (ikm: Buffer, salt: Buffer, info: Buffer, n: number) => Buffer.from(hkdfSync('sha256', ikm, salt, info, n))

/** A cursor over bytes, big-endian (FORMAT.md: "All integers are unsigned and big-endian"). */
class Reader {
  off = 0
  constructor(readonly b: Buffer) {}
  bytes(n: number): Buffer {
    const out = this.b.subarray(this.off, this.off + n)
    this.off += n
    return out
  }
  u8(): number { return this.bytes(1)[0] }
  u16(): number { return this.bytes(2).readUInt16BE() }
  u32(): number { return this.bytes(4).readUInt32BE() }
  u64(): number { return Number(this.bytes(8).readBigUInt64BE()) }
}

interface SpecManifest {
  packageSize: number
  parts: Array<{ number: number; size: number; salt: Buffer }>
  wrappedKey: Buffer
  bucketKey: boolean
  context: Buffer
}

/** Section 6.1 (encrypted manifests). */
function parseManifest(m: Buffer): SpecManifest {
  const r = new Reader(m)
  expect(r.bytes(4).toString('latin1')).toBe('S3SM')
  expect(r.u8()).toBe(1)
  const flags = r.u8()
  expect(flags & 0x01).toBe(1)
  const packageSize = r.u32()
  const count = r.u16()
  const parts = Array.from({ length: count }, () => ({ number: r.u16(), size: r.u64(), salt: r.bytes(32) }))
  r.u8() // algorithm
  r.bytes(r.u16()) // key id
  r.u32() // key version
  const wrappedKey = r.bytes(r.u16())
  if (flags & 0x02) r.bytes(32)
  const ctxStart = r.off
  const pairs = r.u16()
  for (let i = 0; i < pairs; i++) {
    r.bytes(r.u16())
    r.bytes(r.u16())
  }
  const context = m.subarray(ctxStart, r.off)
  r.bytes(32) // MAC
  expect(r.off).toBe(m.length)
  return { packageSize, parts, wrappedKey, bucketKey: (flags & 0x02) !== 0, context }
}

/** Section 7.4: the keyring's body, opened with the root key. */
function openKeyring(dataDir: string): { keys: Array<{ id: string; versions: Array<{ version: number; material: string }> }> } {
  // The root key: S3SSE_KMS_ROOT_KEY when the server had it, else DIR/kms/root.key.
  const root = Buffer.from(process.env.S3SSE_KMS_ROOT_KEY ?? readFileSync(join(dataDir, 'kms', 'root.key'), 'utf8').trim(), 'base64')
  const file = readFileSync(join(dataDir, 'kms', 'keyring'))
  const header = file.subarray(0, 53)
  const okm = hkdf(root, header.subarray(21, 53), Buffer.from('s3-sse v1 keyring', 'latin1'), 44)
  const d = createDecipheriv('aes-256-gcm', okm.subarray(0, 32), okm.subarray(32, 44))
  d.setAAD(header)
  d.setAuthTag(file.subarray(file.length - 16))
  const body = Buffer.concat([d.update(file.subarray(53, file.length - 16)), d.final()])
  return JSON.parse(body.toString('utf8'))
}

/** Section 7.1/7.2: the DEK out of a wrapped key, under the canonical context `ctx`. */
function unwrap(wrapped: Buffer, ctx: Buffer, keyring: ReturnType<typeof openKeyring>): Buffer {
  const r = new Reader(wrapped)
  expect(r.u8()).toBe(1)
  const id = r.bytes(r.u8()).toString('latin1')
  const version = r.u32()
  const nonce = r.bytes(32)
  const check = r.bytes(16)
  const sealed = r.bytes(32)
  const tag = r.bytes(16)
  const material = Buffer.from(keyring.keys.find((k) => k.id === id)!.versions.find((v) => v.version === version)!.material, 'base64')
  const okm = hkdf(material, nonce, Buffer.from('s3-sse v1 wrap', 'latin1'), 76)
  expect(createHmac('sha256', okm.subarray(44, 76)).update(ctx).digest().subarray(0, 16).equals(check)).toBe(true)
  const d = createDecipheriv('aes-256-gcm', okm.subarray(0, 32), okm.subarray(32, 44))
  d.setAAD(Buffer.concat([wrapped.subarray(0, 54 + id.length), ctx]))
  d.setAuthTag(tag)
  return Buffer.concat([d.update(sealed), d.final()])
}

/** Sections 2 and 3: one part's plaintext from its blob. */
function openStream(dek: Buffer, salt: Buffer, number: number, size: number, packageSize: number, stored: Buffer): Buffer {
  const info = Buffer.concat([Buffer.from('s3-sse v1 stream\0', 'latin1'), Buffer.alloc(4)])
  info.writeUInt32BE(number, 17)
  const okm = hkdf(dek, salt, info, 39)
  const count = Math.max(1, Math.ceil(size / packageSize))
  const out: Buffer[] = []
  let off = 0
  for (let i = 0; i < count; i++) {
    const n = i === count - 1 ? size - i * packageSize : packageSize
    const nonce = Buffer.concat([okm.subarray(32, 39), Buffer.alloc(5)])
    nonce.writeUInt32BE(i, 7)
    nonce[11] = i === count - 1 ? 1 : 0
    const d = createDecipheriv('aes-256-gcm', okm.subarray(0, 32), nonce)
    d.setAuthTag(stored.subarray(off + n, off + n + 16))
    out.push(d.update(stored.subarray(off, off + n)), d.final())
    off += n + 16
  }
  expect(off).toBe(stored.length)
  return Buffer.concat(out)
}

describe('a data dir decrypted offline from docs/FORMAT.md section 9', () => {
  const dataDir = tempDir('s3sse-offline-')
  afterAll(async () => {
    await stopAll()
    removeDir(dataDir)
  })

  it('single-part and multipart objects read back from meta.sqlite, objects/ and the keyring', async () => {
    const server = await startServer({ dataDir })
    const s3 = server.client()
    await s3.send(new CreateBucketCommand({ Bucket: 'vault' }))
    await s3.send(new PutBucketEncryptionCommand({
      Bucket: 'vault', ServerSideEncryptionConfiguration: { Rules: [{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms' } }] },
    }))
    const single = randomBytes(200_000)
    await s3.send(new PutObjectCommand({ Bucket: 'vault', Key: 'single', Body: single }))
    const parts = [randomBytes(5 * 1024 * 1024), randomBytes(70_000)]
    const up = await s3.send(new CreateMultipartUploadCommand({ Bucket: 'vault', Key: 'dir/multi' }))
    const etags: string[] = []
    for (const [i, body] of parts.entries()) {
      etags.push((await s3.send(new UploadPartCommand({ Bucket: 'vault', Key: 'dir/multi', UploadId: up.UploadId, PartNumber: i + 1, Body: body }))).ETag!)
    }
    await s3.send(new CompleteMultipartUploadCommand({
      Bucket: 'vault', Key: 'dir/multi', UploadId: up.UploadId,
      MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) },
    }))
    s3.destroy()
    expect(await server.stop()).toBe(0)

    const keyring = openKeyring(dataDir)
    const db = new Database(join(dataDir, 'meta.sqlite'), { readonly: true })
    try {
      for (const [key, plaintext] of [['single', single], ['dir/multi', Buffer.concat(parts)]] as const) {
        const row = db.prepare('SELECT manifest, files FROM objects WHERE bucket = ? AND key = ?').get('vault', key) as { manifest: Buffer; files: string }
        const m = parseManifest(row.manifest)
        expect(m.bucketKey).toBe(false)
        const dek = unwrap(m.wrappedKey, m.context, keyring)
        const blobs = JSON.parse(row.files) as string[]
        expect(blobs).toHaveLength(m.parts.length)
        const out = m.parts.map((p, i) => {
          expect(blobs[i]).toMatch(/^[0-9a-f]{32}$/)
          const stored = readFileSync(join(dataDir, 'objects', blobs[i].slice(0, 2), blobs[i]))
          return openStream(dek, p.salt, p.number, p.size, m.packageSize, stored)
        })
        expect(Buffer.concat(out).equals(plaintext)).toBe(true)
      }
    } finally {
      db.close()
    }
  })
})
