/**
 * What each kind of job does to one object. Every change goes through the one write path
 * (commitObject in ../commit.ts) with a precondition on the row the job read, so an object a
 * client overwrote or deleted meanwhile is never clobbered: the job's write is refused inside
 * the commit's transaction, and what it staged is dropped.
 *
 * - encrypt: a plaintext object sealed under the bucket's default encryption now, part by part
 *   (../sealed.ts stageSealedCopy), keeping its key, metadata, content headers, checksum,
 *   parts and whatever else its row carries; its Last-Modified becomes now and its ETag an
 *   encrypted one, as S3's copy in place does. The plaintext read is checked against the ETag
 *   and checksum first: damaged data is reported, never sealed as if it were good.
 * - rewrap: the data key moved to the current version of its key (or to `toKey`) by the
 *   object layer's rewrap; the stored blobs are kept as they are, byte for byte.
 * - scrub: every stored byte checked without releasing plaintext (../sealed.ts verifyStored):
 *   each package tag of an encrypted object, the ETag MD5 and checksum of a plaintext one.
 */
import { S3sseError, isS3sseError } from '../../errors.js'
import { isDamage, rewrap, type EncryptionRequest, type Manifest } from '../../object/index.js'
import { PlaintextCheck } from '../../s3/integrity.js'
import { resealedEtag } from '../../s3/sse.js'
import { commitObject, objectRow } from '../commit.js'
import { encryptionFor, kmsAccess } from '../encryption.js'
import type { BucketRow, JobFinding, JobRow, ObjectDetails, ObjectRow } from '../meta/index.js'
import { checkedManifest, stageSealedCopy, verifyStored } from '../sealed.js'
import type { ServerState } from '../state.js'

export type Outcome = 'changed' | 'skipped' | 'errors' | 'damaged'

export interface ObjectResult {
  outcome: Outcome
  /** Plaintext bytes of the object looked at (0 when it was gone). */
  bytes: number
  findings: Array<Omit<JobFinding, 'seq'>>
}

/** A failure that stops the whole job (resumable once its cause is fixed). */
export class JobFailure extends Error {}

/**
 * Failures of a component that may pass (a KMS that does not answer, a disk or database that
 * fails): the object is tried again after a while instead of being reported.
 */
export function isTransient(err: unknown): boolean {
  return isS3sseError(err) && ['S3SSE_KMS_UNAVAILABLE', 'S3SSE_STORAGE_FULL', 'S3SSE_STORAGE_IO', 'S3SSE_META_UNAVAILABLE'].includes(err.code)
}

/** What a batch of one job works with, read once per batch. */
export interface BatchContext {
  state: ServerState
  job: JobRow
  bucket: BucketRow
  /** encrypt: the bucket's default encryption now. */
  encryption?: EncryptionRequest
  /** rewrap: where each key id's data keys go (the key and its current version), looked up once per batch. */
  targets: Map<string, Promise<{ keyId: string; version: number }>>
}

/** The batch context, or the reason the job cannot go on. Undefined: the bucket is gone (nothing left to do). */
export async function batchContext(state: ServerState, job: JobRow): Promise<BatchContext | undefined> {
  const bucket = await state.meta.getBucket(job.bucket)
  if (!bucket) return undefined
  const ctx: BatchContext = { state, job, bucket, targets: new Map() }
  if (job.kind === 'encrypt') {
    const encryption = encryptionFor(state, bucket, {})
    if (!encryption) throw new JobFailure(`bucket ${bucket.name} has no default encryption any more: set it again and resume the job`)
    ctx.encryption = encryption
  }
  return ctx
}

const ok = (outcome: Outcome, bytes: number): ObjectResult => ({ outcome, bytes, findings: [] })

function finding(key: string, kind: 'damaged' | 'error', code: string, message: string, part: number | null = null, pkg: number | null = null): Omit<JobFinding, 'seq'> {
  return { key, kind, part, package: pkg, code, message, at: Date.now() }
}

function errorResult(key: string, bytes: number, err: unknown): ObjectResult {
  const code = isS3sseError(err) ? err.code : 'S3SSE_INTERNAL'
  const message = err instanceof Error ? err.message : String(err)
  return { outcome: 'errors', bytes, findings: [finding(key, 'error', code, message)] }
}

/** The write a job read is still the object's: same blobs, same manifest (every write stages new blobs). */
function sameWrite(a: ObjectRow, b: ObjectRow): boolean {
  return a.blobs.length === b.blobs.length && a.blobs.every((id, i) => id === b.blobs[i]) && Buffer.from(a.manifest).equals(Buffer.from(b.manifest))
}

