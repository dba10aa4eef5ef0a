/**
 * The rules of jobs (src/server/jobs/model.ts) as pure functions: requests in every state,
 * claims and leases, checkpoints that count only what the cursor passed, finishing, the
 * watermark, pacing, and the progress / rate / ETA that status shows.
 */
import { describe, expect, it } from 'vitest'
import type { JobRow, JobState } from '../../src/server/meta/index.js'
import {
  checkpoint, claim, finish, jobProgress, newJob, paceDelay, parseRate, release, requestAction, Watermark, ZERO_COUNTS,
  type JobAction,
} from '../../src/server/jobs/model.js'
import { describeJob, progressText, waitExitCode } from '../../src/server/jobs/cli.js'
import { jobView } from '../../src/server/jobs/index.js'

const T0 = 1_800_000_000_000
const job = (over: Partial<JobRow> = {}): JobRow => ({ ...newJob({ kind: 'encrypt', bucket: 'b' }, { id: 'abc', createdBy: 'root', now: T0 }), ...over })
const counts = (objects: number, bytes = 0) => ({ ...ZERO_COUNTS, objects, bytes, changed: objects })

describe('job requests', () => {
  const table: Array<[JobState, JobAction, JobState | 'refused']> = [
    ['queued', 'pause', 'paused'], ['running', 'pause', 'paused'], ['paused', 'pause', 'refused'], ['failed', 'pause', 'refused'], ['completed', 'pause', 'refused'], ['cancelled', 'pause', 'refused'],
    ['paused', 'resume', 'queued'], ['failed', 'resume', 'queued'], ['queued', 'resume', 'refused'], ['running', 'resume', 'refused'], ['completed', 'resume', 'refused'], ['cancelled', 'resume', 'refused'],
    ['queued', 'cancel', 'cancelled'], ['running', 'cancel', 'cancelled'], ['paused', 'cancel', 'cancelled'], ['failed', 'cancel', 'cancelled'], ['completed', 'cancel', 'refused'], ['cancelled', 'cancel', 'refused'],
  ]
  it.each(table)('%s + %s → %s', (from, action, to) => {
    const j = job({ state: from })
    if (to === 'refused') {
      expect(() => requestAction(j, action, T0 + 1)).toThrow(expect.objectContaining({ code: 'S3SSE_JOB_STATE' }))
      return
    }
    const out = requestAction(j, action, T0 + 1)
    expect(out.state).toBe(to)
    expect(out.updatedAt).toBe(T0 + 1)
    expect(out.finishedAt).toBe(to === 'cancelled' ? T0 + 1 : null)
  })

  it('resuming a paused job whose worker still holds its lease lets that worker go on', () => {
    const c = claim(job(), { token: 't', worker: 'w', now: T0, leaseMs: 1000 })
    const paused = requestAction(c, 'pause', T0 + 10)
    expect(requestAction(paused, 'resume', T0 + 20).state).toBe('running')
    expect(requestAction(paused, 'resume', T0 + 2000).state).toBe('queued')
    expect(requestAction({ ...job({ state: 'failed' }), error: 'KMS down' }, 'resume', T0).error).toBeNull()
  })

  it('validates what a job is asked to do', () => {
    expect(parseRate('50/s')).toBe(50)
    expect(parseRate(2.5)).toBe(2.5)
    expect(parseRate(undefined)).toBeNull()
    for (const bad of ['0', '-1', 'fast', '5/min', 1e9]) expect(() => parseRate(bad), String(bad)).toThrow(expect.objectContaining({ code: 'S3SSE_JOB_BAD_REQUEST' }))
    expect(() => newJob({ kind: 'defrag' as never, bucket: 'b' }, { id: 'x', createdBy: 'root', now: 0 })).toThrow(/kind/)
    expect(() => newJob({ kind: 'scrub', bucket: 'b', toKey: 'k' }, { id: 'x', createdBy: 'root', now: 0 })).toThrow(/rewrap/)
    expect(newJob({ kind: 'rewrap', bucket: 'b', toKey: 'alias/k', prefix: 'p/' }, { id: 'x', createdBy: 'root', now: 0 })).toMatchObject({ toKey: 'alias/k', prefix: 'p/', state: 'queued', cursor: '' })
  })
})

