/**
 * What the web console's JSON API does, over the same server code the S3 handlers call:
 * findBucket (requireBucket's ownership checks), createBucketFor, setBucketEncryption and
 * makeBucketEncryption (PutBucketEncryption's rules, mode checks and KMS key checks). No HTTP
 * here: ./index.ts reads requests and writes responses.
 *
 * Nothing returned carries key material or credentials: keys are described by id, alias,
 * versions and state only.
 */
import type { KeyInfo } from '../../keys/kms.js'
import { s3Error } from '../../s3/errors.js'
import {
  AWS_MANAGED_KEY_ALIAS,
  decideWriteEncryption,
  isSseAlgorithm,
  makeBucketEncryption,
  serviceKeyAlias,
  type BucketEncryption,
  type SseAlgorithm,
  type StoredEncryption,
} from '../../s3/sse.js'
import { isS3sseError } from '../../errors.js'
import type { User } from '../credentials.js'
import { controlJob, getJob, jobView, startJob, type JobAction, type JobView } from '../jobs/index.js'
import type { BucketRow, ObjectStats } from '../meta/index.js'
import { bucketEncryption, setBucketEncryption } from '../encryption.js'
import { createBucketFor, findBucket, ownerOf, visibleBuckets } from '../handlers/common.js'
import { setBucketPolicy } from '../handlers/policy.js'
import type { ServerState } from '../state.js'

/** A KMS key as the console shows it (never key material). */
export interface KeyView extends KeyInfo {
  /** A key the server creates and names itself (bucket service keys, aws/s3, the SSE-S3 key). */
  managed: boolean
}

export interface EncryptionView {
  algorithm: SseAlgorithm
  /** aws mode: the key named in the configuration, as it was written. */
  kmsMasterKeyId?: string
  bucketKeyEnabled: boolean
  /** The KMS key (id or alias) that new objects' data keys come from. */
  keyId: string
  /** That key as the KMS describes it; null while it does not exist yet (created on the first encrypted write). Only from getEncryption. */
  key?: KeyView | null
}

export interface BucketView {
  name: string
  owner: string
  region: string
  createdAt: string
  encryption: EncryptionView | null
}

export interface ObjectView {
  key: string
  size: number
  lastModified: string
  etag: string
  /** How the stored object is encrypted (from its row); null: stored as plaintext. */
  encryption: StoredEncryption | null
  /** The object's tags, in order. */
  tags: Array<{ key: string; value: string }>
}

const MANAGED_PREFIX = 's3-sse/'
const SERVICE_KEY_PREFIX = serviceKeyAlias('')

function bad(message: string): never {
  throw s3Error('InvalidArgument', message)
}

