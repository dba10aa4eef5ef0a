/**
 * The rules of jobs, as pure functions of a JobRow (src/server/meta/index.ts): what a request
 * (pause, resume, cancel) may do in each state, how a worker claims, checkpoints and finishes a
 * job under its lease, where it resumes (the cursor), how fast it may go (the rate), and what
 * status shows (progress, rate, ETA). The MetaStore calls the row functions inside its
 * transactions; the runner (./runner.ts) and the APIs only call these.
 *
 *   queued ──claim──▶ running ──finish──▶ completed
 *     │  ▲              │  │ ╲──fail───▶ failed ──resume──▶ queued
 *     │  └──release─────┘  │
 *     ├──pause──▶ paused ◀─┘ (pause)       paused ──resume──▶ queued (or running, its worker still on it)
 *     └──cancel─▶ cancelled ◀── (cancel from queued, running, paused, failed)
 *
 * A worker that meets a pause or a cancel at its next checkpoint records what it did, gives
 * its claim back and stops; one whose lease ran out has lost the job to the next claimant.
 */
import { S3sseError } from '../../errors.js'
import type { JobClaim, JobCounts, JobKind, JobRow, JobState } from '../meta/index.js'

export const JOB_KINDS: readonly JobKind[] = ['encrypt', 'rewrap', 'scrub']
export const FINAL_STATES: readonly JobState[] = ['completed', 'cancelled']

export type JobAction = 'pause' | 'resume' | 'cancel'
export const JOB_ACTIONS: readonly JobAction[] = ['pause', 'resume', 'cancel']

export function isJobKind(v: unknown): v is JobKind {
  return typeof v === 'string' && (JOB_KINDS as readonly string[]).includes(v)
}

export function isJobAction(v: unknown): v is JobAction {
  return typeof v === 'string' && (JOB_ACTIONS as readonly string[]).includes(v)
}

/** The highest rate a job may ask for (objects a second); more is "no limit" in practice. */
export const MAX_RATE = 100_000

export interface JobSpec {
  kind: JobKind
  bucket: string
  prefix?: string
  /** A number, or text as the CLI takes it ("50", "50/s"); null or absent: no limit. */
  rate?: unknown
  toKey?: string | null
}

export const ZERO_COUNTS: Readonly<JobCounts> = { objects: 0, bytes: 0, changed: 0, skipped: 0, errors: 0, damaged: 0 }

export function addCounts(a: JobCounts, b: JobCounts): JobCounts {
  return {
    objects: a.objects + b.objects,
    bytes: a.bytes + b.bytes,
    changed: a.changed + b.changed,
    skipped: a.skipped + b.skipped,
    errors: a.errors + b.errors,
    damaged: a.damaged + b.damaged,
  }
}

function badSpec(message: string): S3sseError {
  return new S3sseError('S3SSE_JOB_BAD_REQUEST', message)
}

/** A rate as the CLI and the API take it: `N` or `N/s`, a positive number. */
export function parseRate(v: unknown): number | null {
  if (v === undefined || v === null || v === '') return null
  const text = typeof v === 'number' ? String(v) : typeof v === 'string' ? v.trim().replace(/\/s$/, '') : ''
  const n = Number(text)
  if (text === '' || !Number.isFinite(n) || n <= 0 || n > MAX_RATE) throw badSpec(`rate must be a number of objects a second above 0 and at most ${MAX_RATE} (e.g. 50 or 50/s), got ${JSON.stringify(v)}`)
  return n
}

/** A new job, queued. `toKey` only for rewrap. */
export function newJob(spec: JobSpec, ids: { id: string; createdBy: string; now: number }): JobRow {
  if (!isJobKind(spec.kind)) throw badSpec(`kind must be one of ${JOB_KINDS.join(', ')}`)
  if (typeof spec.bucket !== 'string' || spec.bucket === '') throw badSpec('bucket is required')
  const prefix = spec.prefix ?? ''
  if (typeof prefix !== 'string' || Buffer.byteLength(prefix) > 1024) throw badSpec('prefix must be a string of at most 1024 bytes')
  if (spec.toKey !== undefined && spec.toKey !== null && (spec.kind !== 'rewrap' || typeof spec.toKey !== 'string' || spec.toKey === '')) {
    throw badSpec('toKey (--to-key) is for rewrap jobs only, and names a KMS key')
  }
  return {
    id: ids.id,
    kind: spec.kind,
    bucket: spec.bucket,
    prefix,
    rate: parseRate(spec.rate),
    toKey: spec.toKey ?? null,
    state: 'queued',
    createdBy: ids.createdBy,
    createdAt: ids.now,
    updatedAt: ids.now,
    startedAt: null,
    finishedAt: null,
    cursor: '',
    total: null,
    done: { ...ZERO_COUNTS },
    workedMs: 0,
    error: null,
    claim: null,
  }
}

