/**
 * The one write path. Every write — PutObject, CopyObject, PostObject, UploadPart(Copy),
 * CompleteMultipartUpload, deletes, aborts and replicas — goes through here, and so does the
 * rule that makes an acknowledged write durable and a crash harmless:
 *
 *   1. data durable: the staged blobs are published (BlobStore.publish) before any row names them;
 *   2. row committed: one MetaStore transaction writes the row (and queues its replication);
 *   3. replaced data dropped: only after the commit, best effort; what a crash or a failed
 *      removal leaves behind, the start-up sweep (sweepOrphans) removes.
 *
 * A commit that is refused (the bucket or upload went meanwhile, a precondition failed, the
 * store failed) removes the blobs it published, so nothing is left referenced by nobody and
 * nothing stored before is touched.
 */
import { s3Error } from '../s3/errors.js'
import { replicationRuleFor, type ReplicationConfiguration } from '../s3/replication.js'
import { storedEncryption } from '../s3/sse.js'
import type { TagSet } from '../s3/tagging.js'
import { encodeManifest, type Manifest } from '../object/index.js'
import type { BucketRow, CommitOptions, CommitResult, ObjectReplication, ObjectRow, PartRow, ReplicationTarget, StoredChecksum } from './meta/index.js'
import { withSpaceForDelete } from './reserve.js'
import type { ServerState } from './state.js'
import type { BlobId, StagedBlob } from './store/blob.js'

/** What goes into an object row besides its manifest and blobs. */
export interface ObjectRowInput {
  bucket: string
  key: string
  manifest: Manifest
  blobs: BlobId[]
  etag: string
  headers: Record<string, string>
  meta: Record<string, string>
  checksum?: StoredChecksum
  /** Default: the manifest's size. */
  size?: number
  /** Default: the number of manifest parts. */
  partsCount?: number
  /** Default: now. */
  lastModified?: number
  /** Default: from the manifest. A multipart object reports what its upload was created with. */
  encryption?: ObjectRow['encryption']
  /** How the write named its KMS key (the request or the bucket configuration); responses report it. */
  keyName?: string
  /** The object's tags (x-amz-tagging, a copy's source, an upload's). */
  tags?: TagSet
  /** Set by the store (CommitOptions), never by a caller; only carried for reading back. */
  replication?: ObjectReplication
}

/** The one builder of object rows. */
export function objectRow(o: ObjectRowInput): ObjectRow {
  return {
    bucket: o.bucket,
    key: o.key,
    size: o.size ?? o.manifest.size,
    etag: o.etag,
    lastModified: o.lastModified ?? Date.now(),
    headers: o.headers,
    meta: o.meta,
    checksum: o.checksum,
    partsCount: o.partsCount ?? o.manifest.parts.length,
    manifest: encodeManifest(o.manifest),
    blobs: o.blobs,
    encryption: 'encryption' in o ? o.encryption : storedEncryption(o.manifest.encryption, o.keyName),
    ...(o.tags && o.tags.length > 0 ? { tags: o.tags } : {}),
    ...(o.manifest.encryption && o.manifest.encryption.algorithm !== 'SSE-C' ? { kmsKey: { keyId: o.manifest.encryption.keyId, version: o.manifest.encryption.keyVersion } } : {}),
  }
}

/**
 * The replication rule a write falls under, read from the bucket row the commit sees. An SSE-C
 * object is not replicated: its key came with the request and is not kept, so no worker could
 * read it later.
 */
export function replicationTarget(bucket: BucketRow, row: Pick<ObjectRow, 'key' | 'encryption'>): ReplicationTarget | null {
  if (row.encryption?.algorithm === 'SSE-C') return null
  const rule = replicationRuleFor(bucket.settings.replication as ReplicationConfiguration | undefined, row.key)
  return rule ? { destination: rule.destination.bucket, destinationOwner: rule.destination.owner ?? null, ruleId: rule.id } : null
}

/** Blobs no row references any more: removed now if the store can, by the next sweep otherwise. */
async function dropUnused(state: ServerState, ids: BlobId[]): Promise<void> {
  if (ids.length === 0) return
  try {
    await state.blobs.remove(ids)
  } catch (err) {
    state.log.error(`could not remove ${ids.length} unreferenced blobs (the next start-up sweep will): ${(err as Error).message}`)
  }
}

/** Publishes staged blobs; on failure none of them stays. */
async function publish(state: ServerState, staged: StagedBlob[]): Promise<void> {
  if (staged.length === 0) return
  try {
    await state.blobs.publish(staged)
  } catch (err) {
    await state.blobs.discard(staged)
    await dropUnused(state, staged.map((b) => b.id))
    throw err
  }
}

/** Runs a commit of rows that name `published`; a refused or failed one drops them. */
async function commitRows(state: ServerState, published: BlobId[], commit: () => Promise<CommitResult>): Promise<CommitResult> {
  let result: CommitResult
  try {
    result = await commit()
  } catch (err) {
    await dropUnused(state, published)
    throw err
  }
  if (result.status !== 'committed') {
    await dropUnused(state, published)
    return result
  }
  if (result.queued) state.replicator?.kick()
  await dropUnused(state, result.unused)
  return result
}

export interface ObjectCommitOptions {
  /** Conditional writes: checked against the current object inside the commit. */
  precondition?: CommitOptions['precondition']
  /** A replica of this queued write (src/server/replication.ts). */
  replicaOf?: CommitOptions['replicaOf']
}

