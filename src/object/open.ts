import { S3sseError, isS3sseError } from '../errors.js'
import { deriveStreamKey } from '../crypto/kdf.js'
import { packageSpan } from '../crypto/offsets.js'
import { openStream } from '../crypto/stream.js'
import type { Kms } from '../keys/kms.js'
import { recoverObjectKey } from './keys.js'
import { checkManifestMac, manifestMacKey, validateManifest, type Manifest, type ObjectContext } from './manifest.js'

/**
 * Reader of stored bytes: part index in manifest.parts, byte range [start, end) of that part's
 * stored bytes (never empty). It must yield exactly end − start bytes: fewer is
 * S3SSE_TRUNCATED, more S3SSE_TRAILING_DATA.
 */
export type ReadStored = (partIndex: number, start: number, end: number) => AsyncIterable<Uint8Array>

/** customerKey: an SSE-C object's key (docs/FORMAT.md 7.6). */
export interface OpenOptions { context: ObjectContext; kms?: Kms; customerKey?: Uint8Array }

/**
 * An object whose manifest has been checked (context, KMS unwrap, MAC) and whose data key is
 * in memory. `dispose()` zeroes the key; the generators below dispose when they finish.
 */
export interface OpenedObject {
  readonly manifest: Manifest
  /** The data key (null for a plaintext object, and once disposed). Internal to src/object/. */
  readonly dataKey: Uint8Array | null
  whole(read: ReadStored): AsyncGenerator<Buffer>
  range(start: number, endInclusive: number, read: ReadStored): AsyncGenerator<Buffer>
  dispose(): void
}

/**
 * Checks a manifest before any stored byte is read: structure, the context it was written
 * for, the wrapped key (one KMS decrypt, answered from memory by a CachedKms) and the MAC.
 */
export async function prepareOpen(m: Manifest, opts: OpenOptions): Promise<OpenedObject> {
  validateManifest(m)
  if (!opts || !opts.context) throw new S3sseError('S3SSE_BAD_ARGUMENT', 'open needs { context }')
  let dataKey: Uint8Array | null = null
  if (m.encryption) {
    dataKey = await recoverObjectKey(m.encryption, opts, opts.context)
    const macKey = manifestMacKey(dataKey)
    try {
      checkManifestMac(macKey, opts.context, m)
    } catch (e) {
      dataKey.fill(0)
      throw e
    } finally {
      macKey.fill(0)
    }
  }
  return new Opened(m, dataKey)
}

/** Checks a manifest (see prepareOpen) without reading: lets a server fail before it sends headers. */
export async function verifyManifest(m: Manifest, opts: OpenOptions): Promise<void> {
  (await prepareOpen(m, opts)).dispose()
}

class Opened implements OpenedObject {
  constructor(readonly manifest: Manifest, public dataKey: Uint8Array | null) {}

  dispose(): void {
    this.dataKey?.fill(0)
    this.dataKey = null
  }

  async *whole(read: ReadStored): AsyncGenerator<Buffer> {
    try {
      const m = this.manifest
      for (let i = 0; i < m.parts.length; i++) {
        const part = m.parts[i]
        if (part.storedSize === 0) continue // an empty plaintext part: nothing to read
        const stored = exactly(read(i, 0, part.storedSize), part.storedSize, part.number)
        if (!this.dataKey) {
          yield* stored
          continue
        }
        // Every part is opened to its end with the final flag, even an empty one: dropping,
        // truncating or extending any part is detected.
        const sk = deriveStreamKey(this.dataKey, part.salt!, part.number)
        try {
          yield* openStream(stored, sk, { packageSize: m.packageSize })
        } finally {
          sk.wipe()
        }
      }
    } finally {
      this.dispose()
    }
  }