function keyView(k: KeyInfo): KeyView {
  const alias = k.alias?.replace(/^alias\//, '')
  return {
    keyId: k.keyId,
    ...(alias !== undefined ? { alias } : {}),
    ...(k.description !== undefined ? { description: k.description } : {}),
    createdAt: k.createdAt,
    enabled: k.enabled,
    versions: k.versions,
    current: k.current,
    managed: alias !== undefined && (alias.startsWith(MANAGED_PREFIX) || alias === AWS_MANAGED_KEY_ALIAS),
  }
}

function encryptionView(state: ServerState, bucket: BucketRow, config: BucketEncryption): EncryptionView {
  // The key a write would use now: the same decision PutObject makes, without request headers.
  const decision = decideWriteEncryption({ mode: state.config.mode, bucket: bucket.name, bucketDefault: config, headers: {} })
  return {
    algorithm: config.algorithm,
    ...(config.kmsMasterKeyId !== undefined ? { kmsMasterKeyId: config.kmsMasterKeyId } : {}),
    bucketKeyEnabled: config.bucketKeyEnabled,
    keyId: decision!.keyId,
  }
}

/** A bucket as the console shows it; `owner` is the owner's name (ownership itself is by id). */
async function bucketView(state: ServerState, b: BucketRow): Promise<BucketView> {
  const config = bucketEncryption(b)
  return {
    name: b.name,
    owner: (await ownerOf(state, b.owner)).name,
    region: b.region,
    createdAt: new Date(b.createdAt).toISOString(),
    encryption: config ? encryptionView(state, b, config) : null,
  }
}

export async function listBuckets(state: ServerState, user: User): Promise<{ buckets: BucketView[] }> {
  return { buckets: await Promise.all((await visibleBuckets(state, user)).map((b) => bucketView(state, b))) }
}

export async function createBucket(state: ServerState, user: User, body: Record<string, unknown>): Promise<{ bucket: BucketView }> {
  if (typeof body.name !== 'string') bad('name: the bucket name is required')
  return { bucket: await bucketView(state, await createBucketFor(state, user, body.name)) }
}

export interface ListQuery {
  after?: string
  prefix?: string
  limit?: string
}

export const MAX_LIST = 1000

export async function listObjects(state: ServerState, user: User, name: string, q: ListQuery): Promise<{ objects: ObjectView[]; truncated: boolean; next?: string }> {
  const bucket = await findBucket(state, user, name)
  const limit = q.limit === undefined ? 200 : Number(q.limit)
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIST) bad(`limit must be a whole number from 1 to ${MAX_LIST}`)
  const rows = await state.meta.listObjectDetails(bucket.name, q.after ?? '', q.prefix ?? '', limit + 1)
  const truncated = rows.length > limit
  const page = rows.slice(0, limit)
  return {
    objects: page.map((o) => ({
      key: o.key,
      size: o.size,
      lastModified: new Date(o.lastModified).toISOString(),
      etag: o.etag,
      encryption: o.encryption ?? null,
      tags: o.tags ?? [],
    })),
    truncated,
    ...(truncated ? { next: page[page.length - 1].key } : {}),
  }
}

async function describe(state: ServerState, keyId: string): Promise<KeyView | null> {
  try {
    return keyView(await state.kms.describeKey(keyId))
  } catch (err) {
    if (isS3sseError(err, 'S3SSE_KMS_KEY_NOT_FOUND')) return null
    throw err
  }
}

export async function getEncryption(state: ServerState, user: User, name: string): Promise<{ encryption: EncryptionView | null }> {
  const bucket = await findBucket(state, user, name)
  const config = bucketEncryption(bucket)
  if (!config) return { encryption: null }
  const view = encryptionView(state, bucket, config)
  return { encryption: { ...view, key: await describe(state, view.keyId) } }
}

/**
 * Sets a bucket's default encryption from `{algorithm, kmsMasterKeyId?, bucketKeyEnabled?}`.
 * Without bucketKeyEnabled the bucket keeps what it had (oss mode's console does not offer it,
 * and choosing SSE-KMS again must not turn off a bucket key set through the S3 API).
 */
export async function putEncryption(state: ServerState, user: User, name: string, body: Record<string, unknown>): Promise<{ encryption: EncryptionView | null }> {
  const bucket = await findBucket(state, user, name)
  const { algorithm, kmsMasterKeyId, bucketKeyEnabled } = body
  if (!isSseAlgorithm(algorithm)) bad('algorithm must be "aws:kms" (SSE-KMS) or "AES256" (SSE-S3)')
  if (kmsMasterKeyId !== undefined && kmsMasterKeyId !== null && typeof kmsMasterKeyId !== 'string') bad('kmsMasterKeyId must be a string')
  if (bucketKeyEnabled !== undefined && typeof bucketKeyEnabled !== 'boolean') bad('bucketKeyEnabled must be true or false')
  const config = makeBucketEncryption(
    {
      algorithm,
      ...(typeof kmsMasterKeyId === 'string' ? { kmsMasterKeyId } : {}),
      bucketKeyEnabled: bucketKeyEnabled ?? bucketEncryption(bucket)?.bucketKeyEnabled ?? false,
    },
    state.config.mode,
  )
  await setBucketEncryption(state, bucket, config)
  return getEncryption(state, user, name)
}

/** The bucket's policy as stored (the JSON text), or null. */
export async function getPolicy(state: ServerState, user: User, name: string): Promise<{ policy: string | null }> {
  const bucket = await findBucket(state, user, name)
  const text = bucket.settings.policy
  return { policy: typeof text === 'string' ? text : null }
}