class Superseded extends Error {}

/** Refuses the job's commit when the object is no longer the write it read. */
function unchangedSince(read: ObjectRow) {
  return (current: ObjectRow | undefined) => {
    if (!current || !sameWrite(current, read)) throw new Superseded('the object was overwritten or deleted while the job worked on it')
  }
}

/** Commits a job's row conditionally; false when the object changed meanwhile. */
async function commitIfUnchanged(state: ServerState, row: ObjectRow, read: ObjectRow, staged: Parameters<typeof commitObject>[2]): Promise<boolean> {
  try {
    await commitObject(state, row, staged, { precondition: unchangedSince(read) })
    return true
  } catch (err) {
    if (err instanceof Superseded || isS3sseError(err, 'NoSuchBucket')) return false
    throw err
  }
}

/** A row's manifest, checked against the row (size, parts, encryption); a damaged one is reported. */
function manifestOf(row: ObjectRow): Manifest | ObjectResult {
  try {
    return checkedManifest(row)
  } catch (err) {
    return { outcome: 'damaged', bytes: row.size, findings: [finding(row.key, 'damaged', (err as S3sseError).code ?? 'S3SSE_BAD_MANIFEST', (err as Error).message)] }
  }
}

/** A blob that is gone: damage if the row still names it, nothing if the object changed meanwhile. */
async function missingBlob(state: ServerState, read: ObjectRow, err: unknown): Promise<ObjectResult> {
  const now = await state.meta.getObject(read.bucket, read.key)
  if (!now || !sameWrite(now, read)) return ok('skipped', read.size)
  return { outcome: 'damaged', bytes: read.size, findings: [finding(read.key, 'damaged', 'S3SSE_BLOB_NOT_FOUND', `the stored data is missing: ${(err as Error).message}`)] }
}

// ---------------------------------------------------------------- encrypt

export async function encryptObject(ctx: BatchContext, entry: ObjectDetails): Promise<ObjectResult> {
  if (entry.encryption) return ok('skipped', entry.size)
  const { state } = ctx
  const src = await state.meta.getObject(ctx.bucket.name, entry.key)
  if (!src) return ok('skipped', 0)
  if (src.encryption) return ok('skipped', src.size)
  const m = manifestOf(src)
  if (!('parts' in m)) return m
  const context = { bucket: src.bucket, key: src.key }
  const check = new PlaintextCheck({ etag: src.etag, checksum: src.checksum, parts: m.parts.length })
  let sealed
  try {
    sealed = await stageSealedCopy(state.blobs, { manifest: m, blobs: src.blobs, context }, kmsAccess(state), context, ctx.encryption!, (i, chunk) => check.update(i, chunk))
  } catch (err) {
    if (isS3sseError(err, 'S3SSE_BLOB_NOT_FOUND')) return missingBlob(state, src, err)
    if (isDamage(err)) return { outcome: 'damaged', bytes: src.size, findings: [finding(src.key, 'damaged', (err as S3sseError).code, `${(err as Error).message}; left as it is`)] }
    throw err
  }
  const bad = await check.mismatches()
  if (bad.length > 0) {
    await state.blobs.discard(sealed.blobs)
    return { outcome: 'damaged', bytes: src.size, findings: bad.map((b) => finding(src.key, 'damaged', b.code, `${b.message}; not encrypted, left as it is`)) }
  }
  // Everything the row carries stays (metadata, headers, checksum, parts, and fields added
  // later such as tags); the data, its manifest, ETag and Last-Modified are new.
  const row: ObjectRow = {
    ...src,
    ...objectRow({
      bucket: src.bucket,
      key: src.key,
      manifest: sealed.manifest,
      blobs: sealed.blobs.map((b) => b.id),
      size: src.size,
      etag: resealedEtag(src.etag),
      headers: src.headers,
      meta: src.meta,
      checksum: src.checksum,
      partsCount: src.partsCount,
      tags: src.tags,
    }),
  }
  return (await commitIfUnchanged(state, row, src, sealed.blobs)) ? ok('changed', src.size) : ok('skipped', src.size)
}

// ---------------------------------------------------------------- rewrap

/** The key a data key now under `keyId` moves to, with its current version. */
function targetOf(ctx: BatchContext, keyId: string, algorithm: string): Promise<{ keyId: string; version: number }> {
  // --to-key moves SSE-KMS objects; SSE-S3 ones stay under the server's own key.
  const ref = ctx.job.toKey !== null && algorithm === 'aws:kms' ? ctx.job.toKey : keyId
  let t = ctx.targets.get(ref)
  if (!t) {
    t = ctx.state.kms.describeKey(ref).then((k) => ({ keyId: k.keyId, version: k.current }))
    t.catch(() => ctx.targets.delete(ref))
    ctx.targets.set(ref, t)
  }
  return t
}