  async *range(start: number, endInclusive: number, read: ReadStored): AsyncGenerator<Buffer> {
    try {
      const m = this.manifest
      if (!(Number.isSafeInteger(start) && Number.isSafeInteger(endInclusive) && start >= 0 && start <= endInclusive && endInclusive < m.size)) {
        throw new S3sseError('S3SSE_BAD_RANGE', `range ${start}-${endInclusive} is outside a ${m.size}-byte object`)
      }
      let offset = 0
      for (let i = 0; i < m.parts.length; i++) {
        const part = m.parts[i]
        const partStart = offset
        offset += part.size
        if (part.size === 0 || offset <= start || partStart > endInclusive) continue
        const first = Math.max(start, partStart) - partStart
        const last = Math.min(endInclusive, offset - 1) - partStart
        if (!this.dataKey) {
          yield* exactly(read(i, first, last + 1), last + 1 - first, part.number)
          continue
        }
        // Only the packages that hold [first, last]: at most one partial package at each end.
        const span = packageSpan(part.size, first, last, m.packageSize)
        const stored = exactly(read(i, span.sealedStart, span.sealedEnd), span.sealedEnd - span.sealedStart, part.number)
        const sk = deriveStreamKey(this.dataKey, part.salt!, part.number)
        try {
          yield* slice(openStream(stored, sk, { packageSize: m.packageSize, firstPackage: span.firstPackage, final: span.final }), span.skip, span.length)
        } finally {
          sk.wipe()
        }
      }
    } finally {
      this.dispose()
    }
  }
}

/**
 * Passes the stored bytes through, checking that the reader returns exactly the bytes asked
 * for: a short read would otherwise look like a shorter stream, a long one like more data.
 */
async function* exactly(source: AsyncIterable<Uint8Array>, expected: number, partNumber: number): AsyncGenerator<Buffer> {
  let seen = 0
  for await (const chunk of source) {
    if (!(chunk instanceof Uint8Array)) throw new S3sseError('S3SSE_BAD_ARGUMENT', 'ReadStored must yield Uint8Arrays')
    seen += chunk.length
    if (seen > expected) {
      throw new S3sseError('S3SSE_TRAILING_DATA', `the stored bytes of part ${partNumber} run past the ${expected} bytes asked for`)
    }
    if (chunk.length > 0) yield Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
  }
  if (seen < expected) {
    throw new S3sseError('S3SSE_TRUNCATED', `the stored bytes of part ${partNumber} end after ${seen} of the ${expected} bytes asked for`)
  }
}

/** Drops `skip` bytes, then passes `length` bytes. */
async function* slice(source: AsyncIterable<Buffer>, skip: number, length: number): AsyncGenerator<Buffer> {
  let toSkip = skip
  let left = length
  for await (const chunk of source) {
    let c = chunk
    if (toSkip > 0) {
      const n = Math.min(toSkip, c.length)
      c = c.subarray(n)
      toSkip -= n
    }
    if (c.length === 0 || left === 0) continue
    const out = c.length > left ? c.subarray(0, left) : c
    left -= out.length
    yield out
  }
}

/**
 * Opens a whole object. The first `next()` checks the manifest (KMS decrypt and MAC) before a
 * byte is read, so a server that awaits it before sending headers can still answer an error.
 */
export function openObject(m: Manifest, opts: OpenOptions, read: ReadStored): AsyncIterable<Buffer> {
  return (async function* () {
    const opened = await prepareOpen(m, opts)
    yield* opened.whole(read)
  })()
}

/** Plaintext bytes [start, endInclusive], reading only the packages that hold them. */
export function openRange(m: Manifest, opts: OpenOptions, start: number, endInclusive: number, read: ReadStored): AsyncIterable<Buffer> {
  return (async function* () {
    const opened = await prepareOpen(m, opts)
    yield* opened.range(start, endInclusive, read)
  })()
}

/**
 * Resolves an HTTP byte range (RFC 9110 §14.1.2) against an object of `size` bytes:
 * `{start, end}` is `bytes=start-end`, `{start}` is `bytes=start-`, `{suffix}` is `bytes=-suffix`.
 * Returns inclusive offsets clamped to the object, or null when unsatisfiable (416: the start
 * is past the end, a zero suffix, any range of an empty object). A spec that is not a valid
 * range (end before start, negative numbers) is S3SSE_BAD_RANGE; S3 then ignores the header.
 */