// ---------------------------------------------------------------- requests

/** A claim that still holds at `now`. */
export function liveClaim(job: JobRow, now: number): JobClaim | null {
  return job.claim && job.claim.until > now ? job.claim : null
}

/**
 * What pause, resume and cancel do (S3SSE_JOB_STATE when the state does not allow it). A
 * running job's claim stays until its worker sees the request at its next checkpoint.
 */
export function requestAction(job: JobRow, action: JobAction, now: number): JobRow {
  const refuse = () => new S3sseError('S3SSE_JOB_STATE', `job ${job.id} is ${job.state}: it cannot be ${action === 'pause' ? 'paused' : action === 'resume' ? 'resumed' : 'cancelled'}`)
  const next = { ...job, updatedAt: now }
  switch (action) {
    case 'pause':
      if (job.state !== 'queued' && job.state !== 'running') throw refuse()
      return { ...next, state: 'paused' }
    case 'resume':
      if (job.state !== 'paused' && job.state !== 'failed') throw refuse()
      // A worker that has not reached its checkpoint yet simply goes on.
      return { ...next, state: liveClaim(job, now) ? 'running' : 'queued', error: job.state === 'failed' ? null : job.error }
    case 'cancel':
      if (FINAL_STATES.includes(job.state)) throw refuse()
      return { ...next, state: 'cancelled', finishedAt: now }
  }
}

// ---------------------------------------------------------------- the worker's side

/** A worker takes a claimable job (MetaStore.claimJob picks it). */
export function claim(job: JobRow, c: { token: string; worker: string; now: number; leaseMs: number }): JobRow {
  return {
    ...job,
    state: 'running',
    claim: { token: c.token, worker: c.worker, until: c.now + c.leaseMs },
    startedAt: job.startedAt ?? c.now,
    updatedAt: c.now,
  }
}

export function holds(job: JobRow, token: string): boolean {
  return job.claim?.token === token
}

export interface Progress {
  /** The new cursor, when it moved: every key up to it is done (keys listed in store order). */
  cursor?: string
  /** What was done since the last checkpoint (only keys up to the cursor). */
  delta: JobCounts
  /** Working time since the last checkpoint. */
  workedMs: number
  /** Set on the first checkpoint of a job: the objects and bytes it expects. */
  total?: { objects: number; bytes: number }
  error?: string | null
  /** The worker stops with nothing in flight: it gives the claim back (a running job is queued again). */
  release?: boolean
}

/**
 * A checkpoint: the progress is recorded while the worker holds the claim (null otherwise:
 * the job is someone else's now, and nothing is written), and the lease renewed. A worker that
 * sees the job paused or cancelled lets what is in flight finish, then checkpoints with
 * `release`, so everything it did is counted.
 */
export function checkpoint(job: JobRow, token: string, p: Progress, now: number, leaseMs: number): JobRow | null {
  if (!holds(job, token)) return null
  return {
    ...job,
    state: p.release && job.state === 'running' ? 'queued' : job.state,
    cursor: p.cursor ?? job.cursor,
    done: addCounts(job.done, p.delta),
    workedMs: job.workedMs + Math.max(0, p.workedMs),
    total: job.total ?? p.total ?? null,
    error: p.error === undefined ? job.error : p.error,
    claim: p.release ? null : { ...job.claim!, until: now + leaseMs },
    updatedAt: now,
  }
}

/**
 * The worker reached the end of its keys (completed) or met an error it cannot get past
 * (failed, resumable). A job paused meanwhile stays paused unless it is complete; a
 * cancelled one stays cancelled.
 */