/** Replaces the policy from `{policy: "<JSON text>"}`, checked as PutBucketPolicy checks it. */
export async function putPolicy(state: ServerState, user: User, name: string, body: Record<string, unknown>): Promise<{ policy: string | null }> {
  const bucket = await findBucket(state, user, name)
  if (typeof body.policy !== 'string' || body.policy.trim() === '') bad('policy must be the policy document, as text')
  try {
    await setBucketPolicy(state, bucket, body.policy)
  } catch (err) {
    if (isS3sseError(err, 'MalformedPolicy')) bad(`The policy is not valid: ${(err as Error).message}`)
    throw err
  }
  return getPolicy(state, user, name)
}

export async function deletePolicy(state: ServerState, user: User, name: string): Promise<{ policy: null }> {
  await setBucketPolicy(state, await findBucket(state, user, name), null)
  return { policy: null }
}

export async function deleteEncryption(state: ServerState, user: User, name: string): Promise<{ encryption: null }> {
  await setBucketEncryption(state, await findBucket(state, user, name), null)
  return { encryption: null }
}

/**
 * The KMS keys, by id, alias, versions and state. A user other than root does not see the
 * service keys of buckets that are not theirs (their aliases would name those buckets).
 * A KMS without an admin surface (an external one behind the data-path interface only) has
 * no listing: `listing: false`, and the console hides its keys page.
 */
export async function listKeys(state: ServerState, user: User): Promise<{ keys: KeyView[]; listing: boolean }> {
  if (!state.kmsAdmin) return { keys: [], listing: false }
  const mine = new Set((await visibleBuckets(state, user)).map((b) => b.name))
  const keys = (await state.kmsAdmin.listKeys()).map(keyView).filter((k) => {
    if (user.root || k.alias === undefined || !k.alias.startsWith(SERVICE_KEY_PREFIX)) return true
    return mine.has(k.alias.slice(SERVICE_KEY_PREFIX.length))
  })
  return { keys, listing: true }
}

// ---------------------------------------------------------------- stored objects and jobs

/** How many objects a bucket holds, and how many of them are stored as plaintext. */
export async function bucketStats(state: ServerState, user: User, name: string): Promise<{ stats: ObjectStats }> {
  const bucket = await findBucket(state, user, name)
  return { stats: await state.meta.objectStats(bucket.name, '') }
}

/** The jobs of a bucket, newest first. */
export async function bucketJobs(state: ServerState, user: User, name: string): Promise<{ jobs: JobView[] }> {
  const bucket = await findBucket(state, user, name)
  return { jobs: (await state.meta.listJobs({ bucket: bucket.name, limit: 20 })).map((j) => jobView(j)) }
}

/**
 * "Encrypt existing objects": an encrypt job on the bucket. Its owner may start one (they
 * could copy each object onto itself); other kinds of job are root's (startJob checks).
 */
export async function startBucketJob(state: ServerState, user: User, name: string, body: Record<string, unknown>): Promise<{ job: JobView }> {
  const bucket = await findBucket(state, user, name)
  const job = await startJob(state, user, { kind: body.kind ?? 'encrypt', bucket: bucket.name, ...(body.prefix !== undefined ? { prefix: body.prefix } : {}) })
  return { job: jobView(job) }
}

/** One job: root's, or the owner's of its bucket. */
export async function oneJob(state: ServerState, user: User, id: string): Promise<{ job: JobView }> {
  const job = await getJob(state, id)
  if (!user.root) await findBucket(state, user, job.bucket)
  return { job: jobView(job) }
}

function rootOnly(user: User): void {
  if (!user.root) throw s3Error('AccessDenied', 'Only root sees and controls every job.')
}

export async function allJobs(state: ServerState, user: User): Promise<{ jobs: JobView[] }> {
  rootOnly(user)
  return { jobs: (await state.meta.listJobs({ limit: 200 })).map((j) => jobView(j)) }
}

export async function controlJobAs(state: ServerState, user: User, id: string, action: JobAction): Promise<{ job: JobView }> {
  rootOnly(user)
  return { job: jobView(await controlJob(state, id, action)) }
}