export async function rewrapObject(ctx: BatchContext, entry: ObjectDetails): Promise<ObjectResult> {
  // SSE-C objects have no KMS key to move (their key is the customer's).
  if (!entry.encryption || entry.encryption.algorithm === 'SSE-C') return ok('skipped', entry.size)
  const { state } = ctx
  if (entry.kmsKey) {
    const t = await targetOf(ctx, entry.kmsKey.keyId, entry.encryption.algorithm)
    if (t.keyId === entry.kmsKey.keyId && t.version === entry.kmsKey.version) return ok('skipped', entry.size)
  }
  const src = await state.meta.getObject(ctx.bucket.name, entry.key)
  if (!src) return ok('skipped', 0)
  const m = manifestOf(src)
  if (!('parts' in m)) return m
  const e = m.encryption
  if (!e) return ok('skipped', src.size)
  const target = await targetOf(ctx, e.keyId, e.algorithm)
  if (target.keyId === e.keyId && target.version === e.keyVersion) return ok('skipped', src.size)
  const context = { bucket: src.bucket, key: src.key }
  let moved: Manifest
  try {
    moved = await rewrap(m, { kms: state.kms, from: context, to: context, keyId: target.keyId })
  } catch (err) {
    if (isTransient(err)) throw err
    if (isDamage(err)) return { outcome: 'damaged', bytes: src.size, findings: [finding(src.key, 'damaged', (err as S3sseError).code, (err as Error).message)] }
    return errorResult(src.key, src.size, err)
  }
  // The same blobs, etag and Last-Modified: only the wrapped key (and the manifest MAC over it) changed.
  const row: ObjectRow = {
    ...src,
    ...objectRow({
      bucket: src.bucket,
      key: src.key,
      manifest: moved,
      blobs: src.blobs,
      size: src.size,
      etag: src.etag,
      lastModified: src.lastModified,
      headers: src.headers,
      meta: src.meta,
      checksum: src.checksum,
      partsCount: src.partsCount,
      tags: src.tags,
    }),
  }
  return (await commitIfUnchanged(state, row, src, [])) ? ok('changed', src.size) : ok('skipped', src.size)
}

// ---------------------------------------------------------------- scrub

export async function scrubObject(ctx: BatchContext, entry: ObjectDetails): Promise<ObjectResult> {
  // An SSE-C object's tags can be checked only with its customer's key, which is not kept.
  if (entry.encryption?.algorithm === 'SSE-C') return ok('skipped', entry.size)
  const { state } = ctx
  const src = await state.meta.getObject(ctx.bucket.name, entry.key)
  if (!src) return ok('skipped', 0)
  const m = manifestOf(src)
  if (!('parts' in m)) return m
  const check = m.encryption ? undefined : new PlaintextCheck({ etag: src.etag, checksum: src.checksum, parts: m.parts.length })
  let damage
  try {
    damage = await verifyStored(state.blobs, { manifest: m, blobs: src.blobs, context: { bucket: src.bucket, key: src.key } }, kmsAccess(state), check && ((i, c) => check.update(i, c)))
  } catch (err) {
    if (isS3sseError(err, 'S3SSE_BLOB_NOT_FOUND')) return missingBlob(state, src, err)
    if (isTransient(err)) throw err
    // A disabled or missing key: nothing could be learnt about the bytes.
    return errorResult(src.key, src.size, err)
  }
  const findings = damage.map((d) => finding(src.key, 'damaged', d.code, d.message, d.part, d.package))
  if (check && damage.length === 0) {
    for (const b of await check.mismatches()) findings.push(finding(src.key, 'damaged', b.code, b.message))
  }
  if (findings.length > 0) {
    // Damage found while the object was being overwritten is not damage of what is stored now.
    const now = await state.meta.getObject(src.bucket, src.key)
    if (!now || !sameWrite(now, src)) return ok('skipped', src.size)
    return { outcome: 'damaged', bytes: src.size, findings }
  }
  return ok('changed', src.size)
}

export const WORK: Record<JobRow['kind'], (ctx: BatchContext, entry: ObjectDetails) => Promise<ObjectResult>> = {
  encrypt: encryptObject,
  rewrap: rewrapObject,
  scrub: scrubObject,
}
