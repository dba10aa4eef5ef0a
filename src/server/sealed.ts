/**
 * The object layer (src/object/) over a BlobStore: sealed objects and parts staged as blobs,
 * and plaintext read back from them. Storage-neutral: it sees only the BlobStore interface.
 */
import { S3sseError } from '../errors.js'
import * as objectLayer from '../object/index.js'
import type { Kms } from '../keys/kms.js'
import type { Damage, EncryptionRequest, Manifest, ObjectContext, PartRecord, UploadState } from '../object/index.js'
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
  return closingIterable(first, it, () => reader.close())
}

/**
 * The rest of a stream whose first chunk was pulled already, calling `close` exactly once:
 * at its end, on an error, or when the consumer gives up — also before reading anything
 * (an async generator that never started would skip its finally, leaving the blobs open).
 */
function closingIterable(first: IteratorResult<Buffer>, it: AsyncIterator<Buffer>, close: () => Promise<void>): AsyncIterable<Buffer> & AsyncIterator<Buffer> {
  let pending: IteratorResult<Buffer> | undefined = first
  let finished = false
  const finish = async (stopSource: boolean) => {
    if (finished) return
    finished = true
    try {
      if (stopSource) await it.return?.()
    } finally {
      await close()
    }
  }
  const self: AsyncIterable<Buffer> & AsyncIterator<Buffer> = {
    [Symbol.asyncIterator]: () => self,
    async next() {
      if (finished) return { done: true, value: undefined }
      let r: IteratorResult<Buffer>
      try {
        r = pending ?? (await it.next())
      } catch (err) {
        await finish(false)
        throw err
      }
      pending = undefined
      if (r.done) await finish(false)
      return r
    },
    async return() {
      await finish(true)
      return { done: true, value: undefined }
    },
  }
  return self
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

/**
 * A stored object's plaintext sealed under `encryption` into new staged blobs for `to`, part by
 * part, so a multipart object keeps its parts (part numbers, x-amz-mp-parts-count, composite
 * checksums): a plaintext replica into an encrypted bucket, the encrypt job. `tap(i, chunk)`
 * sees part i's plaintext as it is read. On failure nothing staged stays.
 */
export async function stageSealedCopy(
  blobs: BlobStore,
  src: StoredObject,
  access: KmsAccess,
  to: ObjectContext,
  encryption: EncryptionRequest,
  tap?: (partIndex: number, chunk: Buffer) => void,
): Promise<{ manifest: Manifest; blobs: StagedBlob[] }> {
  const m = src.manifest
  const parts = await openParts(blobs, src, access)
  const plain = (i: number) => (tap ? tapStream(parts.part(i), (chunk) => tap(i, chunk)) : parts.part(i))
  const staged: StagedBlob[] = []
  try {
    if (m.parts.length === 1) {
      const one = await stageObject(blobs, plain(0), { context: to, encryption })
      staged.push(one.blob)
      return { manifest: one.result, blobs: staged }
    }
    const upload = await objectLayer.startUpload({ context: to, encryption })
    const records: PartRecord[] = []
    for (const [i, part] of m.parts.entries()) {
      const sealed = await stagePart(blobs, upload, access, part.number, plain(i))
      staged.push(sealed.blob)
      records.push(sealed.result)
    }
    return { manifest: await objectLayer.completeUpload(upload, access, records), blobs: staged }
  } catch (err) {
    await blobs.discard(staged)
    throw err
  } finally {
    await parts.close()
  }
}

/**
 * Checks every stored byte of an object without releasing plaintext (the object layer's
 * verifyObject over the blobs); a plaintext object's bytes go to `plain`.
 */
export async function verifyStored(blobs: BlobStore, obj: StoredObject, access: KmsAccess, plain?: (partIndex: number, chunk: Buffer) => void): Promise<Damage[]> {
  const reader = await blobs.open(obj.blobs)
  try {
    return await objectLayer.verifyObject(obj.manifest, { context: obj.context, ...access }, reader.read, plain)
  } finally {
    await reader.close()
  }
}

export async function* tapStream(source: AsyncIterable<Buffer>, tap: (chunk: Buffer) => void): AsyncGenerator<Buffer> {
  for await (const chunk of source) {
    tap(chunk)
    yield chunk
  }
}

/**
 * The manifest of a stored object, checked against the row that carries it. Every size a
 * reader uses comes from the manifest — authenticated by its MAC under the data key when the
 * object is encrypted (checked as the first bytes are read) — and the row's own copies must
 * agree, so a row edited or damaged in the database is an error (S3SSE_BAD_MANIFEST, a logged
 * 500), never a short or padded body, nor an encrypted object served as a plaintext one.
 *
 * What the row holds beyond this is not authenticated, by design: the parts count is only
 * reported (part ranges come from the manifest); the ETag of an encrypted
 * object is an opaque random value (changing it changes only what conditional requests
 * compare against), and a stored checksum is what a client verifies the data against (a
 * changed one makes that verification fail; it never makes wrong data pass).
 */
export function checkedManifest(row: { bucket: string; key: string; size: number; partsCount: number; manifest: Uint8Array; encryption?: { algorithm: string } }): Manifest {
  const m = objectLayer.decodeManifest(row.manifest)
  const differ = (what: string, inRow: unknown, inManifest: unknown): never => {
    throw new S3sseError('S3SSE_BAD_MANIFEST', `the row of ${row.bucket}/${row.key} says ${what} ${String(inRow)} but its manifest says ${String(inManifest)}`)
  }
  if (row.size !== m.size) differ('size', row.size, m.size)
  // The row's parts count is S3's (x-amz-mp-parts-count): the manifest's streams, or 1 for a
  // copy that kept its source's streams. It sizes nothing (part ranges come from the manifest).
  if (row.partsCount !== m.parts.length && row.partsCount !== 1) differ('parts count', row.partsCount, m.parts.length)
  const rowAlgorithm = row.encryption?.algorithm ?? 'none'
  const manifestAlgorithm = m.encryption?.algorithm ?? 'none'
  if (rowAlgorithm !== manifestAlgorithm) differ('encryption', rowAlgorithm, manifestAlgorithm)
  return m
}
