/**
 * The web console at `/-/console/`: static files and a small JSON API under
 * `/-/console/api/`, on HTTPS only (it carries credentials). Plain HTTP gets a redirect for
 * pages and a refusal for the API, which never reads the request body.
 *
 * Sessions: login with an access key and secret key (root or a user of the users file)
 * opens a session whose 256-bit token travels in a cookie (HttpOnly; Secure;
 * SameSite=Strict; Path=/-/console). Every request that changes something — login and
 * logout included — must also carry `X-S3SSE-Console: 1`, which a cross-site form or image
 * cannot send, and an Origin, when the browser sends one, naming this server.
 */
import type { IncomingMessage } from 'node:http'
import { S3sseError, isS3sseError } from '../../errors.js'
import { toS3Error } from '../../s3/errors.js'
import { continueBody, readSmallBody, type RequestContext } from '../http.js'
import { lookupUser, type ServerState } from '../state.js'
import type { User } from '../credentials.js'
import { isJobAction, JOB_ERRORS } from '../jobs/index.js'
import * as api from './api.js'
import { asset } from './assets.js'
import { LoginThrottle, SessionStore, SharedSessions, sameSecret, type SessionOptions, type Sessions, type ThrottleOptions } from './sessions.js'

export const CONSOLE_PATH = '/-/console'
export const CONSOLE_HEADER = 'x-s3sse-console'
/**
 * The session cookie is named after the HTTPS port clients use (this server's, or the load
 * balancer's given as --public-url): browsers share cookies between the ports of one host
 * (RFC 6265, section 8.5), and two servers on one machine must not sign each other's users out.
 */
export function sessionCookieName(httpsPort: number): string {
  return `s3sse_console_${httpsPort}`
}

/** Time every failed login waits before its answer. */
export const FAILED_LOGIN_DELAY_MS = 400

/**
 * Everything the console's pages may load comes from this server; no inline script or
 * style, no frames, no plugins, forms submit nowhere (the app sends JSON with fetch), and
 * script can write the DOM only through safe sinks (textContent, not innerHTML).
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "form-action 'none'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "require-trusted-types-for 'script'",
  "trusted-types 'none'",
].join('; ')

// No Strict-Transport-Security: it would hold for every port of the host name, and this
// server commonly runs on localhost beside plain-HTTP development servers.
const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': CONTENT_SECURITY_POLICY,
  'x-frame-options': 'DENY',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'permissions-policy': 'camera=(), microphone=(), geolocation=()',
}

/** Console failures that are not S3 errors: status and the code the JSON carries. */
const CONSOLE_ERRORS: Readonly<Record<string, { status: number; code: string }>> = {
  S3SSE_CONSOLE_LOGIN_FAILED: { status: 401, code: 'LoginFailed' },
  S3SSE_CONSOLE_NO_SESSION: { status: 401, code: 'NoSession' },
  S3SSE_CONSOLE_THROTTLED: { status: 429, code: 'TooManyFailedLogins' },
  S3SSE_CONSOLE_HTTPS_ONLY: { status: 403, code: 'HttpsRequired' },
  S3SSE_CONSOLE_FORBIDDEN: { status: 403, code: 'Forbidden' },
  S3SSE_CONSOLE_BAD_REQUEST: { status: 400, code: 'BadRequest' },
  S3SSE_CONSOLE_NOT_FOUND: { status: 404, code: 'NotFound' },
  S3SSE_CONSOLE_METHOD: { status: 405, code: 'MethodNotAllowed' },
}

const consoleError = (code: keyof typeof CONSOLE_ERRORS, message: string) => new S3sseError(code, message)

export function isConsolePath(rawPath: string): boolean {
  return rawPath === CONSOLE_PATH || rawPath.startsWith(CONSOLE_PATH + '/')
}

export interface ConsoleOptions {
  sessions?: SessionOptions
  throttle?: ThrottleOptions
}

interface Call {
  ctx: RequestContext
  /** Path below /-/console/api/, split on '/', each segment decoded. */
  route: string[]
  query: URLSearchParams
  token?: string
  user?: User
}

export class ConsoleService {
  readonly sessions: Sessions
  readonly throttle: LoginThrottle
  /** Where plain-HTTP visitors are sent; set once the HTTPS listener has its port. */
  httpsPort = 0

  constructor(private readonly state: ServerState, opts: ConsoleOptions = {}) {
    // A fleet's MetaStore shares sessions between gateways; otherwise they stay in this process.
    this.sessions = state.meta.sessions ? new SharedSessions(state.meta.sessions, opts.sessions) : new SessionStore(opts.sessions)
    this.throttle = new LoginThrottle(opts.throttle)
  }