export function finish(job: JobRow, token: string, outcome: { state: 'completed' | 'failed'; error?: string }, now: number): JobRow | null {
  if (!holds(job, token)) return null
  const released = { ...job, claim: null, updatedAt: now }
  if (job.state === 'cancelled') return released
  if (outcome.state === 'failed') {
    return job.state === 'paused' ? { ...released, error: outcome.error ?? null } : { ...released, state: 'failed', error: outcome.error ?? 'failed' }
  }
  return { ...released, state: 'completed', finishedAt: now }
}

/** The claim given back without finishing (the server stops; a restart found it held). */
export function release(job: JobRow, now: number): JobRow {
  return { ...job, claim: null, state: job.state === 'running' ? 'queued' : job.state, updatedAt: now }
}

// ---------------------------------------------------------------- the cursor

/**
 * Keys are worked several at a time but finish in any order; the cursor may only pass a key
 * once it and every key before it are done, so a restart resumes exactly after what is
 * recorded and nothing is counted twice. Items are added in key order.
 */
export class Watermark<T> {
  private readonly items: Array<{ key: string; result?: T }> = []
  private readonly index = new Map<string, number>()
  private base = 0

  add(key: string): void {
    this.index.set(key, this.base + this.items.length)
    this.items.push({ key })
  }

  done(key: string, result: T): void {
    const i = this.index.get(key)
    if (i === undefined) throw new Error(`watermark: unknown key ${key}`)
    this.items[i - this.base].result = result
  }

  /** The leading run of done items, removed: the cursor may move to the last one's key. */
  take(): Array<{ key: string; result: T }> {
    let n = 0
    while (n < this.items.length && this.items[n].result !== undefined) n++
    const out = this.items.splice(0, n) as Array<{ key: string; result: T }>
    for (const it of out) this.index.delete(it.key)
    this.base += n
    return out
  }

  get pending(): number {
    return this.items.length
  }
}

// ---------------------------------------------------------------- rate and progress

/**
 * How long to wait before starting the next object so that no more than `rate` a second
 * start: object number `started` (0-based, since `since`) may start at since + started/rate.
 */
export function paceDelay(rate: number | null, since: number, started: number, now: number): number {
  if (rate === null || rate <= 0) return 0
  return Math.max(0, since + (started / rate) * 1000 - now)
}

export interface JobProgress {
  objects: { done: number; total: number | null }
  bytes: { done: number; total: number | null }
  /** 0..1 of the objects, null before the job was counted. */
  fraction: number | null
  /** Over the time spent working; null before any. */
  objectsPerSecond: number | null
  bytesPerSecond: number | null
  /** Seconds left at that rate; null when unknown, 0 when done. */
  etaSeconds: number | null
}

/**
 * Progress as status shows it. The total is what was under the prefix when the job started;
 * keys written later are worked too, so done may pass it (the total then grows with it).
 * The rate counts working time only (not paused or queued time), over every worker.
 */
export function jobProgress(job: JobRow): JobProgress {
  const d = job.done
  const totalObjects = job.total ? Math.max(job.total.objects, d.objects) : null
  const totalBytes = job.total ? Math.max(job.total.bytes, d.bytes) : null
  const seconds = job.workedMs / 1000
  const objectsPerSecond = seconds > 0 && d.objects > 0 ? d.objects / seconds : null
  const bytesPerSecond = seconds > 0 && d.objects > 0 ? d.bytes / seconds : null
  const complete = job.state === 'completed'
  const fraction = complete ? 1 : totalObjects === null ? null : totalObjects === 0 ? 0 : d.objects / totalObjects
  let etaSeconds: number | null = null
  if (complete) etaSeconds = 0
  else if (totalObjects !== null && objectsPerSecond !== null) {
    // By bytes when they dominate (a few large objects), else by objects.
    const byObjects = (totalObjects - d.objects) / objectsPerSecond
    const byBytes = totalBytes !== null && bytesPerSecond ? (totalBytes - d.bytes) / bytesPerSecond : 0
    etaSeconds = Math.max(byObjects, byBytes)
  }
  return {
    objects: { done: d.objects, total: complete ? d.objects : totalObjects },
    bytes: { done: d.bytes, total: complete ? d.bytes : totalBytes },
    fraction,
    objectsPerSecond,
    bytesPerSecond,
    etaSeconds,
  }
}
