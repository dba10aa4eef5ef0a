/**
 * The object layer (src/object/) over a BlobStore: sealed objects and parts staged as blobs,
 * and plaintext read back from them. Storage-neutral: it sees only the BlobStore interface.
 */
import * as objectLayer from '../object/index.js'
import type { Kms } from '../keys/kms.js'
import type { EncryptionRequest, Manifest, ObjectContext, PartRecord, UploadState } from '../object/index.js'
import type { BlobId, BlobStore, StagedBlob } from './store/blob.js'

/** The KMS the object layer needs to read or extend what was written. */
export interface KmsAccess {
  kms?: Kms
  /** An SSE-C object's customer key (the request's). */
  customerKey?: Uint8Array
}

/** A staged blob and what the object layer says it holds (a manifest, a part record). */
export interface Staged<T> {
  blob: StagedBlob
  result: T
}

/** A stored object as the object layer reads it. */
export interface StoredObject {
  manifest: Manifest
  blobs: BlobId[]
  context: ObjectContext
}

/** Seals a single-part object into a staged blob. The source is consumed fully. */
export async function stageObject(
  blobs: BlobStore,
  source: AsyncIterable<Buffer>,
  opts: { context: ObjectContext; encryption: EncryptionRequest | null },
): Promise<Staged<Manifest>> {
  const sealed = await objectLayer.sealObject(source, { context: opts.context, encryption: opts.encryption })
  const blob = await blobs.stage(sealed.stream)
  return { blob, result: sealed.result() }
}

/** Seals one part of an upload into a staged blob. */
export async function stagePart(
  blobs: BlobStore,
  upload: UploadState,
  access: KmsAccess,
  partNumber: number,
  source: AsyncIterable<Buffer>,
): Promise<Staged<PartRecord>> {
  const sealed = await objectLayer.sealPart(upload, access, partNumber, source)
  const blob = await blobs.stage(sealed.stream)
  return { blob, result: sealed.result() }
}

/**
 * UploadPartCopy: a range (inclusive) of a stored object becomes a part, re-sealed for the
 * upload by the object layer's copyPartRange; `tap` sees the copied plaintext.
 */
export async function stageCopiedPart(
  blobs: BlobStore,
  src: StoredObject,
  range: { start: number; end: number },
  upload: UploadState,
  access: KmsAccess,
  partNumber: number,
  tap: (chunk: Buffer) => void,
  /** Reading the source, when it takes another key than the upload (SSE-C on either side). */
  sourceAccess: KmsAccess = access,
): Promise<Staged<PartRecord>> {
  const reader = await blobs.open(src.blobs)
  try {
    const sealed = await objectLayer.copyPartRange(src.manifest, { context: src.context, ...sourceAccess }, range, reader.read, upload, access, partNumber, tap)
    const blob = await blobs.stage(sealed.stream)
    return { blob, result: sealed.result() }
  } finally {
    await reader.close()
  }
}

/**
 * Plaintext of an object (or of one inclusive range of it). The blobs are opened before the
 * first byte is returned, and the manifest (and first package) checked, so a failure is still
 * an S3 error and not a truncated 200; they are closed when the stream ends or is abandoned.
 */
export async function readObject(
  blobs: BlobStore,
  obj: StoredObject,
  access: KmsAccess,
  range?: { start: number; end: number } | null,
): Promise<AsyncIterable<Buffer>> {
  const reader = await blobs.open(obj.blobs)
  const m = obj.manifest
  const plain =
    range != null
      ? objectLayer.openRange(m, { context: obj.context, ...access }, range.start, range.end, reader.read)
      : m.size === 0
        ? (async function* () {})()
        : objectLayer.openObject(m, { context: obj.context, ...access }, reader.read)
  const it = plain[Symbol.asyncIterator]()
  let first: IteratorResult<Buffer>
  try {
    first = await it.next()
  } catch (err) {
    await reader.close()
    throw err
  }
  return (async function* () {
    try {
      if (first.done) return
      yield first.value
      for (let r = await it.next(); !r.done; r = await it.next()) yield r.value
    } finally {
      await it.return?.()
      await reader.close()
    }
  })()
}

/**
 * Plaintext of each part of an object in turn, from one open reader (a replica sealed part by
 * part): `part(i)` is part i's plaintext; `close` releases the blobs.
 */
export async function openParts(blobs: BlobStore, obj: StoredObject, access: KmsAccess): Promise<{ part(index: number): AsyncIterable<Buffer>; close(): Promise<void> }> {
  const reader = await blobs.open(obj.blobs)
  const starts: number[] = []
  let offset = 0
  for (const p of obj.manifest.parts) {
    starts.push(offset)
    offset += p.size
  }
  return {
    part(index) {
      const size = obj.manifest.parts[index].size
      if (size === 0) return (async function* () {})()
      return objectLayer.openRange(obj.manifest, { context: obj.context, ...access }, starts[index], starts[index] + size - 1, reader.read)
    },
    close: () => reader.close(),
  }
}

export async function* tapStream(source: AsyncIterable<Buffer>, tap: (chunk: Buffer) => void): AsyncGenerator<Buffer> {
  for await (const chunk of source) {
    tap(chunk)
    yield chunk
  }
}
