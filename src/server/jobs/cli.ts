/**
 * `s3-sse job …`: start, list, watch, pause, resume and cancel jobs of a running server over
 * its admin API (../admin/client.ts).
 */
import { parseArgs } from 'node:util'
import cliProgress from 'cli-progress'
import { isS3sseError } from '../../errors.js'
import { adminRequest, AdminError, CONNECTION_OPTIONS, CONNECTION_USAGE, resolveConnection, type AdminConnection } from '../admin/client.js'
import type { JobFinding } from '../meta/index.js'
import type { JobView } from './index.js'

export const JOB_USAGE = `usage: s3-sse job <command> [options]

commands:
  start encrypt|rewrap|scrub --bucket B [--prefix P] [--rate N/s] [--to-key K] [--wait]
                           encrypt: seal every plaintext object under the bucket's default encryption
                           rewrap:  move data keys to their key's current version (or --to-key K)
                           scrub:   verify every stored byte; damaged objects are reported
  list                     every job, newest first
  status ID [--wait]       progress (a live bar on a terminal with --wait, until the job stops)
  findings ID              the damaged objects (scrub) and objects a job could not do
  pause ID | resume ID | cancel ID

options:
  --json                   print JSON instead of text
  --wait                   exit once the job stops: 0 completed, 3 completed with damage or
                           errors found, 4 failed, cancelled or paused

${CONNECTION_USAGE}`

export interface JobIo {
  out: (text: string) => void
  err: (text: string) => void
  /** A terminal to draw a live progress bar on; undefined: plain lines. */
  tty?: NodeJS.WriteStream
}

const processIo: JobIo = {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
  tty: process.stdout.isTTY ? process.stdout : undefined,
}

/** Exit codes of --wait. */
export const EXIT_DAMAGE = 3
export const EXIT_STOPPED = 4

const DONE_WORD: Record<JobView['kind'], string> = { encrypt: 'encrypted', rewrap: 're-wrapped', scrub: 'verified intact' }

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`
  const units = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB']
  let v = n
  let u = -1
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024
    u++
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[u]}`
}

