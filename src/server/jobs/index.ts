/**
 * Jobs as the admin API (src/server/admin/) and the web console see them: starting one (with
 * the checks that belong to its kind), pause / resume / cancel, and the JSON view of a job. The
 * work itself is ./runner.ts and ./work.ts; the rules are ./model.ts.
 */
import { randomBytes } from 'node:crypto'
import { S3sseError, isS3sseError } from '../../errors.js'
import { s3Error } from '../../s3/errors.js'
import type { JobFinding, JobRow } from '../meta/index.js'
import type { User } from '../credentials.js'
import { bucketEncryption } from '../encryption.js'
import { findBucket } from '../handlers/common.js'
import type { ServerState } from '../state.js'
import { FINAL_STATES, isJobKind, jobProgress, newJob, requestAction, type JobAction, type JobProgress } from './model.js'

export { DEFAULT_JOBS, type JobSettings } from '../state.js'
export { JobRunner } from './runner.js'
export { isJobAction, JOB_ACTIONS, JOB_KINDS, type JobAction } from './model.js'

/** How the APIs answer the jobs' own errors (S3 errors keep their S3 status and code). */
export const JOB_ERRORS: Readonly<Record<string, { status: number; code: string }>> = {
  S3SSE_JOB_BAD_REQUEST: { status: 400, code: 'InvalidArgument' },
  S3SSE_JOB_NOT_FOUND: { status: 404, code: 'NoSuchJob' },
  S3SSE_JOB_STATE: { status: 409, code: 'InvalidJobState' },
}

/** A job as the admin API and the console show it: times as ISO dates, progress worked out, the claim as who holds it. */
export type JobView = Omit<JobRow, 'createdAt' | 'updatedAt' | 'startedAt' | 'finishedAt' | 'total' | 'workedMs' | 'claim'> & {
  createdAt: string
  updatedAt: string
  startedAt: string | null
  finishedAt: string | null
  progress: JobProgress
  /** Who works it now (host:pid), while a worker's lease holds. */
  worker: string | null
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString())

export function jobView(job: JobRow, now = Date.now()): JobView {
  return {
    id: job.id,
    kind: job.kind,
    bucket: job.bucket,
    prefix: job.prefix,
    rate: job.rate,
    toKey: job.toKey,
    state: job.state,
    createdBy: job.createdBy,
    createdAt: iso(job.createdAt)!,
    startedAt: iso(job.startedAt),
    finishedAt: iso(job.finishedAt),
    updatedAt: iso(job.updatedAt)!,
    cursor: job.cursor,
    done: job.done,
    progress: jobProgress(job),
    worker: job.claim && job.claim.until > now ? job.claim.worker : null,
    error: job.error,
  }
}

function bad(message: string): S3sseError {
  return new S3sseError('S3SSE_JOB_BAD_REQUEST', message)
}

/**
 * Starts a job for `user`: root any kind, a bucket's owner only encrypt (what they could do by
 * copying each object onto itself). encrypt needs the bucket's default encryption set; rewrap
 * --to-key needs that key to exist and be enabled. One job of a kind at a time per bucket and
 * prefix: a second one is refused while the first is not done.
 */
export async function startJob(state: ServerState, user: User, body: Record<string, unknown>): Promise<JobRow> {
  const { kind, bucket: name, prefix, rate, toKey } = body
  if (!isJobKind(kind)) throw bad('kind must be encrypt, rewrap or scrub')
  if (typeof name !== 'string' || name === '') throw bad('bucket is required')
  if (prefix !== undefined && typeof prefix !== 'string') throw bad('prefix must be a string')
  if (toKey !== undefined && toKey !== null && typeof toKey !== 'string') throw bad('toKey must be a key id or alias')
  if (!user.root && kind !== 'encrypt') throw s3Error('AccessDenied', `Only root may start ${kind} jobs.`)
  const bucket = await findBucket(state, user, name)
  const job = newJob(
    { kind, bucket: bucket.name, prefix: prefix ?? '', rate, toKey: (toKey as string | undefined) ?? null },
    { id: randomBytes(6).toString('hex'), createdBy: user.name, now: Date.now() },
  )
  if (kind === 'encrypt' && !bucketEncryption(bucket)) {
    throw bad(`bucket ${bucket.name} has no default encryption: set it first (PutBucketEncryption, or the console's Default Encryption), then encrypt what it holds`)
  }
  if (job.toKey !== null) {
    try {
      const info = await state.kms.describeKey(job.toKey)
      if (!info.enabled) throw bad(`the KMS key ${job.toKey} is disabled`)
    } catch (err) {
      if (isS3sseError(err, 'S3SSE_KMS_KEY_NOT_FOUND')) throw bad(`there is no KMS key ${job.toKey}`)
      throw err
    }
  }
  const busy = (await state.meta.listJobs({ bucket: bucket.name, limit: 100 })).find(
    (j) => j.kind === kind && j.prefix === job.prefix && !FINAL_STATES.includes(j.state),
  )
  if (busy) throw new S3sseError('S3SSE_JOB_STATE', `job ${busy.id} (${busy.state}) already does ${kind} on this ${job.prefix ? 'prefix' : 'bucket'}: resume or cancel it instead`)
  await state.meta.createJob(job)
  state.jobs?.kick()
  return job
}

export async function getJob(state: ServerState, id: string): Promise<JobRow> {
  const job = /^[0-9a-f]{1,64}$/.test(id) ? await state.meta.getJob(id) : undefined
  if (!job) throw new S3sseError('S3SSE_JOB_NOT_FOUND', `there is no job ${id}`)
  return job
}

/** Pause, resume or cancel (S3SSE_JOB_STATE when the job's state does not allow it). */
export async function controlJob(state: ServerState, id: string, action: JobAction): Promise<JobRow> {
  await getJob(state, id)
  const now = Date.now()
  const job = await state.meta.updateJob(id, (j) => requestAction(j, action, now))
  if (!job) throw new S3sseError('S3SSE_JOB_NOT_FOUND', `there is no job ${id}`)
  if (action === 'resume') state.jobs?.kick()
  return job
}

export const MAX_FINDINGS_PAGE = 1000

export async function jobFindings(state: ServerState, id: string, after: string | null, limit: string | null): Promise<{ findings: JobFinding[]; next?: number }> {
  await getJob(state, id)
  const a = after === null ? 0 : Number(after)
  const n = limit === null ? MAX_FINDINGS_PAGE : Number(limit)
  if (!Number.isSafeInteger(a) || a < 0) throw bad('after must be a finding number (seq)')
  if (!Number.isInteger(n) || n < 1 || n > MAX_FINDINGS_PAGE) throw bad(`limit must be from 1 to ${MAX_FINDINGS_PAGE}`)
  const rows = await state.meta.jobFindings(id, a, n + 1)
  const page = rows.slice(0, n)
  return { findings: page, ...(rows.length > n ? { next: page[page.length - 1].seq } : {}) }
}