  /** The HTTPS port clients see: the public URL's behind a load balancer, else this server's. */
  private get cookiePort(): number {
    const pub = this.state.config.publicUrl
    if (!pub) return this.httpsPort
    const u = new URL(pub)
    return u.port ? Number(u.port) : 443
  }

  async handle(ctx: RequestContext): Promise<void> {
    try {
      const path = ctx.rawPath
      const apiPrefix = CONSOLE_PATH + '/api/'
      if (path.startsWith(apiPrefix) || path === CONSOLE_PATH + '/api') {
        if (!ctx.secure) {
          throw consoleError('S3SSE_CONSOLE_HTTPS_ONLY', `The console works over HTTPS only: it carries credentials. Use ${this.httpsUrl(ctx)}${CONSOLE_PATH}/`)
        }
        await this.api(ctx, path.slice(apiPrefix.length))
        return
      }
      if (!ctx.secure) return this.redirect(ctx, this.httpsUrl(ctx) + (path === CONSOLE_PATH ? CONSOLE_PATH + '/' : path))
      if (path === CONSOLE_PATH) return this.redirect(ctx, CONSOLE_PATH + '/')
      this.file(ctx, path === CONSOLE_PATH + '/' ? 'index.html' : path.slice(CONSOLE_PATH.length + 1))
    } catch (err) {
      this.fail(ctx, err)
    }
  }

  // ---------------------------------------------------------------- static files and redirects

