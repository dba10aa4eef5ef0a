/**
 * The embedded default BlobStore: files in the data dir (docs/FORMAT.md, "Where the embedded
 * default keeps things").
 *
 *   DATA/tmp/ID              a staged blob: written, fsynced, not yet published
 *   DATA/objects/ID[0..2]/ID a stored blob: renamed from tmp/, its directory fsynced
 *
 * Ids are 32 random hex digits, never object keys, so no key can reach outside the data dir.
 * A copy is a hard link (the bytes are shared, either name can go alone); a reader holds open
 * descriptors, which survive an unlink. Errors are mapped by storageError.
 */
import { randomBytes } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import { link, mkdir, open, readdir, rename, rm, stat, unlink, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { fsyncDir } from '../../durable.js'
import { storageError, watchSource, type BlobEntry, type BlobId, type BlobReader, type BlobStore, type StagedBlob } from './blob.js'

/**
 * Reads and writes in chunks of 16 sealed packages of the default size (16 × (64 KiB + 16)), so
 * the chunks of a default-sized encrypted object line up with the stream layer's batches and are
 * opened in place, never copied.
 */
const IO_CHUNK = 16 * (65536 + 16)

const ID_PATTERN = /^[0-9a-f]{32}$/

function newId(): BlobId {
  return randomBytes(16).toString('hex')
}

export class FileBlobStore implements BlobStore {
  readonly tmpDir: string
  readonly objectsDir: string
  private readonly madeDirs = new Set<string>()

  private constructor(readonly dataDir: string) {
    this.tmpDir = join(dataDir, 'tmp')
    this.objectsDir = join(dataDir, 'objects')
  }

  /** Opens (creating its directories) the blob store of a data dir. */
  static async open(dataDir: string): Promise<FileBlobStore> {
    const store = new FileBlobStore(dataDir)
    try {
      await mkdir(store.tmpDir, { recursive: true, mode: 0o700 })
      await mkdir(store.objectsDir, { recursive: true, mode: 0o700 })
    } catch (err) {
      throw storageError('opening the blob store', err)
    }
    return store
  }

  private dirOf(id: BlobId): string {
    return join(this.objectsDir, id.slice(0, 2))
  }

  /** Where a stored blob's file is (tests and operators; the server never needs it). */
  pathOf(id: BlobId): string {
    return join(this.dirOf(id), id)
  }

  private tmpPath(id: BlobId): string {
    return join(this.tmpDir, id)
  }

  async stage(source: AsyncIterable<Uint8Array>): Promise<StagedBlob> {
    const id = newId()
    const path = this.tmpPath(id)
    const createdAt = Date.now()
    const watched = watchSource(source)
    try {
      await pipeline(Readable.from(watched.stream, { objectMode: false }), createWriteStream(path, { flags: 'wx', mode: 0o600, flush: true, highWaterMark: IO_CHUNK }))
    } catch (err) {
      await rm(path, { force: true }).catch(() => undefined)
      const failed = watched.failed()
      if (failed) throw failed.err
      throw storageError(`staging blob ${id}`, err)
    }
    return { id, createdAt }
  }

  async copy(ids: BlobId[]): Promise<StagedBlob[]> {
    const staged: StagedBlob[] = []
    try {
      for (const id of ids) {
        const copy = newId()
        await link(this.pathOf(id), this.tmpPath(copy))
        staged.push({ id: copy, createdAt: Date.now() })
      }
    } catch (err) {
      await this.discard(staged)
      throw storageError(`copying blobs ${ids.join(', ')}`, err)
    }
    return staged
  }

  /** Rename into objects/, then fsync each directory once: the names are durable before any row names them. */
  async publish(staged: StagedBlob[]): Promise<void> {
    const dirs = new Set<string>()
    try {
      for (const b of staged) {
        const dir = this.dirOf(b.id)
        if (!this.madeDirs.has(dir)) {
          await mkdir(dir, { recursive: true, mode: 0o700 })
          this.madeDirs.add(dir)
        }
        await rename(this.tmpPath(b.id), this.pathOf(b.id))
        dirs.add(dir)
      }
      for (const dir of dirs) await fsyncDir(dir)
    } catch (err) {
      throw storageError(`publishing blobs ${staged.map((b) => b.id).join(', ')}`, err)
    }
  }

  async discard(staged: StagedBlob[]): Promise<void> {
    await Promise.all(staged.map((b) => rm(this.tmpPath(b.id), { force: true }).catch(() => undefined)))
  }

  async open(ids: BlobId[]): Promise<BlobReader> {
    const handles: FileHandle[] = []
    try {
      for (const id of ids) {
        try {
          handles.push(await open(this.pathOf(id), 'r'))
        } catch (err) {
          throw storageError(`opening blob ${id}`, err)
        }
      }
    } catch (err) {
      await Promise.all(handles.map((h) => h.close().catch(() => undefined)))
      throw err
    }
    let closed = false
    return {
      read: (index, start, end) => readRange(handles[index], ids[index], start, end),
      async close() {
        if (closed) return
        closed = true
        await Promise.all(handles.map((h) => h.close().catch(() => undefined)))
      },
    }
  }

  async remove(ids: BlobId[]): Promise<void> {
    const results = await Promise.allSettled(ids.map((id) => unlink(this.pathOf(id))))
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected' && (r.reason as { code?: string }).code !== 'ENOENT')
    if (failed) throw storageError(`removing blobs ${ids.join(', ')}`, failed.reason)
  }

  async *list(): AsyncGenerator<BlobEntry> {
    for (const name of await this.names(this.tmpDir)) {
      const createdAt = await this.mtime(join(this.tmpDir, name))
      if (createdAt !== undefined) yield { id: name, state: 'staged', createdAt }
    }
    for (const dir of await this.names(this.objectsDir)) {
      for (const name of await this.names(join(this.objectsDir, dir))) {
        const createdAt = await this.mtime(join(this.objectsDir, dir, name))
        if (createdAt !== undefined) yield { id: name, state: 'stored', createdAt }
      }
    }
  }

  async close(): Promise<void> {}

  /** Names in a directory that look like blob ids (or shard directories): nothing else is ours to list. */
  private async names(dir: string): Promise<string[]> {
    let names: string[]
    try {
      names = await readdir(dir)
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOENT' || (err as { code?: string }).code === 'ENOTDIR') return []
      throw storageError('listing blobs', err)
    }
    return names.filter((n) => ID_PATTERN.test(n) || (dir === this.objectsDir && /^[0-9a-f]{2}$/.test(n)))
  }

  private async mtime(path: string): Promise<number | undefined> {
    try {
      return (await stat(path)).mtimeMs
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOENT') return undefined
      throw storageError('listing blobs', err)
    }
  }
}

/** Bytes [start, end) of an open file, in IO_CHUNK reads; a failing read becomes S3SSE_STORAGE_IO. */
async function* readRange(handle: FileHandle | undefined, id: BlobId, start: number, end: number): AsyncGenerator<Uint8Array> {
  if (end <= start) return
  if (!handle) throw storageError(`reading blob ${id}`, new Error('no such blob in this reader'))
  const stream = createReadStream('', { fd: handle, start, end: end - 1, autoClose: false, highWaterMark: IO_CHUNK })
  try {
    for await (const chunk of stream) yield chunk as Buffer
  } catch (err) {
    throw storageError(`reading blob ${id}`, err)
  } finally {
    stream.destroy()
  }
}
