/**
 * The request context every handler gets, and the helpers that write S3 responses.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { errorDocument } from '../s3/xml.js'
import { s3Error, toS3Error } from '../s3/errors.js'
import type { ServerState } from './state.js'
import type { User } from './credentials.js'
import type { PayloadMode } from './payload.js'

export interface RequestContext {
  req: IncomingMessage
  res: ServerResponse
  state: ServerState
  requestId: string
  method: string
  /** True when the request arrived over TLS. */
  secure: boolean
  /** Bucket from the host (virtual-hosted style) or the first path segment; '' for the service. */
  bucket: string
  /** Object key, decoded; '' when the request names no object. */
  key: string
  /** The path as received, still percent-encoded (for SigV4). */
  rawPath: string
  /** Decoded query parameters, in order. */
  queryPairs: Array<[string, string]>
  query: Map<string, string>
  /** Set once authenticated. */
  user?: User
  /** The signature version the request was authenticated with (PostObject: its policy's, 4). */
  signatureVersion?: 2 | 4
  payload?: PayloadMode
  presigned?: boolean
  /** The S3 operation (set once routed), for authorisation. */
  op?: string
  /** 100 Continue sent (or not needed). */
  continued?: boolean
  /**
   * Set when the client let the body stall past the idle timeout (timeouts.ts): the request
   * has been answered; readers of the body throw this, and nothing it carried is committed.
   */
  timedOut?: Error
}

/** Throws when the request has been answered with RequestTimeout already (see timedOut). */
export function checkNotTimedOut(ctx: RequestContext): void {
  if (ctx.timedOut) throw ctx.timedOut
}

/**
 * A client that sent `Expect: 100-continue` waits for this before sending the body, so a
 * request refused on its headers (auth, bucket, key) never uploads it. Called by whatever
 * is about to read the body.
 */
export function continueBody(ctx: RequestContext): void {
  if (ctx.continued) return
  ctx.continued = true
  if ((ctx.req.headers.expect ?? '').toLowerCase() === '100-continue' && !ctx.res.headersSent) ctx.res.writeContinue()
}

export function header(ctx: RequestContext, name: string): string | undefined {
  const v = ctx.req.headers[name]
  return Array.isArray(v) ? v.join(',') : v
}

/** Splits a raw query string into decoded pairs; '+' stays '+' (S3 clients percent-encode spaces). */
export function parseQuery(raw: string): Array<[string, string]> {
  const out: Array<[string, string]> = []
  if (raw === '') return out
  for (const part of raw.split('&')) {
    if (part === '') continue
    const eq = part.indexOf('=')
    const k = eq < 0 ? part : part.slice(0, eq)
    const v = eq < 0 ? '' : part.slice(eq + 1)
    try {
      out.push([decodeURIComponent(k), decodeURIComponent(v)])
    } catch {
      throw s3Error('InvalidArgument', 'The query string is not valid percent-encoded UTF-8.')
    }
  }
  return out
}

function baseHeaders(ctx: RequestContext): Record<string, string> {
  return { 'x-amz-request-id': ctx.requestId, 'x-amz-id-2': ctx.requestId, server: 's3-sse' }
}

export function sendXml(ctx: RequestContext, status: number, xml: string, headers: Record<string, string> = {}): void {
  const body = Buffer.from(xml, 'utf8')
  ctx.res.writeHead(status, { ...baseHeaders(ctx), 'content-type': 'application/xml', 'content-length': String(body.length), ...headers })
  ctx.res.end(ctx.method === 'HEAD' ? undefined : body)
}

export function sendEmpty(ctx: RequestContext, status: number, headers: Record<string, string> = {}): void {
  ctx.res.writeHead(status, { ...baseHeaders(ctx), 'content-length': '0', ...headers })
  ctx.res.end()
}

/** Starts a response whose body the caller streams (GetObject). */
export function startBody(ctx: RequestContext, status: number, headers: Record<string, string>): void {
  ctx.res.writeHead(status, { ...baseHeaders(ctx), ...headers })
}

/**
 * Writes an S3 error. A request body not yet read is drained when small, otherwise the
 * connection is closed after the response (reading gigabytes just to discard them helps nobody).
 */
