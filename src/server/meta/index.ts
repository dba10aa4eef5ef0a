/**
 * The MetaStore seam: buckets, objects (with their manifests and blob ids), multipart uploads
 * and parts, the replication queue, and users. Every method is async, and each one that changes
 * more than one row does it in one transaction of the store, so a PostgreSQL implementation
 * runs each in one transaction too. The embedded default is SQLite in the data dir
 * (./sqlite/index.ts).
 *
 * Nothing here knows S3 rules: whether a write is replicated is decided by the caller
 * (src/server/commit.ts, from src/s3/replication.ts) through `CommitOptions.replicate`, which
 * the store evaluates against the bucket settings it reads inside the transaction.
 *
 * Keys compare in UTF-8 byte order (S3's listing order). Failures of the store itself are
 * S3SSE_META_UNAVAILABLE (or S3SSE_STORAGE_FULL / S3SSE_STORAGE_IO when the disk under it is).
 */
import type { ChecksumAlgorithm, ChecksumType } from '../../s3/checksums.js'
import type { ReplicationStatus } from '../../s3/replication.js'
import type { StoredEncryption } from '../../s3/sse.js'
import type { TagSet } from '../../s3/tagging.js'
import type { User } from '../credentials.js'
import type { BlobId } from '../store/blob.js'

export interface BucketRow {
  name: string
  owner: string
  region: string
  createdAt: number
  /** Bucket configurations by name (encryption, replication, …), JSON-serialisable. */
  settings: Record<string, unknown>
}

export interface StoredChecksum {
  algorithm: ChecksumAlgorithm
  type: ChecksumType
  value: string
}

export interface ObjectReplication {
  status: ReplicationStatus
  /** Names the write a PENDING / COMPLETED / FAILED status is about. */
  id?: string
}

export interface ObjectRow {
  bucket: string
  key: string
  size: number
  etag: string
  lastModified: number
  headers: Record<string, string>
  meta: Record<string, string>
  checksum?: StoredChecksum
  partsCount: number
  /** The object layer's encoded manifest (docs/FORMAT.md). */
  manifest: Uint8Array
  /** The blob of each manifest part, in order. */
  blobs: BlobId[]
  encryption?: StoredEncryption
  /** The object's tags (S3 object tagging), in the order they were given. */
  tags?: TagSet
  /**
   * The KMS key version the data key is wrapped under, from the manifest (objectRow sets it):
   * what `s3-sse kms usage` counts and the rewrap job moves. Absent for plaintext.
   */
  kmsKey?: KmsKeyVersion
  /** x-amz-replication-status; set by the store from CommitOptions, never by the caller. */
  replication?: ObjectReplication
}

/** A master-key version of the KMS, as a manifest or an upload names it. */
export interface KmsKeyVersion {
  keyId: string
  version: number
}

/** The columns a listing needs (no manifest). */
export interface ObjectSummary {
  key: string
  size: number
  etag: string
  lastModified: number
}

export interface ObjectDetails extends ObjectSummary {
  encryption?: StoredEncryption
  tags?: TagSet
  kmsKey?: KmsKeyVersion
}

export interface UploadRow {
  uploadId: string
  bucket: string
  key: string
  initiated: number
  owner: string
  /** The object layer's UploadState, JSON-serialisable. */
  state: unknown
  headers: Record<string, string>
  meta: Record<string, string>
  checksumAlgorithm?: ChecksumAlgorithm
  checksumType?: ChecksumType
  encryption?: StoredEncryption
  /** x-amz-tagging of CreateMultipartUpload: the tags the completed object gets. */
  tags?: TagSet
  /** The KMS key version the upload's data key is wrapped under (its parts are sealed under it). */
  kmsKey?: KmsKeyVersion
}

export interface PartRow {
  uploadId: string
  partNumber: number
  size: number
  etag: string
  lastModified: number
  checksum?: { algorithm: ChecksumAlgorithm; value: string }
  /** The object layer's PartRecord, JSON-serialisable. */
  record: unknown
  blob: BlobId
}

/** Where a write is to be replicated (the rule it matched). */
export interface ReplicationTarget {
  destination: string
  /** Who owned the destination when the rule was stored; a replica goes only to that owner. */
  destinationOwner: string | null
  ruleId: string
}

