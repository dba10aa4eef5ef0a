import { Transform, type TransformCallback } from 'node:stream'
import { S3sseError } from '../errors.js'
import type { Backend } from './backend.js'
import { PACKAGE_SIZE, TAG_SIZE } from './constants.js'
import type { StreamKey } from './kdf.js'
import { loadBackend } from './loader.js'
import { packagesForCiphertext, packagesForPlaintext } from './packages.js'

/**
 * Sealing and opening of whole streams (docs/FORMAT.md, "Streams") over the package
 * cipher, as async generators and as Node Transforms.
 *
 * Input is gathered into batches of whole packages; each batch goes to the backend's async
 * call (the native addon runs it on the libuv pool) while the next ones are read. Up to
 * PIPELINE_DEPTH batches are in flight at once, each on a pool thread of its own, so the
 * thread hop of one batch overlaps the work of the next, and both cores work on a fast
 * source; outputs are handed out in order, each only once every batch before it succeeded.
 * At most PIPELINE_DEPTH + 1 batches of input are in memory. The last package is held back
 * until the input ends, because only then is it known to be the final one.
 */

export interface StreamOptions {
  backend?: Backend
  packageSize?: number
  /** Packages per batch handed to the backend (default: 1 MiB worth, at least 1). */
  batchPackages?: number
  /** Number of the first package in the input (default 0; ranges start later). */
  firstPackage?: number
  /**
   * Whether the input runs to the end of the stream, so its last package carries the final
   * flag (default true). A range that stops before the end is opened with false.
   */
  final?: boolean
  /** Pool threads one batch may use (native backend). */
  threads?: number
}

type Direction = 'seal' | 'open'

const DEFAULT_BATCH_BYTES = 1024 * 1024
/** Batches up to this size are sealed on the calling thread (about 40 µs at 128 KiB). */
const SYNC_LIMIT = 128 * 1024
/**
 * Batches in flight on the pool. A hop to a pool thread and back costs tens of µs on a VM,
 * about what sealing 1 MiB costs with VAES: with one batch in flight the hop is never hidden.
 */
const PIPELINE_DEPTH = 2

/**
 * The batching engine shared by the generator and Transform forms: feed it chunks, get back
 * finished output in order.
 */
class BatchCipher {
  private readonly backend: Backend
  private readonly packageSize: number
  private readonly inPackage: number
  private readonly batchIn: number
  private readonly batchPackages: number
  private readonly final: boolean
  private readonly threads?: number
  private nextPackage: number
  /**
   * PIPELINE_DEPTH + 1 input buffers, used in turn: those of the batches in flight and the one
   * being filled. Each starts small and doubles up to a batch as input arrives, so a short
   * stream costs a short buffer. A buffer comes round again only after PIPELINE_DEPTH later
   * batches were started, by which time its own batch has finished (start() waits for that).
   */
  private readonly buffers: Buffer[] = Array.from({ length: PIPELINE_DEPTH + 1 }, () => Buffer.alloc(0))
  /** Bytes of each buffer ever written (wiped at the end). */
  private readonly used: number[] = new Array<number>(PIPELINE_DEPTH + 1).fill(0)
  private current = 0
  private fill = 0
  /** The batches started and not yet handed out, oldest first. */
  private readonly inFlight: Array<Promise<Buffer>> = []
  private sawInput = false
  /**
   * The tail of the last chunk, held by reference instead of copied while no later input has
   * come (generator form only, whose sources hand over their chunks): a stream that arrives
   * as one chunk, or in batch-sized chunks, is never copied.
   */
  private parked: Uint8Array | null = null

  constructor(private readonly direction: Direction, private readonly sk: StreamKey, opts: StreamOptions = {},
    private readonly mayPark = false) {
    this.backend = opts.backend ?? loadBackend()
    this.packageSize = opts.packageSize ?? PACKAGE_SIZE
    this.inPackage = direction === 'seal' ? this.packageSize : this.packageSize + TAG_SIZE
    this.batchPackages = Math.max(1, opts.batchPackages ?? Math.floor(DEFAULT_BATCH_BYTES / this.packageSize))
    this.batchIn = this.batchPackages * this.inPackage
    this.final = opts.final ?? true
    this.threads = opts.threads
    this.nextPackage = opts.firstPackage ?? 0
  }

  /** Absorbs `chunk`; returns the outputs of batches that finished meanwhile, in order. */
  async write(chunk: Uint8Array): Promise<Buffer[]> {
    const done: Buffer[] = []
    if (chunk.length > 0) this.sawInput = true
    if (this.parked) {
      const p = this.parked
      this.parked = null
      await this.absorb(p, done, false, chunk.length > 0)
    }
    await this.absorb(chunk, done, this.mayPark, false)
    return done
  }

