/**
 * The process-level guard of `s3-sse serve`: an exception or rejection that escaped every
 * handler (a bug: each request's errors are caught and answered where they happen, and no
 * stream is left without an error listener) is logged with its stack, and the server keeps
 * serving everyone else instead of exiting on one request's failure. Its counter is on
 * /-/metrics, so such bugs are seen and fixed rather than hidden.
 */
import type { Logger } from './state.js'

export const escaped = { count: 0 }

export function installProcessGuard(log: Logger): () => void {
  const onError = (what: string) => (err: unknown) => {
    escaped.count++
    const text = err instanceof Error ? (err.stack ?? `${err.name}: ${err.message}`) : String(err)
    log.error(`${what} (a bug; the server keeps serving): ${text}`)
  }
  const onException = onError('uncaught exception')
  const onRejection = onError('unhandled rejection')
  process.on('uncaughtException', onException)
  process.on('unhandledRejection', onRejection)
  return () => {
    process.off('uncaughtException', onException)
    process.off('unhandledRejection', onRejection)
  }
}