/**
 * Commits an object whose blobs are staged: publish, then the row (with its replication
 * decided from the bucket's rules in the same transaction), then drop what it replaced.
 * 'superseded': a replica whose source changed meanwhile; nothing was written.
 */
export async function commitObject(state: ServerState, row: ObjectRow, staged: StagedBlob[], opts: ObjectCommitOptions = {}): Promise<'committed' | 'superseded'> {
  await publish(state, staged)
  const result = await commitRows(state, staged.map((b) => b.id), () =>
    state.meta.commitObject(row, {
      ...(opts.replicaOf ? { replicaOf: opts.replicaOf } : { replicate: (bucket) => replicationTarget(bucket, row) }),
      ...(opts.precondition ? { precondition: opts.precondition } : {}),
    }),
  )
  if (result.status === 'no-bucket') throw s3Error('NoSuchBucket')
  return result.status === 'superseded' ? 'superseded' : 'committed'
}

/** Records a staged part; the upload may have been completed or aborted meanwhile (NoSuchUpload). */
export async function commitPart(state: ServerState, part: PartRow, staged: StagedBlob): Promise<void> {
  await publish(state, [staged])
  const result = await commitRows(state, [staged.id], () => state.meta.commitPart(part))
  if (result.status !== 'committed') throw s3Error('NoSuchUpload')
}

/** CompleteMultipartUpload: the parts' blobs (published already) become the object's. */
export async function completeUpload(state: ServerState, uploadId: string, row: ObjectRow, opts: Pick<CommitOptions, 'precondition'> = {}): Promise<void> {
  const result = await commitRows(state, [], () =>
    state.meta.completeUpload(uploadId, row, { replicate: (bucket) => replicationTarget(bucket, row), ...(opts.precondition ? { precondition: opts.precondition } : {}) }))
  if (result.status === 'no-upload') throw s3Error('NoSuchUpload')
  if (result.status === 'no-bucket') throw s3Error('NoSuchBucket')
}

/** Deletes an object (a missing one is no error, as in S3); true if there was one. */
export async function deleteObject(state: ServerState, bucket: string, key: string): Promise<boolean> {
  // On a full disk even a delete needs a little room (the database's log): the reserve's.
  const blobs = await withSpaceForDelete(state.space, () => state.meta.deleteObject(bucket, key))
  if (blobs === null) return false
  await dropUnused(state, blobs)
  return true
}

/**
 * DeleteBucket: the bucket goes if it holds no objects, and its uploads in progress with it
 * (S3 discards them; a leftover upload must not block every later teardown).
 */
export async function deleteBucket(state: ServerState, name: string): Promise<void> {
  const outcome = await withSpaceForDelete(state.space, () => state.meta.deleteBucketIfEmpty(name))
  if (outcome.status === 'missing') throw s3Error('NoSuchBucket')
  if (outcome.status === 'not-empty') throw s3Error('BucketNotEmpty')
  await dropUnused(state, outcome.unused)
}

/** AbortMultipartUpload: the upload, its parts and their blobs go. */
export async function abortUpload(state: ServerState, uploadId: string): Promise<void> {
  const blobs = await withSpaceForDelete(state.space, () => state.meta.deleteUpload(uploadId))
  if (blobs === null) throw s3Error('NoSuchUpload')
  await dropUnused(state, blobs)
}

/** Drops staged blobs of a write that will not be committed (a bad digest, a failed check). */
export async function discardStaged(state: ServerState, staged: StagedBlob[]): Promise<void> {
  await state.blobs.discard(staged)
}

/**
 * The crash sweep: removes staged blobs older than `before` (abandoned writes) and stored
 * blobs older than it that no row references (a crash between publish and commit, or between
 * a commit and its removal of replaced data). At start-up on one machine `before` is now; a
 * fleet passes a time far enough back that no gateway still has such a blob in flight.
 *
 * Blobs are listed before the references are read: a blob committed meanwhile is then
 * referenced, never swept. In a fleet another gateway may have published a blob just before it
 * was listed and not yet committed its row: `settleMs` waits between the listing and the reading
 * of references, longer than any commit takes. A staged blob that a row does reference (its
 * store lost the publish of a marker) is published, never removed.
 */
export async function sweepOrphans(state: ServerState, before: number, opts: { settleMs?: number; signal?: AbortSignal } = {}): Promise<{ staged: number; stored: number }> {
  const staged: StagedBlob[] = []
  const stored: BlobId[] = []
  for await (const b of state.blobs.list()) {
    if (b.createdAt >= before) continue
    if (b.state === 'staged') staged.push(b)
    else stored.push(b.id)
  }
  if (opts.settleMs) {
    await new Promise<void>((r) => {
      const t = setTimeout(r, opts.settleMs)
      opts.signal?.addEventListener('abort', () => (clearTimeout(t), r()), { once: true })
    })
  }
  // A stop meanwhile: nothing is removed (the next sweep looks again).
  if (opts.signal?.aborted) return { staged: 0, stored: 0 }
  const referenced = await state.meta.referencedBlobs()
  const orphans = stored.filter((id) => !referenced.has(id))
  const abandoned = staged.filter((b) => !referenced.has(b.id))
  const kept = staged.filter((b) => referenced.has(b.id))
  if (kept.length > 0) await state.blobs.publish(kept)
  await state.blobs.discard(abandoned)
  if (orphans.length > 0) await state.blobs.remove(orphans)
  return { staged: abandoned.length, stored: orphans.length }
}