  private file(ctx: RequestContext, name: string): void {
    const a = asset(name)
    if (!a) throw consoleError('S3SSE_CONSOLE_NOT_FOUND', 'There is no such page in the console.')
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') {
      throw consoleError('S3SSE_CONSOLE_METHOD', `${ctx.method} is not allowed here.`)
    }
    const headers = { ...SECURITY_HEADERS, 'content-type': a.contentType, 'cache-control': 'no-cache', etag: a.etag }
    if (ctx.req.headers['if-none-match'] === a.etag) {
      ctx.res.writeHead(304, headers)
      ctx.res.end()
      return
    }
    ctx.res.writeHead(200, { ...headers, 'content-length': String(a.body.length) })
    ctx.res.end(ctx.method === 'HEAD' ? undefined : a.body)
  }

  private redirect(ctx: RequestContext, location: string): void {
    drain(ctx)
    ctx.res.writeHead(302, { ...SECURITY_HEADERS, location, 'cache-control': 'no-store', 'content-length': '0' })
    ctx.res.end()
  }

  /** This server's HTTPS origin under the host name the client used (when it is a plain host name). */
  private httpsUrl(ctx: RequestContext): string {
    const raw = (ctx.req.headers.host ?? '').trim()
    const m = /^([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d+)?$/.exec(raw)
    const configured = this.state.config.host.includes(':') ? `[${this.state.config.host}]` : this.state.config.host
    if (this.state.config.publicUrl) return this.state.config.publicUrl.replace(/\/+$/, '')
    return `https://${m ? m[1] : configured}:${this.httpsPort}`
  }

  // ---------------------------------------------------------------- the JSON API

  private async api(ctx: RequestContext, rest: string): Promise<void> {
    let route: string[]
    try {
      route = rest === '' ? [] : rest.split('/').map(decodeURIComponent)
    } catch {
      throw consoleError('S3SSE_CONSOLE_BAD_REQUEST', 'The request path is not valid percent-encoding.')
    }
    const query = new URLSearchParams((ctx.req.url ?? '').split('?')[1] ?? '')
    const call: Call = { ctx, route, query, token: cookie(ctx.req, sessionCookieName(this.cookiePort)) }
    const mutating = ctx.method !== 'GET' && ctx.method !== 'HEAD'
    if (mutating) this.checkCsrf(ctx)
    const r = route
    const is = (...parts: string[]) => r.length === parts.length && parts.every((p, i) => p === '*' || p === r[i])

    if (is('session')) {
      if (ctx.method === 'POST') return this.login(call)
      if (ctx.method === 'DELETE') return this.logout(call)
      // Not signed in is an answer here, not an error: the page asks this when it opens.
      return this.methods(ctx, ['GET', 'POST', 'DELETE'], async () => ((await this.signedIn(call)) ? this.whoami(call.user!) : { user: null }))
    }
    await this.authorise(call)
    const user = call.user!
    const s = this.state
    if (is('buckets')) {
      return this.methods(ctx, ['GET', 'POST'], async () =>
        ctx.method === 'GET' ? api.listBuckets(s, user) : [201, await api.createBucket(s, user, await readJson(ctx))],
      )
    }
    if (is('buckets', '*', 'objects')) {
      return this.methods(ctx, ['GET'], async () =>
        api.listObjects(s, user, r[1], {
          after: call.query.get('after') ?? undefined,
          prefix: call.query.get('prefix') ?? undefined,
          limit: call.query.get('limit') ?? undefined,
        }),
      )
    }
    if (is('buckets', '*', 'encryption')) {
      return this.methods(ctx, ['GET', 'PUT', 'DELETE'], async () => {
        if (ctx.method === 'GET') return api.getEncryption(s, user, r[1])
        if (ctx.method === 'PUT') return api.putEncryption(s, user, r[1], await readJson(ctx))
        return api.deleteEncryption(s, user, r[1])
      })
    }
    if (is('buckets', '*', 'policy')) {
      return this.methods(ctx, ['GET', 'PUT', 'DELETE'], async () => {
        if (ctx.method === 'GET') return api.getPolicy(s, user, r[1])
        if (ctx.method === 'PUT') return api.putPolicy(s, user, r[1], await readJson(ctx))
        return api.deletePolicy(s, user, r[1])
      })
    }
    if (is('buckets', '*', 'stats')) return this.methods(ctx, ['GET'], async () => api.bucketStats(s, user, r[1]))
    if (is('buckets', '*', 'jobs')) {
      return this.methods(ctx, ['GET', 'POST'], async () =>
        ctx.method === 'GET' ? api.bucketJobs(s, user, r[1]) : [201, await api.startBucketJob(s, user, r[1], await readJson(ctx))],
      )
    }
    if (is('jobs')) return this.methods(ctx, ['GET'], async () => api.allJobs(s, user))
    if (is('jobs', '*')) return this.methods(ctx, ['GET'], async () => api.oneJob(s, user, r[1]))
    if (is('jobs', '*', '*') && isJobAction(r[2])) {
      const action = r[2]
      return this.methods(ctx, ['POST'], async () => api.controlJobAs(s, user, r[1], action))
    }
    if (is('kms', 'keys')) return this.methods(ctx, ['GET'], async () => api.listKeys(s, user))
    throw consoleError('S3SSE_CONSOLE_NOT_FOUND', 'There is no such console API.')
  }

  private async methods(ctx: RequestContext, allowed: string[], run: () => Promise<unknown>): Promise<void> {
    if (!allowed.includes(ctx.method)) {
      ctx.res.setHeader('allow', allowed.join(', '))
      throw consoleError('S3SSE_CONSOLE_METHOD', `${ctx.method} is not allowed here; use ${allowed.join(' or ')}.`)
    }
    const out = await run()
    if (Array.isArray(out)) sendJson(ctx, out[0] as number, out[1])
    else sendJson(ctx, 200, out)
  }

  /**
   * Requests that change something must show they come from the console's own script: the
   * custom header (a cross-site form cannot set one, and a cross-site fetch that sets one
   * needs a CORS preflight this server never grants) and, when present, our own Origin.
   */
  private checkCsrf(ctx: RequestContext): void {
    if (ctx.req.headers[CONSOLE_HEADER] !== '1') {
      throw consoleError('S3SSE_CONSOLE_FORBIDDEN', `This request changes something and must carry the header X-S3SSE-Console: 1 (the console's own script sends it).`)
    }
    const origin = ctx.req.headers.origin
    if (origin !== undefined && origin !== `https://${ctx.req.headers.host ?? ''}`) {
      throw consoleError('S3SSE_CONSOLE_FORBIDDEN', 'This request comes from another site; the console accepts changes only from its own pages.')
    }
  }

  /** Requires a signed-in user (see signedIn). */
  private async authorise(call: Call): Promise<void> {
    if (!(await this.signedIn(call))) {
      throw consoleError('S3SSE_CONSOLE_NO_SESSION', 'You are not signed in, or your session has ended. Sign in again.')
    }
  }

  /** Sets the call's user from its session, whose user must still exist with the same secret. */
  private async signedIn(call: Call): Promise<boolean> {
    const session = await this.sessions.touch(call.token)
    const user = session ? await lookupUser(this.state, session.accessKey) : undefined
    if (!session || !SessionStore.matches(session, user)) {
      if (session) await this.sessions.end(call.token)
      return false
    }
    call.user = user
    call.ctx.user = user
    return true
  }

  private whoami(user: User) {
    const { mode, region } = this.state.config
    // keyListing: false when the KMS has no admin surface to list keys with (an external one may not).
    return { user: { name: user.name, accessKey: user.accessKey, root: user.root === true }, mode, region, ...(this.state.kmsAdmin ? {} : { keyListing: false }) }
  }

  private async login(call: Call): Promise<void> {
    const { ctx } = call
    const addr = ctx.req.socket.remoteAddress ?? 'unknown'
    const wait = this.throttle.retryAfter(addr)
    if (wait > 0) {
      ctx.res.setHeader('retry-after', String(wait))
      throw consoleError('S3SSE_CONSOLE_THROTTLED', `Too many failed sign-ins from your address. Try again in ${wait} seconds.`)
    }
    const body = await readJson(ctx)
    const accessKey = typeof body.accessKey === 'string' ? body.accessKey.trim() : ''
    const secretKey = typeof body.secretKey === 'string' ? body.secretKey : ''
    const user = accessKey === '' ? undefined : await lookupUser(this.state, accessKey)
    // Compare even when no such user, so the answer takes as long either way.
    const secretOk = sameSecret(secretKey, user?.secretKey ?? '\0no user\0')
    if (!user || !secretOk || secretKey === '') {
      this.throttle.fail(addr)
      this.state.log.info(`console: failed sign-in from ${addr}`)
      await new Promise((r) => setTimeout(r, FAILED_LOGIN_DELAY_MS))
      throw consoleError('S3SSE_CONSOLE_LOGIN_FAILED', 'The access key or the secret key is wrong.')
    }
    this.throttle.succeed(addr)
    await this.sessions.end(call.token)
    const token = await this.sessions.create(user)
    this.state.log.info(`console: ${user.name} signed in from ${addr}`)
    ctx.res.setHeader('set-cookie', this.sessionCookie(token))
    sendJson(ctx, 200, this.whoami(user))
  }

  private async logout(call: Call): Promise<void> {
    await this.sessions.end(call.token)
    call.ctx.res.setHeader('set-cookie', this.sessionCookie('', 0))
    sendJson(call.ctx, 200, { signedOut: true })
  }

  /** No Max-Age while signed in: the cookie goes with the browser session, the server's idle expiry ends it sooner. */
  private sessionCookie(token: string, maxAge?: number): string {
    const name = sessionCookieName(this.cookiePort)
    return `${name}=${token}; Path=${CONSOLE_PATH}; HttpOnly; Secure; SameSite=Strict${maxAge !== undefined ? `; Max-Age=${maxAge}` : ''}`
  }

  private fail(ctx: RequestContext, err: unknown): void {
    let status: number
    let code: string
    let message: string
    const mapped = isS3sseError(err) ? (CONSOLE_ERRORS[err.code] ?? JOB_ERRORS[err.code]) : undefined
    if (mapped) {
      ;({ status, code } = mapped)
      message = (err as Error).message
    } else {
      const e = toS3Error(err)
      ;({ status, code, message } = e)
      if (e.internal) this.state.log.error(`${ctx.requestId} console ${ctx.method} ${ctx.rawPath}: ${String(err instanceof Error ? err.message : err)}`)
    }
    if (ctx.res.headersSent) {
      ctx.res.destroy()
      return
    }
    drain(ctx)
    sendJson(ctx, status, { error: { code, message } })
  }
}

