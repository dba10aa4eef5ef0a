/**
 * TEMPORARY stand-in for src/object (the object layer is being built at the same time):
 * the plaintext-only subset of /work/notes/OBJECT-CONTRACT.md, with the contract's names
 * and shapes, so src/server/store.ts is written against the real API. It encrypts nothing
 * and is deleted when src/object lands (store.ts then imports from '../object/index.js').
 */
import { S3sseError } from '../errors.js'

export interface ObjectContext {
  bucket: string
  key: string
}
export interface EncryptionRequest {
  algorithm: 'aws:kms' | 'AES256'
  kms: unknown
  keyId: string
  createKey?: boolean
  bucketKey?: boolean
  extraContext?: Record<string, string>
}
export interface Manifest {
  version: 1
  packageSize: number
  size: number
  parts: Array<{ number: number; size: number; storedSize: number; salt?: Uint8Array }>
  encryption?: { algorithm: 'aws:kms' | 'AES256'; keyId: string; keyVersion: number; wrappedKey: Uint8Array; bucketKey?: boolean; context: Record<string, string> }
  mac?: Uint8Array
}
export interface SealedOutput<T> {
  stream: AsyncIterable<Buffer>
  result(): T
}
export type ReadStored = (partIndex: number, start: number, end: number) => AsyncIterable<Uint8Array>
export interface UploadState {
  context: ObjectContext
  packageSize: number
}
export interface PartRecord {
  number: number
  size: number
  storedSize: number
}

const PACKAGE_SIZE = 65536

function refuseEncryption(encryption: EncryptionRequest | null | undefined): void {
  if (encryption) throw new S3sseError('S3SSE_NOT_IMPLEMENTED', 'Encryption needs the object layer (src/object).')
}

function passThrough<T>(source: AsyncIterable<Uint8Array>, done: (size: number) => T): SealedOutput<T> {
  let size = 0
  let finished = false
  return {
    stream: (async function* () {
      for await (const chunk of source) {
        size += chunk.length
        yield Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
      }
      finished = true
    })(),
    result() {
      if (!finished) throw new S3sseError('S3SSE_BAD_ARGUMENT', 'result() before the stream was consumed')
      return done(size)
    },
  }
}

export function encodeManifest(m: Manifest): Uint8Array {
  return Buffer.from(JSON.stringify(m), 'utf8')
}

export function decodeManifest(bytes: Uint8Array): Manifest {
  try {
    return JSON.parse(Buffer.from(bytes).toString('utf8')) as Manifest
  } catch (err) {
    throw new S3sseError('S3SSE_BAD_MANIFEST', 'manifest is not valid', { cause: err })
  }
}

export async function sealObject(
  source: AsyncIterable<Uint8Array>,
  opts: { context: ObjectContext; encryption?: EncryptionRequest | null; packageSize?: number },
): Promise<SealedOutput<Manifest>> {
  refuseEncryption(opts.encryption)
  return passThrough(source, (size) => ({
    version: 1,
    packageSize: opts.packageSize ?? PACKAGE_SIZE,
    size,
    parts: [{ number: 1, size, storedSize: size }],
  }))
}

export async function* openRange(
  m: Manifest,
  _opts: { context: ObjectContext; kms?: unknown },
  start: number,
  endInclusive: number,
  read: ReadStored,
): AsyncIterable<Buffer> {
  if (m.size === 0 || endInclusive < start) return
  if (start < 0 || endInclusive >= m.size) throw new S3sseError('S3SSE_BAD_RANGE', 'range outside the object')
  let offset = 0
  for (let i = 0; i < m.parts.length; i++) {
    const part = m.parts[i]
    const partStart = offset
    const partEnd = offset + part.size // exclusive
    offset = partEnd
    if (partEnd <= start || partStart > endInclusive) continue
    const from = Math.max(start, partStart) - partStart
    const to = Math.min(endInclusive + 1, partEnd) - partStart
    for await (const chunk of read(i, from, to)) yield Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
  }
}

export function openObject(m: Manifest, opts: { context: ObjectContext; kms?: unknown }, read: ReadStored): AsyncIterable<Buffer> {
  return openRange(m, opts, 0, m.size - 1, read)
}

export async function startUpload(opts: {
  context: ObjectContext
  encryption?: EncryptionRequest | null
  packageSize?: number
}): Promise<UploadState> {
  refuseEncryption(opts.encryption)
  return { context: opts.context, packageSize: opts.packageSize ?? PACKAGE_SIZE }
}

export async function sealPart(
  _upload: UploadState,
  _opts: { kms?: unknown },
  partNumber: number,
  source: AsyncIterable<Uint8Array>,
): Promise<SealedOutput<PartRecord>> {
  return passThrough(source, (size) => ({ number: partNumber, size, storedSize: size }))
}

export async function copyPartRange(
  src: Manifest,
  srcOpts: { context: ObjectContext; kms?: unknown },
  srcRange: { start: number; end: number },
  readSrc: ReadStored,
  upload: UploadState,
  opts: { kms?: unknown },
  partNumber: number,
): Promise<SealedOutput<PartRecord>> {
  return sealPart(upload, opts, partNumber, openRange(src, srcOpts, srcRange.start, srcRange.end, readSrc))
}

export async function completeUpload(upload: UploadState, _opts: { kms?: unknown }, parts: PartRecord[]): Promise<Manifest> {
  return {
    version: 1,
    packageSize: upload.packageSize,
    size: parts.reduce((n, p) => n + p.size, 0),
    parts: parts.map((p) => ({ number: p.number, size: p.size, storedSize: p.storedSize })),
  }
}