export function sendError(ctx: RequestContext, err: unknown, extraHeaders: Record<string, string> = {}): void {
  const { res, req } = ctx
  if (ctx.timedOut !== undefined && res.headersSent) {
    // Answered RequestTimeout already (timeouts.ts); this is the handler giving up after it.
    res.destroy()
    return
  }
  if (clientGone(ctx, err)) {
    // Not a failure of ours: the client hung up (or stopped reading and was let go).
    ctx.state.log.info(`${ctx.requestId} ${ctx.method} ${ctx.rawPath}: aborted by the client`)
    res.destroy()
    return
  }
  const e = toS3Error(err)
  if (e.internal) ctx.state.log.error(`${ctx.requestId} ${ctx.method} ${ctx.rawPath}: ${describe(err)}`)
  if (res.headersSent) {
    // Too late for an S3 error document: cut the body short so the client sees a failure.
    res.destroy(err instanceof Error ? err : undefined)
    return
  }
  const headers: Record<string, string> = { ...baseHeaders(ctx), ...extraHeaders }
  if (headers.connection === 'close' || !discardBody(ctx, 1024 * 1024)) headers.connection = 'close'
  if (e.status === 304) {
    res.writeHead(304, headers)
    res.end()
    return
  }
  const resource = ctx.rawPath
  const body = Buffer.from(
    errorDocument(e.code, e.message, {
      Resource: resource,
      RequestId: ctx.requestId,
      ...(ctx.bucket ? { BucketName: ctx.bucket } : {}),
      ...(ctx.key && (e.code === 'NoSuchKey' || e.code === 'InvalidRange') ? { Key: ctx.key } : {}),
    }),
    'utf8',
  )
  headers['content-type'] = 'application/xml'
  headers['content-length'] = String(body.length)
  res.writeHead(e.status, headers)
  res.end(ctx.method === 'HEAD' ? undefined : body)
}

const DISCONNECT_CODES = new Set(['ECONNRESET', 'EPIPE', 'ERR_STREAM_PREMATURE_CLOSE', 'ERR_STREAM_DESTROYED', 'ERR_STREAM_WRITE_AFTER_END'])

/** Whether a request failed because its connection went away (not because of the server). */
function clientGone(ctx: RequestContext, err: unknown): boolean {
  const { req, res } = ctx
  if (res.writableFinished) return false
  const socketGone = req.socket?.destroyed === true || res.destroyed
  const code = (err as NodeJS.ErrnoException | undefined)?.code
  return socketGone && (code === undefined || DISCONNECT_CODES.has(code) || (req.destroyed && !req.complete))
}

/**
 * Before an error answer: drops what is left of a request body of at most `limit` bytes, so
 * the keep-alive connection can carry the next request. False when the body is larger, unsized
 * or already destroyed: the connection must close after the answer.
 */
export function discardBody(ctx: RequestContext, limit: number): boolean {
  const { req } = ctx
  if (req.complete) return true
  const length = Number(req.headers['content-length'] ?? 'NaN')
  // A destroyed request cannot be drained: its connection cannot carry another request.
  if (!Number.isFinite(length) || length > limit || req.destroyed) return false
  drain(req)
  return true
}

/**
 * Reads and drops what is left of a request body so the keep-alive connection can carry
 * the next request. A reader that gave up part-way (an async iterator) leaves a 'readable'
 * listener behind, under which resume() does nothing, and a pipe into a parser that stopped
 * reading pauses the request again: remove both first.
 */
function drain(req: IncomingMessage): void {
  req.unpipe()
  req.removeAllListeners('readable')
  req.on('data', () => undefined)
  req.resume()
}

function describe(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message}${err.cause ? ` (cause: ${describe(err.cause)})` : ''}`
  return String(err)
}

/** Reads a small request body (XML documents) whole; larger ones are refused. */
export async function readSmallBody(source: AsyncIterable<Buffer>, limit = 2 * 1024 * 1024): Promise<Buffer> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of source) {
    size += chunk.length
    if (size > limit) throw s3Error('MaxMessageLengthExceeded')
    chunks.push(chunk)
  }
  return Buffer.concat(chunks)
}