function cookie(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=')
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim()
  }
  return undefined
}

async function readJson(ctx: RequestContext): Promise<Record<string, unknown>> {
  const type = (ctx.req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase()
  if (type !== 'application/json') throw consoleError('S3SSE_CONSOLE_BAD_REQUEST', 'Send the request body as JSON (Content-Type: application/json).')
  continueBody(ctx)
  const raw = await readSmallBody(ctx.req, 64 * 1024)
  let parsed: unknown
  try {
    parsed = JSON.parse(raw.toString('utf8'))
  } catch {
    throw consoleError('S3SSE_CONSOLE_BAD_REQUEST', 'The request body is not valid JSON.')
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw consoleError('S3SSE_CONSOLE_BAD_REQUEST', 'The request body must be a JSON object.')
  }
  return parsed as Record<string, unknown>
}

function sendJson(ctx: RequestContext, status: number, value: unknown): void {
  const body = Buffer.from(JSON.stringify(value), 'utf8')
  ctx.res.writeHead(status, {
    ...SECURITY_HEADERS,
    'content-type': 'application/json; charset=utf-8',
    'cache-control': 'no-store',
    'content-length': String(body.length),
  })
  ctx.res.end(ctx.method === 'HEAD' ? undefined : body)
}

/**
 * Discards an unread request body so the keep-alive connection can carry the next request;
 * a large or unsized one is not read at all: the connection closes after the answer.
 */
function drain(ctx: RequestContext): void {
  const { req, res } = ctx
  if (req.complete) return
  const length = Number(req.headers['content-length'] ?? '0')
  if (req.headers['transfer-encoding'] !== undefined || !(length <= 64 * 1024)) {
    res.setHeader('connection', 'close')
    return
  }
  req.removeAllListeners('readable')
  req.on('data', () => undefined)
  req.resume()
}
