/**
 * Object storage of the embedded default: the object layer (src/object) turns plaintext
 * into stored bytes and a manifest; this module puts those bytes in files.
 *
 * A file is written under tmp/, fsynced, and renamed into objects/ only once the request
 * that produced it has been fully verified; its metadata row is written after that (db.ts).
 * File names are random ids, never object keys, so no key can reach outside the data dir.
 * Startup removes tmp/ leftovers and files that no row references (a crash between the
 * rename and the commit, or between a delete's commit and its unlink).
 */
import { randomBytes } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import { link, mkdir, open, readdir, rename, rm, unlink, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { Readable } from 'node:stream'
import * as objectLayer from '../object/index.js'
import type { EncryptionRequest, Manifest, ObjectContext, PartRecord, ReadStored, UploadState } from '../object/index.js'
import type { Kms } from '../keys/kms.js'

export type { EncryptionRequest, Manifest, ObjectContext, PartRecord, UploadState }
export const { encodeManifest, decodeManifest } = objectLayer

/**
 * Reads of stored files: 16 sealed packages of the default size (16 × (64 KiB + 16)), so
 * the chunks of a default-sized encrypted object line up with the stream layer's batches
 * and are opened in place, never copied.
 */
const READ_CHUNK = 16 * (65536 + 16)

/** A file written to tmp/ and fsynced, not yet visible. */
export interface StagedFile {
  id: string
  tmpPath: string
}

export interface Staged<T> {
  file: StagedFile
  result: T
}

export class FileStore {
  readonly tmpDir: string
  readonly objectsDir: string
  private readonly madeDirs = new Set<string>()

  constructor(readonly dataDir: string) {
    this.tmpDir = join(dataDir, 'tmp')
    this.objectsDir = join(dataDir, 'objects')
  }

  async init(): Promise<void> {
    await rm(this.tmpDir, { recursive: true, force: true })
    await mkdir(this.tmpDir, { recursive: true, mode: 0o700 })
    await mkdir(this.objectsDir, { recursive: true, mode: 0o700 })
  }

  private dirOf(id: string): string {
    return join(this.objectsDir, id.slice(0, 2))
  }

  pathOf(id: string): string {
    return join(this.dirOf(id), id)
  }

  /** Writes a stream to a new temporary file and fsyncs it. */
  async stage(stream: AsyncIterable<Buffer>): Promise<StagedFile> {
    const id = randomBytes(16).toString('hex')
    const tmpPath = join(this.tmpDir, id)
    try {
      await pipeline(Readable.from(stream, { objectMode: false }), createWriteStream(tmpPath, { flags: 'wx', mode: 0o600, flush: true, highWaterMark: READ_CHUNK }))
    } catch (err) {
      await rm(tmpPath, { force: true })
      throw err
    }
    return { id, tmpPath }
  }

  /**
   * New names for the files of a stored object, staged like written ones: hard links, so a
   * copy whose bytes do not change (a re-wrapped encrypted object) copies no data, and
   * either object can be deleted without the other losing its files.
   */
  async linkCopies(ids: string[]): Promise<StagedFile[]> {
    const staged: StagedFile[] = []
    try {
      for (const id of ids) {
        const copy = randomBytes(16).toString('hex')
        const tmpPath = join(this.tmpDir, copy)
        await link(this.pathOf(id), tmpPath)
        staged.push({ id: copy, tmpPath })
      }
    } catch (err) {
      await this.discard(staged)
      throw err
    }
    return staged
  }

  /** Makes staged files durable under their final names (rename, then fsync the directory). */
  async publish(files: StagedFile[]): Promise<void> {
    const dirs = new Set<string>()
    for (const f of files) {
      const dir = this.dirOf(f.id)
      if (!this.madeDirs.has(dir)) {
        await mkdir(dir, { recursive: true, mode: 0o700 })
        this.madeDirs.add(dir)
      }
      await rename(f.tmpPath, this.pathOf(f.id))
      dirs.add(dir)
    }
    for (const dir of dirs) await fsyncDir(dir)
  }

  async discard(files: StagedFile[]): Promise<void> {
    await Promise.all(files.map((f) => rm(f.tmpPath, { force: true })))
  }

  /** Best-effort removal of files no row references any more (the startup sweep catches misses). */
  async remove(ids: string[]): Promise<void> {
    await Promise.all(ids.map((id) => unlink(this.pathOf(id)).catch(() => undefined)))
  }

  /**
   * Opens every file of an object up front, so a concurrent overwrite or delete (which
   * unlinks after its commit) cannot pull the data from under a reader.
   */
  async openFiles(ids: string[]): Promise<{ read: ReadStored; close(): Promise<void> }> {
    const handles: FileHandle[] = []
    try {
      for (const id of ids) handles.push(await open(this.pathOf(id), 'r'))
    } catch (err) {
      await Promise.all(handles.map((h) => h.close()))
      throw err
    }
    const read: ReadStored = (partIndex, start, end) => {
      if (end <= start) return (async function* () {})()
      return createReadStream('', { fd: handles[partIndex], start, end: end - 1, autoClose: false, highWaterMark: READ_CHUNK })
    }
    let closed = false
    return {
      read,
      async close() {
        if (closed) return
        closed = true
        await Promise.all(handles.map((h) => h.close().catch(() => undefined)))
      },
    }
  }

  /** Removes files under objects/ that no metadata row references; returns how many. */
  async sweep(referenced: Set<string>): Promise<number> {
    let removed = 0
    for (const dir of await readdir(this.objectsDir)) {
      const path = join(this.objectsDir, dir)
      let names: string[]
      try {
        names = await readdir(path)
      } catch {
        continue
      }
      for (const name of names) {
        if (!referenced.has(name)) {
          await unlink(join(path, name)).catch(() => undefined)
          removed++
        }
      }
    }
    return removed
  }
}

async function fsyncDir(dir: string): Promise<void> {
  const h = await open(dir, 'r')
  try {
    await h.sync()
  } finally {
    await h.close()
  }
}

// ------------------------------------------------------------- the object layer, over files

export interface KmsAccess {
  kms?: Kms
}

/** Seals a single-part object into a staged file. The source is consumed fully. */
export async function stageObject(
  files: FileStore,
  source: AsyncIterable<Buffer>,
  opts: { context: ObjectContext; encryption: EncryptionRequest | null },
): Promise<Staged<Manifest>> {
  const sealed = await objectLayer.sealObject(source, { context: opts.context, encryption: opts.encryption })
  const file = await files.stage(sealed.stream)
  return { file, result: sealed.result() }
}

export async function beginUpload(opts: { context: ObjectContext; encryption: EncryptionRequest | null }): Promise<UploadState> {
  return objectLayer.startUpload({ context: opts.context, encryption: opts.encryption })
}

export async function stagePart(
  files: FileStore,
  upload: UploadState,
  access: KmsAccess,
  partNumber: number,
  source: AsyncIterable<Buffer>,
): Promise<Staged<PartRecord>> {
  const sealed = await objectLayer.sealPart(upload, access, partNumber, source)
  const file = await files.stage(sealed.stream)
  return { file, result: sealed.result() }
}

/** UploadPartCopy: a range of a stored object becomes a part, re-sealed for the upload. */
export async function stageCopiedPart(
  files: FileStore,
  src: { manifest: Manifest; files: string[]; context: ObjectContext },
  range: { start: number; end: number },
  upload: UploadState,
  access: KmsAccess,
  partNumber: number,
  tap: (chunk: Buffer) => void,
): Promise<Staged<PartRecord>> {
  const reader = await files.openFiles(src.files)
  try {
    const plain = objectLayer.openRange(src.manifest, { context: src.context, ...access }, range.start, range.end, reader.read)
    const sealed = await objectLayer.sealPart(upload, access, partNumber, tapStream(plain, tap))
    const file = await files.stage(sealed.stream)
    return { file, result: sealed.result() }
  } finally {
    await reader.close()
  }
}

export async function finishUpload(upload: UploadState, access: KmsAccess, parts: PartRecord[]): Promise<Manifest> {
  return objectLayer.completeUpload(upload, access, parts)
}

/**
 * Plaintext of an object (or of one inclusive range of it). The files are opened before
 * the first byte is returned; they are closed when the stream ends or is abandoned.
 */
export async function readObject(
  files: FileStore,
  obj: { manifest: Manifest; files: string[]; context: ObjectContext },
  access: KmsAccess,
  range?: { start: number; end: number } | null,
): Promise<AsyncIterable<Buffer>> {
  const reader = await files.openFiles(obj.files)
  const m = obj.manifest
  const plain =
    range != null
      ? objectLayer.openRange(m, { context: obj.context, ...access }, range.start, range.end, reader.read)
      : m.size === 0
        ? (async function* () {})()
        : objectLayer.openObject(m, { context: obj.context, ...access }, reader.read)
  // Pull the first chunk now: the object layer checks the manifest (and the first package)
  // there, so a failure still becomes an S3 error instead of a truncated 200.
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
 * The rest of a stream whose first chunk was pulled already, closing `close` exactly once:
 * at its end, on an error, or when the consumer gives up — also before reading anything
 * (an async generator that never started would skip its finally, leaving files open).
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

export async function* tapStream(source: AsyncIterable<Buffer>, tap: (chunk: Buffer) => void): AsyncGenerator<Buffer> {
  for await (const chunk of source) {
    tap(chunk)
    yield chunk
  }
}
