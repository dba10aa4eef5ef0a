import { createHash, type Hash } from 'node:crypto'
import { nativeHashes, type NativeHash } from './backends/native.js'

/**
 * Incremental MD5 / SHA-1 / SHA-256 of a stream whose updates run on the libuv pool (the
 * native addon over Node's OpenSSL), so that hashing a request body does not take the event
 * loop's thread: on a 2-core server the MD5 a plaintext ETag needs is the largest piece of
 * the main thread's work per PUT. Chunks are hashed in order, one pool job at a time, each
 * job taking every chunk that arrived meanwhile; a chunk must not change once given to
 * update(). `backlog` is how many bytes wait, so a reader can stop reading (settle()) before
 * it holds too much. Where the addon does not load, node:crypto on this thread, same results.
 */
export interface StreamDigest {
  update(data: Uint8Array): void
  /** Bytes given to update() and not hashed yet. */
  readonly backlog: number
  /** Resolves once every chunk given so far has been hashed. */
  settle(): Promise<void>
  /** The digest (once); no update() after it. */
  digest(): Promise<Buffer>
}

export type StreamDigestAlgorithm = 'md5' | 'sha1' | 'sha256'

/** Updates smaller than this, with nothing waiting, are hashed on the calling thread: a pool hop costs more. */
const INLINE_LIMIT = 16 * 1024

class PoolDigest implements StreamDigest {
  private pending: Uint8Array[] = []
  private pendingBytes = 0
  private runningBytes = 0
  private running: Promise<void> | null = null
  private failure: unknown

  constructor(private readonly hashes: Exclude<ReturnType<typeof nativeHashes>, Error>, private readonly h: NativeHash) {}

  get backlog(): number {
    return this.pendingBytes + this.runningBytes
  }

  update(data: Uint8Array): void {
    if (data.length === 0) return
    if (!this.running && this.pending.length === 0 && data.length < INLINE_LIMIT) {
      this.hashes.hashUpdate(this.h, data)
      return
    }
    this.pending.push(data)
    this.pendingBytes += data.length
    if (!this.running) this.kick()
  }

  private kick(): void {
    const batch = this.pending
    this.pending = []
    this.runningBytes = this.pendingBytes
    this.pendingBytes = 0
    this.running = this.hashes.hashUpdateAsync(this.h, batch).then(
      () => {
        this.running = null
        this.runningBytes = 0
        if (this.pending.length > 0) this.kick()
      },
      (err: unknown) => {
        this.failure ??= err
        this.running = null
        this.runningBytes = 0
        this.pending = []
        this.pendingBytes = 0
      },
    )
  }

  async settle(): Promise<void> {
    while (this.running) await this.running
    if (this.failure) throw this.failure
  }

  async digest(): Promise<Buffer> {
    await this.settle()
    return this.hashes.hashFinal(this.h)
  }
}

class InlineDigest implements StreamDigest {
  private readonly hash: Hash
  readonly backlog = 0
  constructor(alg: StreamDigestAlgorithm) {
    this.hash = createHash(alg)
  }
  update(data: Uint8Array): void {
    this.hash.update(data)
  }
  async settle(): Promise<void> {}
  async digest(): Promise<Buffer> {
    return this.hash.digest()
  }
}

/**
 * A StreamDigest: on the pool through the native addon when it loads, else node:crypto here
 * (`native: false` asks for that one).
 */
export function createStreamDigest(alg: StreamDigestAlgorithm, opts: { native?: boolean } = {}): StreamDigest {
  const hashes = opts.native === false ? null : nativeHashes()
  if (hashes === null || hashes instanceof Error) return new InlineDigest(alg)
  return new PoolDigest(hashes, hashes.hashCreate(alg))
}
