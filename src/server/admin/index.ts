/**
 * The admin API under `/-/admin/`: jobs and KMS key usage, for `s3-sse job` and `s3-sse kms
 * usage`. HTTPS only, signed with SigV4 in the Authorization header exactly as an S3 request
 * (the same verifier: service `s3`, the server's region, the body's SHA-256 in
 * x-amz-content-sha256), and for root only. JSON in, JSON out; errors are
 * `{"error": {"code", "message"}}` with the status of the S3 error or of the job error.
 *
 *   GET  /-/admin/jobs[?bucket=B]                 {jobs: [job…]} newest first
 *   POST /-/admin/jobs                            {kind, bucket, prefix?, rate?, toKey?} → 201 {job}
 *   GET  /-/admin/jobs/ID                         {job}
 *   GET  /-/admin/jobs/ID/findings[?after=N&limit=M]   {findings: [...], next?}
 *   POST /-/admin/jobs/ID/pause|resume|cancel     {job}
 *   GET  /-/admin/kms/usage                       {usage: [{keyId, version, objects, bytes, uploads}], keys?: [...]}
 */
import { S3sseError, isS3sseError } from '../../errors.js'
import { s3Error, toS3Error } from '../../s3/errors.js'
import { authenticate } from '../auth/index.js'
import { WriteBody } from '../body.js'
import { discardBody, parseQuery, readSmallBody, type RequestContext } from '../http.js'
import { controlJob, getJob, isJobAction, JOB_ERRORS, jobFindings, jobView, startJob } from '../jobs/index.js'

export const ADMIN_PATH = '/-/admin'

export function isAdminPath(rawPath: string): boolean {
  return rawPath === ADMIN_PATH || rawPath.startsWith(ADMIN_PATH + '/')
}

const ADMIN_ERRORS: Readonly<Record<string, { status: number; code: string }>> = {
  ...JOB_ERRORS,
  S3SSE_ADMIN_HTTPS_ONLY: { status: 403, code: 'HttpsRequired' },
  S3SSE_ADMIN_NOT_FOUND: { status: 404, code: 'NotFound' },
  S3SSE_ADMIN_METHOD: { status: 405, code: 'MethodNotAllowed' },
}

export async function handleAdmin(ctx: RequestContext): Promise<void> {
  try {
    if (!ctx.secure) throw new S3sseError('S3SSE_ADMIN_HTTPS_ONLY', 'The admin API works over HTTPS only.')
    const url = ctx.req.url ?? '/'
    const q = url.indexOf('?')
    ctx.queryPairs = parseQuery(q >= 0 ? url.slice(q + 1) : '')
    for (const [k, v] of ctx.queryPairs) if (!ctx.query.has(k)) ctx.query.set(k, v)
    await authenticate(ctx)
    if (ctx.presigned) throw s3Error('AccessDenied', 'The admin API takes requests signed in the Authorization header, not presigned URLs.')
    if (!ctx.user?.root) throw s3Error('AccessDenied', 'The admin API is for root only.')
    await route(ctx)
  } catch (err) {
    fail(ctx, err)
  }
}

async function route(ctx: RequestContext): Promise<void> {
  let parts: string[]
  try {
    parts = ctx.rawPath.slice(ADMIN_PATH.length).split('/').filter(Boolean).map(decodeURIComponent)
  } catch {
    throw new S3sseError('S3SSE_ADMIN_NOT_FOUND', 'The request path is not valid percent-encoding.')
  }
  const { state } = ctx
  const is = (...p: string[]) => parts.length === p.length && p.every((x, i) => x === '*' || x === parts[i])
  const method = (allowed: string[]) => {
    if (!allowed.includes(ctx.method)) {
      ctx.res.setHeader('allow', allowed.join(', '))
      throw new S3sseError('S3SSE_ADMIN_METHOD', `${ctx.method} is not allowed here; use ${allowed.join(' or ')}.`)
    }
  }
  if (is('jobs')) {
    method(['GET', 'POST'])
    if (ctx.method === 'GET') {
      const bucket = ctx.query.get('bucket')
      return send(ctx, 200, { jobs: (await state.meta.listJobs(bucket ? { bucket } : {})).map((j) => jobView(j)) })
    }
    const job = await startJob(state, ctx.user!, await readJson(ctx))
    return send(ctx, 201, { job: jobView(job) })
  }
  if (is('jobs', '*')) {
    method(['GET'])
    return send(ctx, 200, { job: jobView(await getJob(state, parts[1])) })
  }
  if (is('jobs', '*', 'findings')) {
    method(['GET'])
    return send(ctx, 200, await jobFindings(state, parts[1], ctx.query.get('after') ?? null, ctx.query.get('limit') ?? null))
  }
  if (is('jobs', '*', '*') && isJobAction(parts[2])) {
    method(['POST'])
    await readJson(ctx, true)
    return send(ctx, 200, { job: jobView(await controlJob(state, parts[1], parts[2])) })
  }
  if (is('kms', 'usage')) {
    method(['GET'])
    const usage = await state.meta.keyUsage()
    const keys = state.kmsAdmin ? (await state.kmsAdmin.listKeys()).map((k) => ({ keyId: k.keyId, alias: k.alias ?? null, current: k.current, versions: k.versions, enabled: k.enabled })) : undefined
    return send(ctx, 200, { usage, ...(keys ? { keys } : {}) })
  }
  throw new S3sseError('S3SSE_ADMIN_NOT_FOUND', 'There is no such admin API.')
}

/** The JSON body, its SHA-256 (or Content-MD5) verified as for any signed S3 request. */
async function readJson(ctx: RequestContext, optional = false): Promise<Record<string, unknown>> {
  const body = new WriteBody(ctx)
  const raw = await readSmallBody(body.stream(), 64 * 1024)
  await body.verify()
  if (raw.length === 0 && optional) return {}
  let parsed: unknown
  try {
    parsed = JSON.parse(raw.toString('utf8'))
  } catch {
    throw new S3sseError('S3SSE_JOB_BAD_REQUEST', 'The request body is not valid JSON.')
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new S3sseError('S3SSE_JOB_BAD_REQUEST', 'The request body must be a JSON object.')
  return parsed as Record<string, unknown>
}

function send(ctx: RequestContext, status: number, value: unknown): void {
  const body = Buffer.from(JSON.stringify(value), 'utf8')
  ctx.res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'cache-control': 'no-store',
    'content-length': String(body.length),
    'x-amz-request-id': ctx.requestId,
  })
  ctx.res.end(ctx.method === 'HEAD' ? undefined : body)
}

function fail(ctx: RequestContext, err: unknown): void {
  const mapped = isS3sseError(err) ? ADMIN_ERRORS[err.code] : undefined
  let status: number
  let code: string
  let message: string
  if (mapped) {
    ;({ status, code } = mapped)
    message = (err as Error).message
  } else {
    const e = toS3Error(err)
    ;({ status, code, message } = e)
    if (e.internal) ctx.state.log.error(`${ctx.requestId} admin ${ctx.method} ${ctx.rawPath}: ${err instanceof Error ? err.message : String(err)}`)
  }
  if (ctx.res.headersSent) {
    ctx.res.destroy()
    return
  }
  if (!discardBody(ctx, 64 * 1024)) ctx.res.setHeader('connection', 'close')
  send(ctx, status, { error: { code, message } })
}