describe('claims, checkpoints and finishing', () => {
  it('a checkpoint records progress and renews the lease only for the claim holder', () => {
    const c = claim(job(), { token: 'mine', worker: 'host:1', now: T0, leaseMs: 1000 })
    expect(c).toMatchObject({ state: 'running', startedAt: T0, claim: { token: 'mine', worker: 'host:1', until: T0 + 1000 } })
    const p = { cursor: 'k9', delta: counts(10, 100), workedMs: 500, total: { objects: 40, bytes: 400 } }
    const saved = checkpoint(c, 'mine', p, T0 + 600, 1000)!
    expect(saved).toMatchObject({ cursor: 'k9', workedMs: 500, total: { objects: 40, bytes: 400 }, claim: { until: T0 + 1600 } })
    expect(saved.done.objects).toBe(10)
    expect(checkpoint(saved, 'theirs', p, T0 + 700, 1000)).toBeNull()
    // A later checkpoint adds; the total is kept from the first.
    const again = checkpoint(saved, 'mine', { delta: counts(5, 50), workedMs: 100, total: { objects: 99, bytes: 0 } }, T0 + 800, 1000)!
    expect(again).toMatchObject({ cursor: 'k9', workedMs: 600, total: { objects: 40, bytes: 400 } })
    expect(again.done).toMatchObject({ objects: 15, bytes: 150, changed: 15 })
  })

  it('a paused job keeps its claim until the worker releases it, and then stays paused', () => {
    const c = claim(job(), { token: 't', worker: 'w', now: T0, leaseMs: 1000 })
    const paused = requestAction(c, 'pause', T0 + 1)
    expect(paused.claim?.token).toBe('t')
    const mid = checkpoint(paused, 't', { delta: counts(1), workedMs: 1 }, T0 + 2, 1000)!
    expect(mid.claim).not.toBeNull()
    const last = checkpoint(mid, 't', { delta: counts(2), workedMs: 1, release: true }, T0 + 3, 1000)!
    expect(last).toMatchObject({ state: 'paused', claim: null })
    expect(last.done.objects).toBe(3)
    // A running job released (the server stops) is queued for whoever comes next.
    expect(checkpoint(c, 't', { delta: ZERO_COUNTS, workedMs: 0, release: true }, T0 + 3, 1000)).toMatchObject({ state: 'queued', claim: null })
    expect(release(c, T0 + 9)).toMatchObject({ state: 'queued', claim: null, updatedAt: T0 + 9 })
  })

  it('finishing: completed, failed (resumable), and a cancel or pause that came first', () => {
    const c = claim(job(), { token: 't', worker: 'w', now: T0, leaseMs: 1000 })
    expect(finish(c, 't', { state: 'completed' }, T0 + 5)).toMatchObject({ state: 'completed', finishedAt: T0 + 5, claim: null })
    expect(finish(c, 't', { state: 'failed', error: 'KMS down' }, T0 + 5)).toMatchObject({ state: 'failed', error: 'KMS down', finishedAt: null, claim: null })
    expect(finish(c, 'x', { state: 'completed' }, T0 + 5)).toBeNull()
    const cancelled = requestAction(c, 'cancel', T0 + 1)
    expect(finish(cancelled, 't', { state: 'completed' }, T0 + 5)).toMatchObject({ state: 'cancelled', finishedAt: T0 + 1 })
    const paused = requestAction(c, 'pause', T0 + 1)
    expect(finish(paused, 't', { state: 'completed' }, T0 + 5)?.state).toBe('completed')
    expect(finish(paused, 't', { state: 'failed', error: 'e' }, T0 + 5)).toMatchObject({ state: 'paused', error: 'e' })
  })
})

describe('the watermark', () => {
  it('passes a key only once it and every key before it are done', () => {
    const w = new Watermark<number>()
    for (const k of ['a', 'b', 'c', 'd']) w.add(k)
    w.done('b', 2)
    w.done('d', 4)
    expect(w.take()).toEqual([])
    w.done('a', 1)
    expect(w.take()).toEqual([{ key: 'a', result: 1 }, { key: 'b', result: 2 }])
    expect(w.pending).toBe(2)
    w.add('e')
    w.done('c', 3)
    w.done('e', 5)
    expect(w.take().map((x) => x.key)).toEqual(['c', 'd', 'e'])
    expect(w.pending).toBe(0)
  })
})

describe('pacing, progress and ETA', () => {
  it('starts no more than `rate` objects a second', () => {
    expect(paceDelay(null, T0, 1000, T0)).toBe(0)
    expect(paceDelay(10, T0, 0, T0)).toBe(0)
    expect(paceDelay(10, T0, 5, T0)).toBe(500)
    expect(paceDelay(10, T0, 5, T0 + 700)).toBe(0)
    expect(paceDelay(0.5, T0, 1, T0)).toBe(2000)
  })

  it('rate over working time, ETA by objects or bytes whichever is further, done past the total', () => {
    const running = job({ state: 'running', total: { objects: 100, bytes: 1000 }, done: counts(25, 750), workedMs: 5000 })
    const p = jobProgress(running)
    expect(p).toMatchObject({ objects: { done: 25, total: 100 }, bytes: { done: 750, total: 1000 }, fraction: 0.25, objectsPerSecond: 5, bytesPerSecond: 150 })
    expect(p.etaSeconds).toBe(15) // objects: 75 / 5; bytes: 250 / 150 ≈ 1.7
    const bytesBound = jobProgress(job({ state: 'running', total: { objects: 10, bytes: 10_000 }, done: counts(9, 100), workedMs: 1000 }))
    expect(bytesBound.etaSeconds).toBeCloseTo(99, 5)
    expect(jobProgress(job({ total: { objects: 10, bytes: 10 }, done: counts(12, 12) })).objects).toEqual({ done: 12, total: 12 })
    expect(jobProgress(job())).toMatchObject({ fraction: null, objectsPerSecond: null, etaSeconds: null, objects: { total: null } })
    expect(jobProgress(job({ state: 'completed', total: { objects: 0, bytes: 0 } }))).toMatchObject({ fraction: 1, etaSeconds: 0 })
  })

  it('status text and the exit code of --wait', () => {
    const v = jobView(job({ state: 'running', total: { objects: 10_000, bytes: 3 * 1024 * 1024 }, done: { ...counts(2500, 1024 * 1024), errors: 2, changed: 2498 }, workedMs: 10_000 }))
    expect(progressText(v)).toEqual({
      objects: '2,500 of 10,000 objects',
      bytes: '1.0 MiB of 3.0 MiB',
      rate: '250 objects/s, 102 KiB/s',
      eta: 'about 30 s left',
      outcome: '2,498 encrypted, 0 skipped, 2 errors',
      percent: 25,
    })
    expect(describeJob(v)).toContain('[#######-----------------------] 25%')
    expect(waitExitCode(v)).toBe(4)
    expect(waitExitCode(jobView(job({ state: 'completed', done: counts(3) })))).toBe(0)
    expect(waitExitCode(jobView(job({ state: 'completed', done: { ...counts(3), damaged: 1 } })))).toBe(3)
    expect(waitExitCode(jobView(job({ state: 'cancelled' })))).toBe(4)
  })
})