  /**
   * `moreFollows`: input is known to follow this chunk, so even its last whole batch can be
   * started now; otherwise the last package is held back, as it may be the final one.
   */
  private async absorb(chunk: Uint8Array, done: Buffer[], mayPark: boolean, moreFollows: boolean): Promise<void> {
    let pos = 0
    while (pos < chunk.length) {
      const left = chunk.length - pos
      if (this.fill === 0 && (left > this.batchIn || (moreFollows && left === this.batchIn))) {
        // Whole batches straight from the caller's chunk, without a copy.
        const whole = Math.floor((moreFollows ? left : left - 1) / this.batchIn) * this.batchIn
        for (let off = 0; off < whole; off += this.batchIn) {
          await this.start(chunk.subarray(pos + off, pos + off + this.batchIn), done)
        }
        pos += whole
        continue
      }
      if (this.fill === this.batchIn) {
        const full = this.buffers[this.current].subarray(0, this.fill)
        this.current = (this.current + 1) % this.buffers.length
        this.fill = 0
        await this.start(full, done)
        continue
      }
      if (mayPark && this.fill === 0) {
        this.parked = chunk.subarray(pos)
        return
      }
      const n = Math.min(this.batchIn - this.fill, chunk.length - pos)
      const buf = this.room(this.fill + n)
      buf.set(chunk.subarray(pos, pos + n), this.fill)
      this.fill += n
      this.used[this.current] = Math.max(this.used[this.current], this.fill)
      pos += n
    }
  }

  /** Ends the input: the rest is processed with the final flag; returns the last outputs. */
  async end(): Promise<Buffer[]> {
    const done: Buffer[] = []
    await this.settle(done, 0)
    const rest = this.parked ?? this.buffers[this.current].subarray(0, this.fill)
    this.parked = null
    if (this.direction === 'open' && this.final && !this.sawInput) {
      throw new S3sseError('S3SSE_TRUNCATED', 'the sealed stream is empty: even an empty stream has one package')
    }
    const sealedSize = this.packageSize + TAG_SIZE
    const tail = this.direction === 'open' ? rest.length % sealedSize : 0
    if (tail > 0 && tail < TAG_SIZE) {
      // A piece shorter than a tag: open what precedes it first, so that a final package
      // followed by stray bytes reports TRAILING_DATA, and otherwise it is a cut package.
      const whole = rest.length - tail
      if (whole > 0) done.push(await this.run(rest.subarray(0, whole), false))
      throw new S3sseError('S3SSE_TRUNCATED', `the sealed stream ends inside package ${this.nextPackage}, in fewer bytes than a tag`, { packageNumber: this.nextPackage })
    }
    if (rest.length > 0 || this.final) done.push(await this.run(rest, this.final))
    // Plaintext waiting to be sealed is wiped; sealed input is not secret.
    if (this.direction === 'seal') this.buffers.forEach((b, i) => b.fill(0, 0, this.used[i]))
    return done
  }

  /** The current buffer, grown (doubling, up to a batch) to hold `need` bytes. */
  private room(need: number): Buffer {
    const buf = this.buffers[this.current]
    if (buf.length >= need) return buf
    const size = Math.min(this.batchIn, Math.max(need, 2 * buf.length, this.inPackage))
    const grown = Buffer.allocUnsafe(size)
    buf.copy(grown, 0, 0, this.fill)
    if (this.direction === 'seal') buf.fill(0, 0, this.used[this.current])
    this.buffers[this.current] = grown
    this.used[this.current] = this.fill
    return grown
  }

  /** Starts a non-final batch; then hands out the oldest ones until PIPELINE_DEPTH are left in flight. */
  private async start(input: Uint8Array, done: Buffer[]): Promise<void> {
    const p = this.run(input, false)
    // Awaited in turn by settle(); keep an early rejection from being reported as unhandled
    // in between.
    p.catch(() => {})
    this.inFlight.push(p)
    await this.settle(done, PIPELINE_DEPTH)
  }

  /**
   * Hands out finished batches in order until at most `keep` are in flight. When one failed,
   * those after it are waited for and their output wiped: nothing after a failure is released.
   */
  private async settle(done: Buffer[], keep: number): Promise<void> {
    while (this.inFlight.length > keep) {
      const next = this.inFlight.shift()!
      try {
        done.push(await next)
      } catch (e) {
        const rest = this.inFlight.splice(0)
        for (const r of await Promise.allSettled(rest)) if (r.status === 'fulfilled') r.value.fill(0)
        throw e
      }
    }
  }

