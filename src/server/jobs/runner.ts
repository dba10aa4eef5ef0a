/**
 * The job runner: works the jobs of the MetaStore inside the server process, while it serves.
 *
 * A job is worked by whoever holds its claim (MetaStore.claimJob, a lease renewed at every
 * checkpoint and by a heartbeat), so one process works it at a time, on one machine or across
 * gateways sharing one database; a worker that dies loses the job when its lease runs out, and
 * the next claimant resumes from the cursor. Keys are listed in order, a batch at a time, and
 * worked a few at once (`parallel`), paced to the job's rate. Progress is saved with the cursor
 * (the Watermark in ./model.ts: only keys whose predecessors are all done), so a restart
 * redoes nothing it recorded and counts nothing twice; what it did not record is done again,
 * which every kind of job is safe to do (encrypt skips what is encrypted, rewrap what is on the
 * target key, and each commit is conditional on the row it read).
 *
 * A KMS, disk or database that fails makes the object wait and try again; when it keeps failing
 * the job fails, resumable. Pause and cancel are seen at the next checkpoint or heartbeat: what
 * is in flight finishes and is counted, then the claim is given back.
 */
import { randomBytes } from 'node:crypto'
import { hostname } from 'node:os'
import { S3sseError } from '../../errors.js'
import type { JobFinding, JobRow, ObjectDetails } from '../meta/index.js'
import { DEFAULT_JOBS, type JobSettings, type JobWorker, type ServerState } from '../state.js'
import { addCounts, checkpoint, claim, finish, paceDelay, release, Watermark, ZERO_COUNTS, type Progress } from './model.js'
import { batchContext, isTransient, JobFailure, WORK, type BatchContext, type ObjectResult } from './work.js'

function describe(err: unknown): string {
  if (err instanceof S3sseError) return `${err.code}: ${err.message}`
  if (err instanceof Error) return err.message
  return String(err)
}

export class JobRunner implements JobWorker {
  /** By claim token: a job this process lost (its lease ran out) and claimed again is two works, the old one about to find out. */
  private readonly working = new Map<string, JobWork>()
  private timer: NodeJS.Timeout | undefined
  private filling: Promise<void> | undefined
  private again = false
  private stopping = false
  /** Objects done and found damaged by this process since start (for /-/metrics). */
  objects = 0
  damaged = 0
  /** Who this worker is, in claims (host:pid). */
  readonly worker: string

  constructor(
    readonly state: ServerState,
    readonly settings: JobSettings = DEFAULT_JOBS,
    worker = `${hostname()}:${process.pid}`,
  ) {
    this.worker = worker
  }

  /**
   * Gives back the claims a previous run held, then looks for work. A store that refuses (a
   * full disk) does not stop the server from starting: those claims then end with their lease.
   */
  async start(): Promise<void> {
    const now = Date.now()
    try {
      const resumed = await this.state.meta.resumeJobs(now, (j) => release(j, now))
      if (resumed > 0) this.state.log.info(`jobs: ${resumed} ${resumed === 1 ? 'job was' : 'jobs were'} being worked at the last stop; resuming`)
    } catch (err) {
      this.state.log.error(`jobs: cannot give back the claims of the last run (they end with their lease): ${describe(err)}`)
    }
    this.kick()
  }

  kick(): void {
    this.schedule(0)
  }


  /** Lets what is in flight finish, saves progress and gives the claims back. */
  async stop(): Promise<void> {
    this.stopping = true
    clearTimeout(this.timer)
    await this.filling
    const works = [...this.working.values()]
    for (const w of works) w.stop('server')
    await Promise.allSettled(works.map((w) => w.done))
  }

  private schedule(ms: number): void {
    if (this.stopping) return
    clearTimeout(this.timer)
    this.timer = setTimeout(() => this.pump(), ms)
    this.timer.unref()
  }

  private pump(): void {
    if (this.stopping) return
    if (this.filling) {
      this.again = true
      return
    }
    this.filling = this.fill()
      .catch((err) => this.state.log.error(`jobs: cannot read the job table: ${describe(err)}`))
      .finally(() => {
        this.filling = undefined
        if (this.again) {
          this.again = false
          this.pump()
        } else {
          this.schedule(this.settings.pollMs)
        }
      })
  }

  private async fill(): Promise<void> {
    while (!this.stopping && this.working.size < this.settings.concurrency) {
      const token = randomBytes(12).toString('base64url')
      const now = Date.now()
      const job = await this.state.meta.claimJob(now, (j) => claim(j, { token, worker: this.worker, now, leaseMs: this.settings.leaseMs }))
      if (!job) return
      const work = new JobWork(this, job, token)
      this.working.set(token, work)
      void work.done.finally(() => {
        this.working.delete(token)
        this.kick()
      })
    }
  }
}