/** One write waiting to be replicated: the latest write of a source key. */
export interface ReplicationItem extends ReplicationTarget {
  bucket: string
  key: string
  /** Matches ObjectRow.replication.id of the write it is for; a newer write gets a new one. */
  id: string
  enqueuedAt: number
  attempts: number
  nextAttempt: number
  lastError: string | null
  /**
   * The claim a worker holds on the item (claimReplications), null when unclaimed. finish,
   * retry and drop act only while the claim is still this one, so two workers (two
   * processes of a fleet) never both complete one item.
   */
  claim: string | null
}

export interface CommitOptions {
  /**
   * Decides from the bucket row as the transaction reads it whether the write is queued for
   * replication: a target marks the row PENDING and queues it, replacing whatever was queued
   * for an older write of the key; null unqueues the older write.
   */
  replicate?: (bucket: BucketRow) => ReplicationTarget | null
  /**
   * The write is the replica of a queued item: marked REPLICA (never replicated again), and
   * committed only while the item is still its source key's latest write.
   */
  replicaOf?: Pick<ReplicationItem, 'bucket' | 'key' | 'id'>
  /**
   * Checked against the object the write replaces (undefined if none) inside the transaction;
   * it throws to refuse the write (conditional writes: If-Match, If-None-Match).
   */
  precondition?: (current: ObjectRow | undefined) => void
}

export type CommitResult =
  | { status: 'committed'; /** Blobs no row references any more: remove them. */ unused: BlobId[]; queued: boolean }
  | { status: 'no-bucket' }
  | { status: 'no-upload' }
  | { status: 'superseded' }

// ---------------------------------------------------------------- jobs

export type JobKind = 'encrypt' | 'rewrap' | 'scrub'

/**
 * queued: waits for a worker; running: a worker holds its claim (or held it, and the lease
 * will run out); paused, failed: wait for resume; completed, cancelled: final. The rules are
 * src/server/jobs/model.ts.
 */
export type JobState = 'queued' | 'running' | 'paused' | 'failed' | 'completed' | 'cancelled'

/** What a job has done: objects and bytes looked at, and what came of them. */
export interface JobCounts {
  /** Objects (and their bytes) done, whatever the outcome. */
  objects: number
  bytes: number
  /** Encrypted, re-wrapped, or (scrub) verified intact. */
  changed: number
  /** Nothing to do (already encrypted, already on the key, gone or overwritten meanwhile). */
  skipped: number
  /** Could not be done (a disabled key, data that does not match its checksum, …). */
  errors: number
  /** scrub: found damaged. */
  damaged: number
}

/** The one worker allowed to work a job, until `until` unless it renews. */
export interface JobClaim {
  token: string
  /** Who holds it (host:pid), for status. */
  worker: string
  until: number
}

export interface JobRow {
  id: string
  kind: JobKind
  bucket: string
  prefix: string
  /** At most this many objects a second; null: as fast as it goes. */
  rate: number | null
  /** rewrap: the key data keys move to; null: the current version of each one's own key. */
  toKey: string | null
  state: JobState
  createdBy: string
  createdAt: number
  updatedAt: number
  startedAt: number | null
  finishedAt: number | null
  /** Every key up to and including this one is done ('' before the first): where a worker resumes. */
  cursor: string
  /** Objects and bytes under the prefix when the job was first claimed; null until then. */
  total: { objects: number; bytes: number } | null
  done: JobCounts
  /** Time spent working, summed over workers and restarts (the rate and ETA come from it). */
  workedMs: number
  /** Why it failed, or what last went wrong. */
  error: string | null
  claim: JobClaim | null
}

/** A damaged object (scrub) or one a job could not do, as the job reports it. */
export interface JobFinding {
  /** Order of reporting; assigned by the store. */
  seq: number
  key: string
  kind: 'damaged' | 'error'
  /** The part number (1-based, as in the manifest), when the damage is in one part. */
  part: number | null
  /** The first package of that part that failed, when known. */
  package: number | null
  code: string
  message: string
  at: number
}

/** How many objects (and open uploads) have data keys under one key version. */
export interface KeyUsage extends KmsKeyVersion {
  objects: number
  bytes: number
  uploads: number
}

export interface ObjectStats {
  objects: number
  bytes: number
  /** Of those, stored as plaintext. */
  plaintextObjects: number
  plaintextBytes: number
}

export interface ClaimOptions {
  now: number
  limit: number
  /** How long the claim holds; an item whose worker died is due again after it. */
  leaseMs: number
}