export function formatDuration(seconds: number): string {
  const s = Math.round(seconds)
  if (s < 60) return `${s} s`
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`
}

const count = (n: number) => n.toLocaleString('en-US')

/** The pieces of a job's progress as status prints them (pure: tested on its own). */
export function progressText(v: JobView): { objects: string; bytes: string; rate: string; eta: string; outcome: string; percent: number | null } {
  const p = v.progress
  const of = (done: string, total: string | null) => (total === null ? done : `${done} of ${total}`)
  const objects = `${of(count(p.objects.done), p.objects.total === null ? null : count(p.objects.total))} objects`
  const bytes = of(formatBytes(p.bytes.done), p.bytes.total === null ? null : formatBytes(p.bytes.total))
  const rate = p.objectsPerSecond === null ? '-' : `${p.objectsPerSecond < 10 ? p.objectsPerSecond.toFixed(1) : count(Math.round(p.objectsPerSecond))} objects/s, ${formatBytes(Math.round(p.bytesPerSecond ?? 0))}/s`
  const eta = p.etaSeconds === null ? '-' : p.etaSeconds === 0 ? 'done' : `about ${formatDuration(p.etaSeconds)} left`
  const d = v.done
  const outcome = [
    `${count(d.changed)} ${DONE_WORD[v.kind]}`,
    `${count(d.skipped)} skipped`,
    `${count(d.errors)} ${d.errors === 1 ? 'error' : 'errors'}`,
    ...(v.kind === 'scrub' || d.damaged > 0 ? [`${count(d.damaged)} damaged`] : []),
  ].join(', ')
  return { objects, bytes, rate, eta, outcome, percent: p.fraction === null ? null : Math.floor(p.fraction * 100) }
}

function bar(fraction: number | null, width = 30): string {
  const f = fraction === null ? 0 : Math.min(1, Math.max(0, fraction))
  const full = Math.floor(f * width)
  return '[' + '#'.repeat(full) + '-'.repeat(width - full) + ']'
}

/** A job as `status` prints it (plain text, several lines). */
export function describeJob(v: JobView): string {
  const t = progressText(v)
  const where = `bucket ${v.bucket}${v.prefix ? `, prefix ${JSON.stringify(v.prefix)}` : ''}`
  const extra = [v.rate !== null ? `at most ${v.rate}/s` : '', v.toKey !== null ? `to key ${v.toKey}` : ''].filter(Boolean).join(', ')
  return [
    `job ${v.id}  ${v.kind}  ${where}${extra ? ` (${extra})` : ''}`,
    `state     ${v.state}${v.worker ? ` (worked by ${v.worker})` : ''}${v.error ? `: ${v.error}` : ''}`,
    `progress  ${bar(v.progress.fraction)} ${t.percent === null ? '' : `${t.percent}%  `}${t.objects}, ${t.bytes}`,
    `rate      ${t.rate}; ${t.eta}`,
    `outcome   ${t.outcome}`,
  ].join('\n') + '\n'
}

function table(jobs: JobView[]): string {
  if (jobs.length === 0) return 'no jobs\n'
  const rows = [['ID', 'KIND', 'BUCKET', 'STATE', 'DONE', 'ERRORS', 'DAMAGED', 'CREATED'],
    ...jobs.map((j) => [
      j.id, j.kind, j.bucket + (j.prefix ? `/${j.prefix}` : ''), j.state,
      j.progress.objects.total === null ? count(j.done.objects) : `${count(j.done.objects)}/${count(j.progress.objects.total)}`,
      count(j.done.errors), count(j.done.damaged), j.createdAt,
    ])]
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)))
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd()).join('\n') + '\n'
}

function describeFinding(f: JobFinding): string {
  const where = f.part === null ? '' : ` part ${f.part}${f.package === null ? '' : `, package ${f.package}`}`
  return `${f.kind === 'damaged' ? 'DAMAGED' : 'ERROR'}  ${f.key}${where}  ${f.code}: ${f.message}\n`
}

/** The exit code of --wait for a job that has stopped. */
export function waitExitCode(v: JobView): number {
  if (v.state !== 'completed') return EXIT_STOPPED
  return v.done.damaged > 0 || v.done.errors > 0 ? EXIT_DAMAGE : 0
}

const STOPPED = new Set(['completed', 'cancelled', 'failed', 'paused'])

async function allFindings(conn: AdminConnection, id: string): Promise<JobFinding[]> {
  const out: JobFinding[] = []
  let after: number | undefined
  for (;;) {
    const page = (await adminRequest(conn, 'GET', `/jobs/${encodeURIComponent(id)}/findings`, after === undefined ? {} : { after: String(after) })) as { findings: JobFinding[]; next?: number }
    out.push(...page.findings)
    if (page.next === undefined) return out
    after = page.next
  }
}

/** Polls a job until it stops, with a live bar on a terminal; returns the last view. */
async function watch(conn: AdminConnection, id: string, io: JobIo, pollMs: number): Promise<JobView> {
  const get = async () => ((await adminRequest(conn, 'GET', `/jobs/${encodeURIComponent(id)}`)) as { job: JobView }).job
  let v = await get()
  const live = io.tty
    ? new cliProgress.SingleBar(
        { format: '{kind} [{bar}] {percentage}% | {objects} | {bytes} | {rate} | {left} | {problems}', barsize: 24, hideCursor: true, stream: io.tty, etaBuffer: 1, fps: 5 },
        cliProgress.Presets.shades_classic,
      )
    : undefined
  const fields = (x: JobView) => {
    const t = progressText(x)
    // Not `eta`: cli-progress keeps that token for its own estimate; this is the server's.
    return { kind: x.kind, objects: t.objects, bytes: t.bytes, rate: t.rate, left: t.eta, problems: `${count(x.done.errors)} errors${x.kind === 'scrub' ? `, ${count(x.done.damaged)} damaged` : ''}` }
  }
  const total = (x: JobView) => Math.max(1, x.progress.objects.total ?? 1)
  live?.start(total(v), v.done.objects, fields(v))
  while (!STOPPED.has(v.state)) {
    await new Promise((r) => setTimeout(r, pollMs))
    v = await get()
    if (live) {
      live.setTotal(total(v))
      live.update(v.done.objects, fields(v))
    }
  }
  live?.stop()
  return v
}

/** `s3-sse job …`; returns the exit code (0 ok, 1 failed, 2 usage; --wait: see JOB_USAGE). */
export async function jobCommand(argv: string[], io: JobIo = processIo, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let parsed
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        ...CONNECTION_OPTIONS,
        bucket: { type: 'string' },
        prefix: { type: 'string' },
        rate: { type: 'string' },
        'to-key': { type: 'string' },
        wait: { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
        'poll-ms': { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    })
  } catch (e) {
    io.err(`s3-sse job: ${(e as Error).message}\n${JOB_USAGE}`)
    return 2
  }
  const { values, positionals } = parsed
  const [command, target, ...extra] = positionals
  if (values.help || command === undefined) {
    io.out(JOB_USAGE)
    return values.help ? 0 : 2
  }
  const usage = (why: string) => {
    io.err(`s3-sse job ${command}: ${why}\n${JOB_USAGE}`)
    return 2
  }
  const takesId = ['status', 'findings', 'pause', 'resume', 'cancel'].includes(command)
  if (!takesId && !['start', 'list'].includes(command)) return usage('unknown command')
  if (extra.length > 0 || (takesId && target === undefined) || (command === 'list' && target !== undefined)) return usage(takesId ? 'takes one job ID' : 'too many arguments')
  if (command === 'start' && (target === undefined || values.bucket === undefined)) return usage('start KIND --bucket B')
  const pollMs = values['poll-ms'] === undefined ? 1000 : Number(values['poll-ms'])
  if (!Number.isInteger(pollMs) || pollMs < 10) return usage('--poll-ms takes a whole number of milliseconds (10 or more)')
  try {
    const conn = resolveConnection({ endpoint: values.endpoint, dataDir: values['data-dir'], ca: values.ca, region: values.region }, env)
    const print = (value: unknown, text: string) => io.out(values.json ? JSON.stringify(value, null, 2) + '\n' : text)
    const finishWait = async (v: JobView): Promise<number> => {
      const findings = v.done.damaged > 0 || v.done.errors > 0 ? await allFindings(conn, v.id) : []
      print({ job: v, findings }, describeJob(v) + findings.map(describeFinding).join(''))
      return waitExitCode(v)
    }
    const id = encodeURIComponent(target ?? '')
    switch (command) {
      case 'start': {
        const body = { kind: target, bucket: values.bucket, ...(values.prefix !== undefined ? { prefix: values.prefix } : {}), ...(values.rate !== undefined ? { rate: values.rate } : {}), ...(values['to-key'] !== undefined ? { toKey: values['to-key'] } : {}) }
        const { job } = (await adminRequest(conn, 'POST', '/jobs', {}, body)) as { job: JobView }
        if (values.wait) {
          if (!values.json) io.err(`started job ${job.id}\n`)
          return finishWait(await watch(conn, job.id, io, pollMs))
        }
        print({ job }, `started job ${job.id}: ${job.kind} of bucket ${job.bucket}${job.prefix ? `, prefix ${JSON.stringify(job.prefix)}` : ''}\n  s3-sse job status ${job.id} --wait\n`)
        return 0
      }
      case 'list': {
        const { jobs } = (await adminRequest(conn, 'GET', '/jobs')) as { jobs: JobView[] }
        print({ jobs }, table(jobs))
        return 0
      }
      case 'status': {
        if (values.wait) return finishWait(await watch(conn, target!, io, pollMs))
        const { job } = (await adminRequest(conn, 'GET', `/jobs/${id}`)) as { job: JobView }
        print({ job }, describeJob(job))
        return 0
      }
      case 'findings': {
        const findings = await allFindings(conn, target!)
        print({ findings }, findings.length === 0 ? 'nothing found\n' : findings.map(describeFinding).join(''))
        return 0
      }
      default: {
        const { job } = (await adminRequest(conn, 'POST', `/jobs/${id}/${command}`)) as { job: JobView }
        print({ job }, `job ${job.id} is ${job.state}\n`)
        return 0
      }
    }
  } catch (e) {
    const why = e instanceof AdminError ? `${e.message} (${e.code})` : isS3sseError(e) ? `${e.message} (${e.code})` : (e as Error).message
    io.err(`s3-sse job ${command}: ${why}\n`)
    return 1
  }
}