export function resolveRange(size: number, spec: { start?: number; end?: number; suffix?: number }): { start: number; end: number } | null {
  const ok = (n: number | undefined) => n === undefined || (Number.isSafeInteger(n) && n >= 0)
  if (!spec || !ok(spec.start) || !ok(spec.end) || !ok(spec.suffix) || !Number.isSafeInteger(size) || size < 0) {
    throw new S3sseError('S3SSE_BAD_RANGE', 'range offsets must be non-negative integers')
  }
  if (spec.suffix !== undefined) {
    if (spec.start !== undefined || spec.end !== undefined) throw new S3sseError('S3SSE_BAD_RANGE', 'a suffix range has no start or end')
    if (spec.suffix === 0 || size === 0) return null
    return { start: Math.max(0, size - spec.suffix), end: size - 1 }
  }
  if (spec.start === undefined) throw new S3sseError('S3SSE_BAD_RANGE', 'a range needs a start or a suffix length')
  if (spec.end !== undefined && spec.end < spec.start) throw new S3sseError('S3SSE_BAD_RANGE', `range ${spec.start}-${spec.end} ends before it starts`)
  if (spec.start >= size) return null
  return { start: spec.start, end: spec.end === undefined ? size - 1 : Math.min(spec.end, size - 1) }
}

/** What verifyObject found wrong with a stored object. */
export interface Damage {
  /** The part number (as in the manifest) the damage is in; null: the manifest or wrapped key. */
  part: number | null
  /** The first package of that part that failed; null when not a package (a missing blob, the manifest). */
  package: number | null
  code: string
  message: string
}

/** Codes that mean the stored bytes are not what was written (as opposed to a KMS or disk that failed). */
const DAMAGE_CODES = new Set([
  'S3SSE_AUTH_FAILED', 'S3SSE_TRUNCATED', 'S3SSE_TRAILING_DATA', 'S3SSE_BAD_MANIFEST', 'S3SSE_MANIFEST_AUTH_FAILED',
  'S3SSE_KMS_CONTEXT_MISMATCH', 'S3SSE_KMS_BAD_CIPHERTEXT',
])

export function isDamage(err: unknown): boolean {
  return isS3sseError(err) && DAMAGE_CODES.has(err.code)
}

function damageOf(err: unknown, part: number | null): Damage | null {
  if (!isDamage(err)) return null
  const e = err as S3sseError
  return { part, package: e.packageNumber ?? null, code: e.code, message: e.message }
}

/**
 * Reads every stored byte of an object and checks it, releasing no plaintext: for an
 * encrypted object the manifest (context, KMS unwrap, MAC) and every part's stream to its end
 * under its final flag — each package's tag — through the same open path as a GET, the
 * plaintext of each package dropped (and wiped) once its tag verified. Each damaged part is
 * reported with its first bad package, and the next part is checked too. A plaintext object's
 * stored bytes (its plaintext) go to `plain(partIndex, chunk)`, for the caller to check
 * against its ETag and checksum; short or long parts are damage here.
 *
 * Damage is returned; a KMS or storage that fails (unavailable, a disabled key, EIO) throws,
 * since nothing was learnt about the bytes.
 */
export async function verifyObject(m: Manifest, opts: OpenOptions, read: ReadStored, plain?: (partIndex: number, chunk: Buffer) => void): Promise<Damage[]> {
  let opened: OpenedObject
  try {
    opened = await prepareOpen(m, opts)
  } catch (err) {
    const d = damageOf(err, null)
    if (d) return [d]
    throw err
  }
  const found: Damage[] = []
  try {
    for (let i = 0; i < m.parts.length; i++) {
      const part = m.parts[i]
      if (!opened.dataKey && part.storedSize === 0) continue
      const stored = exactly(read(i, 0, part.storedSize), part.storedSize, part.number)
      try {
        if (!opened.dataKey) {
          for await (const chunk of stored) plain?.(i, chunk)
          continue
        }
        const sk = deriveStreamKey(opened.dataKey, part.salt!, part.number)
        try {
          for await (const chunk of openStream(stored, sk, { packageSize: m.packageSize })) chunk.fill(0)
        } finally {
          sk.wipe()
        }
      } catch (err) {
        const d = damageOf(err, part.number)
        if (!d) throw err
        found.push(d)
      }
    }
  } finally {
    opened.dispose()
  }
  return found
}