/** A web console session as a shared store keeps it (the token itself is never stored). */
export interface SessionRow {
  /** SHA-256 of the session token, base64url. */
  id: string
  userName: string
  accessKey: string
  /** SHA-256 of the secret key the session was opened with: a changed secret ends it. */
  secretDigest: Uint8Array
  createdAt: number
  lastSeen: number
}

/**
 * Console sessions kept where every gateway of a fleet sees them (src/server/console/sessions.ts
 * applies idle and age limits over it). A store without one leaves sessions in each server's
 * memory, as the embedded default does.
 */
export interface SessionTable {
  insert(session: SessionRow): Promise<void>
  get(id: string): Promise<SessionRow | undefined>
  /** Moves lastSeen forward (never back). */
  touch(id: string, lastSeen: number): Promise<void>
  delete(id: string): Promise<void>
  /** Deletes sessions idle since before `idleBefore` or created before `createdBefore`. */
  deleteExpired(idleBefore: number, createdBefore: number): Promise<number>
}

export interface MetaStore {
  // -------------------------------------------------------------- buckets
  getBucket(name: string): Promise<BucketRow | undefined>
  listBuckets(): Promise<BucketRow[]>
  /** False when a bucket of that name exists. */
  createBucket(row: BucketRow): Promise<boolean>
  /**
   * Deletes the bucket if it holds no objects, with its multipart uploads in progress and
   * their parts (as S3's DeleteBucket discards them), in one transaction; 'deleted' names the
   * part blobs to remove.
   */
  deleteBucketIfEmpty(name: string): Promise<{ status: 'deleted'; unused: BlobId[] } | { status: 'not-empty' } | { status: 'missing' }>
  /** Read-modify-write of a bucket's settings in one transaction; false when the bucket is gone. */
  updateBucketSettings(name: string, change: (settings: Record<string, unknown>) => void): Promise<boolean>

  // -------------------------------------------------------------- objects
  getObject(bucket: string, key: string): Promise<ObjectRow | undefined>
  /**
   * Writes (or replaces) an object row if its bucket exists, with its replication queue item,
   * in one transaction. 'committed' names the blobs of the object it replaced that the new row
   * does not reference (a rewrap keeps them all).
   */
  commitObject(row: ObjectRow, opts?: CommitOptions): Promise<CommitResult>
  /**
   * Replaces an object's tags (PutObjectTagging; [] removes them) without touching anything
   * else; with `etag`, only while the object still has it. False when there is no such object.
   */
  setObjectTags(bucket: string, key: string, tags: TagSet, etag?: string): Promise<boolean>
  /** Deletes an object row (and unqueues its replication: deletes are not replicated); its blobs, or null if absent. */
  deleteObject(bucket: string, key: string): Promise<BlobId[] | null>
  /** Keys after `after` that start with `prefix`, in order. */
  listObjects(bucket: string, after: string, prefix: string, limit: number): Promise<ObjectSummary[]>
  /** listObjects with how each object is encrypted and its tags (the web console's listing, the jobs). */
  listObjectDetails(bucket: string, after: string, prefix: string, limit: number): Promise<ObjectDetails[]>
  /** Objects and bytes under a prefix, and how many of them are plaintext (one aggregate query). */
  objectStats(bucket: string, prefix: string): Promise<ObjectStats>
  /** Objects and open uploads per KMS key version their data keys are wrapped under. */
  keyUsage(): Promise<KeyUsage[]>

  // -------------------------------------------------------------- multipart uploads
  createUpload(row: UploadRow): Promise<void>
  getUpload(uploadId: string): Promise<UploadRow | undefined>
  /** Uploads after (key, uploadId) in a bucket, whole keys at a time (a page never splits one key's uploads). */
  listUploads(bucket: string, after: string, afterId: string, prefix: string, limit: number): Promise<UploadRow[]>
  /** Records a part if its upload exists: 'committed' names the blob of the part it replaced; else 'no-upload'. */
  commitPart(part: PartRow): Promise<CommitResult>
  listParts(uploadId: string, after: number, limit: number): Promise<PartRow[]>
  allParts(uploadId: string): Promise<PartRow[]>
  /**
   * Completes an upload in one transaction: the object row replaces any previous one (as
   * commitObject, with its options), the upload and its parts go. 'committed' names the part
   * blobs left out of the object and the replaced object's blobs; 'no-upload' if it is gone.
   */
  completeUpload(uploadId: string, row: ObjectRow, opts?: CommitOptions): Promise<CommitResult>
  /** Removes an upload and its parts; their blobs, or null if absent. */
  deleteUpload(uploadId: string): Promise<BlobId[] | null>