  private async run(input: Uint8Array, final: boolean): Promise<Buffer> {
    const first = this.nextPackage
    const packages = this.direction === 'seal'
      ? packagesForPlaintext(input.length, final, this.packageSize)
      : packagesForCiphertext(input.length, final, this.packageSize, first)
    this.nextPackage += packages
    const outLength = this.direction === 'seal' ? input.length + packages * TAG_SIZE : input.length - packages * TAG_SIZE
    const out = Buffer.allocUnsafe(Math.max(0, outLength))
    // A batch of the default size stays on one pool thread unless asked otherwise: the other
    // thread is busy with the next batch, and one more hop per batch costs more than it saves.
    // Larger batches are split across the pool as the backend sees fit.
    const opts = this.threads !== undefined ? { threads: this.threads } : this.batchIn <= DEFAULT_BATCH_BYTES + this.batchPackages * TAG_SIZE ? { threads: 1 } : undefined
    // A small batch costs less on this thread than the hop to the pool and back.
    const sync = input.length <= SYNC_LIMIT
    if (this.direction === 'seal') {
      if (sync) this.backend.seal(this.sk.key, this.sk.noncePrefix, first, final, input, out, this.packageSize)
      else await this.backend.sealAsync(this.sk.key, this.sk.noncePrefix, first, final, input, out, this.packageSize, opts)
      return out
    }
    try {
      if (sync) this.backend.open(this.sk.key, this.sk.noncePrefix, first, final, input, out, this.packageSize)
      else await this.backend.openAsync(this.sk.key, this.sk.noncePrefix, first, final, input, out, this.packageSize, opts)
    } catch (e) {
      out.fill(0)
      throw this.explain(e, input, first, final)
    }
    return out
  }

  /**
   * STREAM makes a cut at a package boundary show up as the new last package failing under
   * the final flag, and data after the final package as that package failing without it.
   * Opening the failing package once more with the flag flipped (into scratch memory that
   * is wiped) tells these apart from corruption, so the error says what happened. Which
   * code comes out depends only on the bytes, never on how input was batched.
   */
  private explain(e: unknown, input: Uint8Array, first: number, final: boolean): unknown {
    if (!(e instanceof S3sseError) || e.code !== 'S3SSE_AUTH_FAILED' || e.packageNumber === undefined) return e
    const sealedSize = this.packageSize + TAG_SIZE
    const start = (e.packageNumber - first) * sealedSize
    const pkg = input.subarray(start, Math.min(start + sealedSize, input.length))
    if (pkg.length < TAG_SIZE) return e
    const flagged = final && start + pkg.length === input.length
    const scratch = Buffer.alloc(pkg.length - TAG_SIZE)
    try {
      this.backend.open(this.sk.key, this.sk.noncePrefix, e.packageNumber, !flagged, pkg, scratch, this.packageSize)
    } catch {
      return e
    } finally {
      scratch.fill(0)
    }
    return flagged
      ? new S3sseError('S3SSE_TRUNCATED', `the sealed stream ends after package ${e.packageNumber}, which is not its final package`, { packageNumber: e.packageNumber })
      : new S3sseError('S3SSE_TRAILING_DATA', `package ${e.packageNumber} is the final package of its stream, but more data follows it`, { packageNumber: e.packageNumber })
  }
}

async function* runStream(direction: Direction, source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  sk: StreamKey, opts?: StreamOptions): AsyncGenerator<Buffer> {
  const core = new BatchCipher(direction, sk, opts, true)
  for await (const chunk of source) {
    for (const out of await core.write(chunk)) yield out
  }
  for (const out of await core.end()) yield out
}

/**
 * Seals a whole stream of plaintext chunks; yields the sealed stream. Chunks are used in
 * place until the next one is asked for (or the stream ends): a source must not change a
 * chunk after yielding it, as with any Node stream.
 */
export function sealStream(source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, sk: StreamKey,
  opts?: StreamOptions): AsyncGenerator<Buffer> {
  return runStream('seal', source, sk, opts)
}

/**
 * Opens a sealed stream (or, with firstPackage / final, a run of its packages); yields
 * plaintext, each package only after its tag verified.
 */
export function openStream(source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, sk: StreamKey,
  opts?: StreamOptions): AsyncGenerator<Buffer> {
  return runStream('open', source, sk, opts)
}

class CipherTransform extends Transform {
  private readonly core: BatchCipher

  constructor(direction: Direction, sk: StreamKey, opts?: StreamOptions) {
    super()
    this.core = new BatchCipher(direction, sk, opts)
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, callback: TransformCallback): void {
    this.core.write(chunk).then((outs) => {
      for (const o of outs) this.push(o)
      callback()
    }, callback)
  }

  override _flush(callback: TransformCallback): void {
    this.core.end().then((outs) => {
      for (const o of outs) this.push(o)
      callback()
    }, callback)
  }
}

/** A Transform that seals what is written to it. */
export function createSealTransform(sk: StreamKey, opts?: StreamOptions): Transform {
  return new CipherTransform('seal', sk, opts)
}

/** A Transform that opens a sealed stream written to it. */
export function createOpenTransform(sk: StreamKey, opts?: StreamOptions): Transform {
  return new CipherTransform('open', sk, opts)
}
