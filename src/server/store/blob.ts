/**
 * The BlobStore seam: where the sealed bytes of objects and parts live. The object layer turns
 * plaintext into stored bytes and a manifest (src/object/); a BlobStore keeps those bytes under
 * opaque ids that the MetaStore's rows reference (ObjectRow.blobs, PartRow.blob).
 *
 * The embedded default is files in the data dir (./files.ts); a fleet keeps them in one bucket
 * of an S3-compatible cluster. Nothing above this interface knows which: no handler sees a
 * path, an errno or a hard link.
 *
 * The contract, which every implementation keeps:
 *
 * - Ids are chosen by the store, random, never derived from an object key.
 * - `stage` consumes a stream fully and makes its bytes durable but invisible; `publish` makes
 *   staged blobs durable under their ids. A row may reference an id only once it is published
 *   (src/server/commit.ts keeps that order).
 * - `copy` stages new blobs holding the bytes of stored ones, as cheaply as the store can
 *   (a hard link on files, a server-side copy on S3); either side can be removed alone.
 * - A reader from `open` reads the blobs as they were when it opened them, for as long as it is
 *   open, even if they are removed meanwhile (files: open descriptors survive an unlink; a store
 *   that cannot hold blobs open defers their deletion, e.g. to a sweep after a grace period).
 *   Sizes come from the manifest: a reader is asked for exact ranges, never for a length.
 * - `remove` of an id that is already gone is not an error.
 * - Errors are typed S3sseError codes, never an errno: S3SSE_BLOB_NOT_FOUND (open of a blob that
 *   is gone), S3SSE_STORAGE_FULL (no space, quota), S3SSE_STORAGE_IO (anything else the storage
 *   failed at). An error thrown by the source stream of `stage` (a client's bad digest, an
 *   aborted body) passes through unchanged.
 * - `list` enumerates every blob with its state and creation time, for the crash sweep
 *   (sweepOrphans in src/server/commit.ts): staged blobs older than a cutoff were abandoned;
 *   stored blobs older than it that no row references were left by a crash between publish and
 *   commit, or between a commit and its removal of replaced data. A fleet gives a cutoff far
 *   enough back that no gateway still holds such a blob in flight.
 */
import { S3sseError, isS3sseError } from '../../errors.js'

/** A blob's id: opaque, chosen by the store. */
export type BlobId = string

/** A blob written and durable, not yet published (no row may reference it yet). */
export interface StagedBlob {
  readonly id: BlobId
  /** When it was staged (ms since the epoch): a sweep leaves younger ones alone. */
  readonly createdAt: number
  /** Who staged it, when the store records that (a gateway id in a fleet). */
  readonly owner?: string
}

/** One entry of `list`. */
export interface BlobEntry {
  id: BlobId
  state: 'staged' | 'stored'
  createdAt: number
  owner?: string
}

/** Ranged reads of the blobs one `open` named, in that order. */
export interface BlobReader {
  /**
   * Bytes [start, end) of the index-th blob (end > start). Yields exactly end − start bytes
   * unless the blob is shorter; the object layer checks the count.
   */
  read(index: number, start: number, end: number): AsyncIterable<Uint8Array>
  /** Releases the blobs; idempotent. */
  close(): Promise<void>
}

export interface BlobStore {
  /** Writes a stream to a new staged blob. The source is consumed fully. */
  stage(source: AsyncIterable<Uint8Array>): Promise<StagedBlob>
  /** New staged blobs with the bytes of stored ones, in order (see the contract above). */
  copy(ids: BlobId[]): Promise<StagedBlob[]>
  /** Makes staged blobs durable under their ids; after this a row may reference them. */
  publish(staged: StagedBlob[]): Promise<void>
  /** Drops staged blobs that will never be published. Never throws. */
  discard(staged: StagedBlob[]): Promise<void>
  /** Opens stored blobs for reading (S3SSE_BLOB_NOT_FOUND if one is gone). */
  open(ids: BlobId[]): Promise<BlobReader>
  /** Removes stored blobs; readers already open keep reading them. */
  remove(ids: BlobId[]): Promise<void>
  /** Every blob, staged and stored, for the crash sweep. */
  list(): AsyncIterable<BlobEntry>
  /** Releases what the store holds (connections, descriptors). */
  close(): Promise<void>
}

/**
 * The typed error for a storage failure of `what` (an operation and blob id, never a path with
 * user data): the one mapping from system error codes, shared by the stores that see them.
 */
export function storageError(what: string, err: unknown): S3sseError {
  if (isS3sseError(err)) return err
  const code = (err as { code?: unknown } | null)?.code
  if (code === 'ENOENT') return new S3sseError('S3SSE_BLOB_NOT_FOUND', `${what}: no such blob`, { cause: err })
  if (code === 'ENOSPC' || code === 'EDQUOT') return new S3sseError('S3SSE_STORAGE_FULL', `${what}: no space left on the storage`, { cause: err })
  return new S3sseError('S3SSE_STORAGE_IO', `${what}: the storage failed${typeof code === 'string' ? ` (${code})` : ''}`, { cause: err })
}

/**
 * The source of a `stage` as a store reads it, remembering whether the source itself failed:
 * such an error (a bad digest, an aborted body) passes through as it is, and only the store's
 * own failures are mapped to storage errors.
 */
export function watchSource(source: AsyncIterable<Uint8Array>): { stream: AsyncIterable<Uint8Array>; failed(): { err: unknown } | undefined } {
  let sourceError: { err: unknown } | undefined
  const stream = (async function* () {
    try {
      yield* source
    } catch (err) {
      sourceError = { err }
      throw err
    }
  })()
  return { stream, failed: () => sourceError }
}
