/**
 * Bounds on how long a client may hold a connection without making progress (slowloris):
 *
 * - headers: the whole request head must arrive within `headersMs` (Node's headersTimeout,
 *   checked every `connectionsCheckingInterval`); a TLS handshake within the same time.
 * - idle: while the server waits for the request body, or writes a response the client does
 *   not read, `idleMs` without a byte moving ends the request. A stalled upload is answered
 *   400 RequestTimeout (S3's code) on a closing connection, and what it staged is removed by
 *   the handler as for any failed write. While the server itself works (a long copy, a slow
 *   KMS) the rule does not apply: the client is not at fault.
 * - keep-alive: an idle connection between requests is closed after `keepAliveMs`.
 */
import { s3Error } from '../s3/errors.js'
import { sendError, type RequestContext } from './http.js'

export interface Timeouts {
  headersMs: number
  idleMs: number
  keepAliveMs: number
}

export const DEFAULT_TIMEOUTS: Timeouts = { headersMs: 60_000, idleMs: 60_000, keepAliveMs: 65_000 }

/** Options for http(s).createServer that enforce `t`. */
export function serverTimeoutOptions(t: Timeouts): Record<string, number> {
  return {
    requestTimeout: 0,
    headersTimeout: t.headersMs,
    keepAliveTimeout: t.keepAliveMs,
    // Node checks the headers deadline on this interval (30 s by default): often enough
    // that a short headersTimeout holds.
    connectionsCheckingInterval: Math.max(100, Math.min(30_000, Math.floor(t.headersMs / 4))),
    handshakeTimeout: t.headersMs,
  }
}

/** Arms the idle rule on one request. */
export function watchIdle(ctx: RequestContext, idleMs: number): void {
  if (!(idleMs > 0)) return
  ctx.req.setTimeout(idleMs, () => {
    const { req, res } = ctx
    if (res.writableFinished) return
    if (res.headersSent) {
      // A response the client stopped reading (or a body the server is still streaming
      // into a full socket): nothing more can be said on this connection.
      res.destroy()
      return
    }
    // The server is working (the body is all in, or a 100-continue client waits to be asked
    // for it): the client is waiting, not stalling.
    if (req.complete || !ctx.continued) return
    const err = s3Error('RequestTimeout')
    ctx.timedOut = err
    sendError(ctx, err, { connection: 'close' })
    // Once the answer is out, cut the body: a reader still waiting for it fails, and the
    // handler removes what it staged. Also if the client never lets the answer drain.
    let cut = false
    const cutBody = () => {
      if (cut) return
      cut = true
      req.destroy(err)
    }
    res.once('finish', () => setImmediate(cutBody))
    setTimeout(cutBody, 1000).unref()
  })
}
