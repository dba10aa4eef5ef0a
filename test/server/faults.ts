/**
 * Components that fail on purpose, injected through the seams (startServer({ kms, blobs, meta })):
 * each wraps the real embedded one and fails the way the real thing does when told to — a KMS
 * that cannot be reached or is slow, a disk that is full, fails with EIO, or dies half-way
 * through a write, a metadata store that refuses a commit.
 */
import { S3sseError } from '../../src/errors.js'
import type { DataKey, EncryptionContext, KeyInfo, Kms } from '../../src/keys/kms.js'
import type { CommitOptions, CommitResult, MetaStore, ObjectRow } from '../../src/server/meta/index.js'
import { storageError, type BlobEntry, type BlobId, type BlobReader, type BlobStore, type StagedBlob } from '../../src/server/store/blob.js'

/** An error as node:fs raises it. */
export function errno(code: 'ENOSPC' | 'EIO' | 'ENOENT', syscall = 'write'): NodeJS.ErrnoException {
  const e: NodeJS.ErrnoException = new Error(`${code}: simulated, ${syscall}`)
  e.code = code
  e.syscall = syscall
  return e
}

export type KmsFault = 'none' | 'unavailable' | 'slow'

/**
 * The data-path KMS in front of a real one. 'unavailable' fails every call the way a KMS behind
 * a dead network does (a plain socket error, which kmsCall turns into S3SSE_KMS_UNAVAILABLE);
 * 'slow' answers after `delayMs`. It has no admin surface (no listKeys): an external KMS.
 */
export class FaultyKms implements Kms {
  fault: KmsFault = 'none'
  delayMs = 400
  calls = 0

  constructor(private readonly inner: Kms) {}

  private async gate(): Promise<void> {
    this.calls++
    if (this.fault === 'unavailable') throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:4599'), { code: 'ECONNREFUSED' })
    if (this.fault === 'slow') await new Promise((r) => setTimeout(r, this.delayMs))
  }

  async generateDataKey(keyIdOrAlias: string, context: EncryptionContext): Promise<DataKey> {
    await this.gate()
    return this.inner.generateDataKey(keyIdOrAlias, context)
  }
  async decrypt(wrapped: Uint8Array, context: EncryptionContext): Promise<Uint8Array> {
    await this.gate()
    return this.inner.decrypt(wrapped, context)
  }
  async encrypt(keyIdOrAlias: string, plaintext: Uint8Array, context: EncryptionContext) {
    await this.gate()
    return this.inner.encrypt(keyIdOrAlias, plaintext, context)
  }
  async reEncrypt(wrapped: Uint8Array, context: EncryptionContext, newContext: EncryptionContext, newKeyId?: string) {
    await this.gate()
    return this.inner.reEncrypt(wrapped, context, newContext, newKeyId)
  }
  async ensureKey(alias: string): Promise<KeyInfo> {
    await this.gate()
    return this.inner.ensureKey(alias)
  }
  async describeKey(keyIdOrAlias: string): Promise<KeyInfo> {
    await this.gate()
    return this.inner.describeKey(keyIdOrAlias)
  }
}

export interface BlobFaults {
  /** stage fails at once, before any byte is written. */
  stage?: 'ENOSPC' | 'EIO'
  /** stage writes this many bytes of the stream, then the disk fails (EIO). */
  dieAfterBytes?: number
  publish?: 'ENOSPC' | 'EIO'
  open?: 'EIO'
  /** A reader fails (EIO) once it has returned this many bytes. */
  readFailsAfterBytes?: number
}

/**
 * The embedded file store with a disk that fails on demand. A failure surfaces from the
 * store as the real one reports it (storageError over an errno), and the real store's own
 * clean-up (a staged file removed when its write fails) runs underneath.
 */
export class FaultyBlobStore implements BlobStore {
  faults: BlobFaults = {}

  constructor(readonly inner: BlobStore) {}

  async stage(source: AsyncIterable<Uint8Array>): Promise<StagedBlob> {
    const f = this.faults
    if (f.stage) {
      // Consume nothing: a full disk fails the first write.
      throw storageError('staging a blob', errno(f.stage))
    }
    if (f.dieAfterBytes === undefined) return this.inner.stage(source)
    const limit = f.dieAfterBytes
    let written = 0
    const dying = (async function* () {
      for await (const chunk of source) {
        if (written + chunk.length > limit) {
          const head = chunk.subarray(0, limit - written)
          if (head.length > 0) yield head
          throw errno('EIO')
        }
        written += chunk.length
        yield chunk
      }
    })()
    try {
      return await this.inner.stage(dying)
    } catch (err) {
      throw storageError('staging a blob', err)
    }
  }

  copy(ids: BlobId[]): Promise<StagedBlob[]> {
    return this.inner.copy(ids)
  }

  async publish(staged: StagedBlob[]): Promise<void> {
    if (this.faults.publish) throw storageError('publishing blobs', errno(this.faults.publish, 'rename'))
    return this.inner.publish(staged)
  }

  discard(staged: StagedBlob[]): Promise<void> {
    return this.inner.discard(staged)
  }

  async open(ids: BlobId[]): Promise<BlobReader> {
    if (this.faults.open) throw storageError('opening blobs', errno(this.faults.open, 'open'))
    const reader = await this.inner.open(ids)
    const limit = this.faults.readFailsAfterBytes
    let returned = 0
    return {
      read(index, start, end) {
        const inner = reader.read(index, start, end)
        if (limit === undefined) return inner
        return (async function* () {
          for await (const chunk of inner) {
            if (returned >= limit) throw storageError('reading a blob', errno('EIO', 'read'))
            returned += chunk.length
            yield chunk
          }
        })()
      },
      close: () => reader.close(),
    }
  }

  remove(ids: BlobId[]): Promise<void> {
    return this.inner.remove(ids)
  }

  list(): AsyncIterable<BlobEntry> {
    return this.inner.list()
  }

  close(): Promise<void> {
    return this.inner.close()
  }
}

/** A MetaStore whose object commits can be refused by the database (everything else passes through). */
export function faultyMeta(inner: MetaStore): MetaStore & { failCommits: boolean } {
  const failing = Object.create(inner) as MetaStore & { failCommits: boolean }
  failing.failCommits = false
  failing.commitObject = async (row: ObjectRow, opts?: CommitOptions): Promise<CommitResult> => {
    if (failing.failCommits) throw new S3sseError('S3SSE_META_UNAVAILABLE', 'the metadata database failed (SQLITE_IOERR_WRITE): simulated')
    return inner.commitObject(row, opts)
  }
  return failing
}