  // -------------------------------------------------------------- replication queue
  /** Due, unclaimed items (oldest due first), each claimed for `leaseMs` under a new claim token. */
  claimReplications(opts: ClaimOptions): Promise<ReplicationItem[]>
  /** Due items, without claiming them (inspection and tests). */
  dueReplications(now: number, limit: number): Promise<ReplicationItem[]>
  /** When the next item is due (ms since the epoch), or null when none is queued. */
  nextReplicationAt(): Promise<number | null>
  pendingReplications(): Promise<number>
  /**
   * Ends an item: unqueues it and sets its source object's status, both only while they are
   * about the same write (and the claim holds). False when a newer write superseded it.
   */
  finishReplication(item: ReplicationItem, status: 'COMPLETED' | 'FAILED'): Promise<boolean>
  /** Records a failed attempt and when to try again (releases the claim). */
  retryReplication(item: ReplicationItem, attempts: number, nextAttempt: number, error: string): Promise<void>
  /** Drops an item whose write no longer exists (deleted or overwritten). */
  dropReplication(item: ReplicationItem): Promise<void>
  /**
   * At start: what the last run left queued is due now (attempt counts kept) and its claims
   * released; returns how many. A fleet store releases only expired claims.
   */
  resumeReplications(now: number): Promise<number>

  // -------------------------------------------------------------- jobs
  //
  // A job is worked by one claim holder at a time. Each method is one transaction; `change`,
  // `claim` and `release` are pure functions of the row as the transaction reads it (read FOR
  // UPDATE in PostgreSQL), called synchronously, whose result is what is stored.

  /** Stores a new job (its id is new). */
  createJob(job: JobRow): Promise<void>
  getJob(id: string): Promise<JobRow | undefined>
  /** Newest first; only one bucket's when `bucket` is given. */
  listJobs(opts?: { bucket?: string; limit?: number }): Promise<JobRow[]>
  /**
   * The oldest claimable job — state queued or running, and no claim or one whose `until` is
   * past `now` — stored as `claim` returns it; undefined when there is none. A fleet store
   * skips jobs another transaction holds (FOR UPDATE SKIP LOCKED).
   */
  claimJob(now: number, claim: (job: JobRow) => JobRow): Promise<JobRow | undefined>
  /**
   * Read-modify-write of a job: `change` returns the row to store, or null to leave it as it
   * is (and `findings` unwritten). Returns the row as stored after, undefined when there is no
   * such job. Findings are appended in the same transaction, so a job's progress and what it
   * reported move together.
   */
  updateJob(id: string, change: (job: JobRow) => JobRow | null, findings?: Array<Omit<JobFinding, 'seq'>>): Promise<JobRow | undefined>
  /** A job's findings after `afterSeq`, in order. */
  jobFindings(id: string, afterSeq: number, limit: number): Promise<JobFinding[]>
  /**
   * At start: the claims the last run held are given back (each job stored as `release`
   * returns it); how many. The embedded store releases every claim (one process owns its
   * data dir); a fleet store only expired ones.
   */
  resumeJobs(now: number, release: (job: JobRow) => JobRow): Promise<number>

  // -------------------------------------------------------------- users
  /** A user of the server by access key (root is not among them: it comes from the configuration). */
  lookupUser(accessKey: string): Promise<User | undefined>
  /** A user by their stable id (bucket and upload owners are ids); undefined once removed. */
  lookupUserById(id: string): Promise<User | undefined>
  /** A user of the server by name (bucket policies name their principals so). */
  lookupUserByName(name: string): Promise<User | undefined>

  // -------------------------------------------------------------- console sessions
  /** Shared console sessions (a fleet's store); absent: each server keeps its own in memory. */
  readonly sessions?: SessionTable

  // -------------------------------------------------------------- the crash sweep
  /** Every blob id a row references (objects and parts). */
  referencedBlobs(): Promise<Set<BlobId>>

  /**
   * How many objects and multipart uploads are stored encrypted: they need the keys that
   * wrapped them, so a data dir with any never gets a new, empty keyring.
   */
  encryptedData(): Promise<{ objects: number; uploads: number }>

  close(): Promise<void>
}