type StopReason = 'server' | 'request' | 'lost'

/** One claimed job, worked until it ends, is paused or cancelled, or the server stops. */
class JobWork {
  readonly done: Promise<void>
  private reason: StopReason | null = null
  private failure: string | null = null
  private readonly wakers = new Set<() => void>()
  private lastMark = Date.now()
  private lastSave = 0
  private saving: Promise<void> = Promise.resolve()
  private unsaved: { cursor?: string; delta: typeof ZERO_COUNTS; findings: Array<Omit<JobFinding, 'seq'>> } = { delta: { ...ZERO_COUNTS }, findings: [] }
  private total: { objects: number; bytes: number } | undefined

  constructor(
    private readonly runner: JobRunner,
    private readonly job: JobRow,
    private readonly token: string,
  ) {
    this.done = this.run().catch((err) => runner.state.log.error(`job ${job.id}: ${describe(err)}`))
  }

  private get settings(): JobSettings {
    return this.runner.settings
  }

  private get state(): ServerState {
    return this.runner.state
  }

  stop(reason: StopReason): void {
    this.reason ??= reason
    for (const wake of this.wakers) wake()
  }

  private get halted(): boolean {
    return this.reason !== null || this.failure !== null
  }

  /** Waits, unless the work stops first. */
  private sleep(ms: number): Promise<void> {
    if (ms <= 0 || this.halted) return Promise.resolve()
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer)
        this.wakers.delete(wake)
        resolve()
      }
      const timer = setTimeout(wake, ms)
      this.wakers.add(wake)
    })
  }

  private async run(): Promise<void> {
    const { job } = this
    const log = this.state.log
    log.info(`job ${job.id}: ${job.kind} of ${job.bucket}${job.prefix ? `/${job.prefix}*` : ''} ${job.cursor ? `resumed after ${JSON.stringify(job.cursor)}` : 'started'} (worker ${this.runner.worker})`)
    const heartbeat = setInterval(() => void this.save({}), Math.max(50, Math.min(this.settings.leaseMs / 3, 5_000)))
    heartbeat.unref()
    let complete = false
    try {
      if (!job.total) {
        const s = await this.retrying(() => this.state.meta.objectStats(job.bucket, job.prefix))
        this.total = { objects: s.objects, bytes: s.bytes }
        await this.save({})
      }
      let cursor = job.cursor
      const pace = { since: Date.now(), started: 0 }
      while (!this.halted) {
        const ctx = await this.retrying(() => batchContext(this.state, job))
        if (!ctx) {
          log.info(`job ${job.id}: bucket ${job.bucket} no longer exists; nothing left to do`)
          complete = true
          break
        }
        const page = await this.retrying(() => this.state.meta.listObjectDetails(job.bucket, cursor, job.prefix, this.settings.batch))
        if (page.length === 0) {
          complete = true
          break
        }
        await this.batch(ctx, page, pace)
        cursor = page[page.length - 1].key
      }
    } catch (err) {
      this.failure = err instanceof JobFailure ? err.message : describe(err)
    } finally {
      clearInterval(heartbeat)
    }
    if (this.reason === 'lost') {
      log.info(`job ${job.id}: another worker holds it now; stopped here`)
    } else if (this.failure !== null) {
      await this.save({ finish: { state: 'failed', error: this.failure } })
      log.error(`job ${job.id}: failed: ${this.failure}`)
    } else if (complete) {
      await this.save({ finish: { state: 'completed' } })
      log.info(`job ${job.id}: completed`)
    } else {
      await this.save({ release: true })
      log.info(`job ${job.id}: ${this.reason === 'server' ? 'stopped with the server; it resumes at the next start' : 'stopped (paused or cancelled)'}`)
    }
  }

  /** A store or lookup call the job needs, tried again while its component fails. */
  private async retrying<T>(call: () => Promise<T>): Promise<T> {
    const delays = this.settings.retryDelaysMs
    for (let i = 0; ; i++) {
      try {
        return await call()
      } catch (err) {
        if (!isTransient(err) || i >= delays.length) throw err
        if (this.halted) throw err
        this.state.log.info(`job ${this.job.id}: ${describe(err)}; trying again in ${delays[i]} ms`)
        await this.sleep(delays[i])
      }
    }
  }

  /** Works one listed page, `parallel` objects at a time, paced to the job's rate. */
  private async batch(ctx: BatchContext, page: ObjectDetails[], pace: { since: number; started: number }): Promise<void> {
    const marks = new Watermark<ObjectResult>()
    for (const e of page) marks.add(e.key)
    let next = 0
    const lane = async () => {
      while (!this.halted && next < page.length) {
        const entry = page[next++]
        await this.sleep(paceDelay(this.job.rate, pace.since, pace.started++, Date.now()))
        if (this.halted) return
        const result = await this.attempt(ctx, entry)
        if (!result) return
        marks.done(entry.key, result)
        this.collect(marks)
      }
    }
    await Promise.all(Array.from({ length: Math.max(1, this.settings.parallel) }, lane))
    this.collect(marks)
    await this.save({})
  }

  /** One object, tried again while a component fails; undefined: not done (the work stops). */
  private async attempt(ctx: BatchContext, entry: ObjectDetails): Promise<ObjectResult | undefined> {
    const delays = this.settings.retryDelaysMs
    for (let i = 0; ; i++) {
      try {
        return await WORK[this.job.kind](ctx, entry)
      } catch (err) {
        if (err instanceof JobFailure) {
          this.failure ??= err.message
          return undefined
        }
        if (!isTransient(err)) {
          this.state.log.error(`job ${this.job.id}: ${entry.key}: ${describe(err)}`)
          return { outcome: 'errors', bytes: entry.size, findings: [{ key: entry.key, kind: 'error', part: null, package: null, code: err instanceof S3sseError ? err.code : 'S3SSE_INTERNAL', message: describe(err), at: Date.now() }] }
        }
        if (this.halted) return undefined
        if (i >= delays.length) {
          this.failure ??= `${describe(err)} (object ${JSON.stringify(entry.key)}, ${i + 1} tries); resume the job once this is fixed`
          return undefined
        }
        this.state.log.info(`job ${this.job.id}: ${describe(err)}; trying ${JSON.stringify(entry.key)} again in ${delays[i]} ms`)
        await this.sleep(delays[i])
      }
    }
  }

  /** Moves finished keys (only a leading run of them) into what the next checkpoint saves. */
  private collect(marks: Watermark<ObjectResult>): void {
    for (const { key, result } of marks.take()) {
      const u = this.unsaved
      u.cursor = key
      u.delta = addCounts(u.delta, {
        objects: 1,
        bytes: result.bytes,
        changed: result.outcome === 'changed' ? 1 : 0,
        skipped: result.outcome === 'skipped' ? 1 : 0,
        errors: result.outcome === 'errors' ? 1 : 0,
        damaged: result.outcome === 'damaged' ? 1 : 0,
      })
      u.findings.push(...result.findings)
    }
    if (Date.now() - this.lastSave >= this.settings.checkpointMs) void this.save({})
  }

  /** Saves progress (one at a time, in order); a refused save means the job is someone else's now. */
  private save(opts: { release?: boolean; finish?: { state: 'completed' | 'failed'; error?: string } }): Promise<void> {
    this.saving = this.saving.then(() => this.write(opts))
    return this.saving
  }

  private async write(opts: { release?: boolean; finish?: { state: 'completed' | 'failed'; error?: string } }): Promise<void> {
    if (this.reason === 'lost') return
    const now = Date.now()
    // What completes while this save is under way goes into the next one.
    const u = this.unsaved
    this.unsaved = { delta: { ...ZERO_COUNTS }, findings: [] }
    const progress: Progress = {
      ...(u.cursor !== undefined ? { cursor: u.cursor } : {}),
      delta: u.delta,
      workedMs: now - this.lastMark,
      ...(this.total ? { total: this.total } : {}),
      ...(opts.release ? { release: true } : {}),
    }
    const leaseMs = this.settings.leaseMs
    let applied = false
    let stored: JobRow | undefined
    try {
      stored = await this.state.meta.updateJob(
        this.job.id,
        (j) => {
          const c = checkpoint(j, this.token, progress, now, leaseMs)
          const out = c && opts.finish ? finish(c, this.token, opts.finish, now) : c
          applied = out !== null
          return out
        },
        u.findings,
      )
    } catch (err) {
      // Kept, and saved with the next checkpoint.
      const later = this.unsaved
      this.unsaved = { cursor: later.cursor ?? u.cursor, delta: addCounts(u.delta, later.delta), findings: [...u.findings, ...later.findings] }
      this.state.log.error(`job ${this.job.id}: cannot save progress: ${describe(err)}`)
      return
    }
    if (!stored || !applied) {
      this.stop('lost')
      return
    }
    this.runner.objects += u.delta.objects
    this.runner.damaged += u.delta.damaged
    this.lastMark = now
    this.lastSave = now
    if (stored.state !== 'running' && !opts.release && !opts.finish) this.stop('request')
  }
}
