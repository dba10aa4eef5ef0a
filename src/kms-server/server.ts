/**
 * `s3-sse kms serve`: the embedded keyring of a data dir as a network KMS that speaks the
 * AWS KMS JSON 1.1 protocol over HTTPS, signed with SigV4 (service `kms`) by the data dir's
 * users. A fleet of `s3-sse serve --kms aws` gateways then shares one keyring.
 *
 * Requests: `POST /` with `X-Amz-Target: TrentService.<Op>` and a JSON body
 * (`application/x-amz-json-1.1`). `GET /-/health` answers without auth. Errors are
 * `{"__type": …, "message": …}` with the exception names of AWS KMS.
 */
import { createHash, randomUUID } from 'node:crypto'
import { mkdirSync } from 'node:fs'
import https from 'node:https'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { resolve } from 'node:path'
import { isS3sseError } from '../errors.js'
import { openEmbeddedKms, type EmbeddedKms } from '../keys/embedded.js'
import { verifyHeaderSignature } from '../server/auth/sigv4.js'
import { loadRootCredentials, UserStore, type User } from '../server/credentials.js'
import { loadTls, type TlsMaterial } from '../server/tls.js'
import { KmsApiError, OPERATIONS, protocolError, type ProtocolContext } from './protocol.js'

export interface KmsServerConfig {
  dataDir: string
  host?: string
  /** 0 picks a free port. */
  port?: number
  tlsCert?: string
  tlsKey?: string
  /** The region clients sign for and ARNs name (us-east-1). */
  region?: string
  /** The 12-digit account id in ARNs (000000000000). */
  account?: string
  /** Requests per second the server serves before ThrottlingException (unlimited). */
  maxRequestsPerSecond?: number
  /** How often automatic rotation is checked, in ms (1 hour). */
  rotationCheckMs?: number
}

export interface KmsServerLogger {
  info(message: string): void
  error(message: string): void
}

export interface RunningKmsServer {
  url: string
  port: number
  tls: TlsMaterial
  kms: EmbeddedKms
  rootCredentials: ReturnType<typeof loadRootCredentials>
  /** Requests answered, by operation (also those that failed). */
  readonly counts: Record<string, number>
  /** Stops accepting, lets requests in flight finish, then closes the keyring. */
  close(): Promise<void>
}

export const DEFAULT_KMS_PORT = 9444
const MAX_BODY = 256 * 1024
const JSON_TYPES = new Set(['application/x-amz-json-1.1', 'application/x-amz-json-1.0'])

/** A token bucket: `rate` requests a second with bursts of the same size. */
class RateLimit {
  private tokens: number
  private last = Date.now()
  constructor(private readonly rate: number) {
    this.tokens = rate
  }
  take(): boolean {
    const now = Date.now()
    this.tokens = Math.min(this.rate, this.tokens + ((now - this.last) / 1000) * this.rate)
    this.last = now
    if (this.tokens < 1) return false
    this.tokens -= 1
    return true
  }
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((ok, fail) => {
    const chunks: Buffer[] = []
    let size = 0
    req.on('data', (c: Buffer) => {
      size += c.length
      if (size > MAX_BODY) {
        fail(new KmsApiError('ValidationException', `The request body is larger than ${MAX_BODY} bytes`))
        req.destroy()
        return
      }
      chunks.push(c)
    })
    req.on('end', () => ok(Buffer.concat(chunks)))
    req.on('error', fail)
  })
}

function send(res: ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}): void {
  const text = JSON.stringify(body)
  res.writeHead(status, {
    'content-type': 'application/x-amz-json-1.1',
    'content-length': Buffer.byteLength(text),
    'x-amzn-requestid': randomUUID(),
    ...extra,
  })
  res.end(text)
}

function sendError(res: ServerResponse, e: KmsApiError): void {
  send(res, e.status, { __type: e.type, message: e.message }, { 'x-amzn-errortype': e.type })
}

/** SigV4 failures in the names AWS services use for them (AWS KMS API reference, "Common Errors"). */
function authError(e: unknown): KmsApiError {
  if (!isS3sseError(e)) return new KmsApiError('IncompleteSignatureException', 'The request signature could not be read.')
  switch (e.code) {
    case 'InvalidAccessKeyId': return new KmsApiError('UnrecognizedClientException', 'The security token included in the request is invalid.')
    case 'SignatureDoesNotMatch': return new KmsApiError('InvalidSignatureException', 'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.')
    case 'RequestTimeTooSkewed': return new KmsApiError('InvalidSignatureException', 'Signature expired: the request time is too far from the server time.')
    default: return new KmsApiError('IncompleteSignatureException', e.message)
  }
}

export async function startKmsServer(config: KmsServerConfig, log: KmsServerLogger = {
  info: (m) => process.stdout.write(m + '\n'),
  error: (m) => process.stderr.write(m + '\n'),
}): Promise<RunningKmsServer> {
  const dataDir = resolve(config.dataDir)
  mkdirSync(dataDir, { recursive: true, mode: 0o700 })
  const region = config.region ?? 'us-east-1'
  const account = config.account ?? '000000000000'
  if (!/^\d{12}$/.test(account)) throw new KmsApiError('ValidationException', 'the account id is 12 digits')
  const rootCredentials = loadRootCredentials(dataDir)
  const users = new UserStore(dataDir)
  const tls = await loadTls(dataDir, { certPath: config.tlsCert, keyPath: config.tlsKey })
  const kms = await openEmbeddedKms(dataDir, { create: true })
  const limit = config.maxRequestsPerSecond ? new RateLimit(config.maxRequestsPerSecond) : undefined
  const counts: Record<string, number> = {}
  const root = rootCredentials.user
  const lookup = (accessKey: string): User | undefined => (accessKey === root.accessKey ? root : users.lookup(accessKey))

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://kms.invalid')
    if (req.method === 'GET' && url.pathname === '/-/health') {
      send(res, 200, { status: 'ok' })
      return
    }
    if (req.method !== 'POST' || url.pathname !== '/') throw new KmsApiError('UnknownOperationException', 'This KMS answers POST / with X-Amz-Target: TrentService.<Operation>', 404)
    const body = await readBody(req)
    const target = String(req.headers['x-amz-target'] ?? '')
    const op = target.startsWith('TrentService.') ? target.slice('TrentService.'.length) : ''
    counts[op || '?'] = (counts[op || '?'] ?? 0) + 1
    const authorization = req.headers.authorization
    if (authorization === undefined) throw new KmsApiError('MissingAuthenticationTokenException', 'Request is missing Authentication Token')
    // Services other than S3 sign the body's hash without sending it: it is the last line of
    // the canonical request either way, so the one we compute stands in. A sent one must match.
    const bodyHash = createHash('sha256').update(body).digest('hex')
    const sent = req.headers['x-amz-content-sha256']
    if (sent !== undefined && sent !== bodyHash) throw new KmsApiError('InvalidSignatureException', 'x-amz-content-sha256 does not match the request body.')
    let verified
    try {
      verified = await verifyHeaderSignature(
        { method: req.method, rawPath: url.pathname, query: [...url.searchParams], headers: { ...req.headers, 'x-amz-content-sha256': bodyHash }, now: Date.now() },
        authorization,
        { region, service: 'kms', lookup: (k) => lookup(k) },
      )
    } catch (e) {
      throw authError(e)
    }
    if (limit && !limit.take()) throw new KmsApiError('ThrottlingException', 'Rate exceeded')
    const operation = Object.prototype.hasOwnProperty.call(OPERATIONS, op) ? OPERATIONS[op] : undefined
    if (!operation) throw new KmsApiError('UnknownOperationException', `Unknown operation ${target}`)
    const type = String(req.headers['content-type'] ?? '').split(';')[0].trim()
    if (!JSON_TYPES.has(type)) throw new KmsApiError('SerializationException', 'Content-Type must be application/x-amz-json-1.1')
    let json: unknown
    try {
      json = body.length === 0 ? {} : JSON.parse(body.toString('utf8'))
    } catch {
      throw new KmsApiError('SerializationException', 'The request body is not valid JSON')
    }
    if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new KmsApiError('SerializationException', 'The request body must be a JSON object')
    const ctx: ProtocolContext = { kms, region, account, caller: { admin: lookup(verified.accessKey)?.root === true } }
    send(res, 200, await operation(ctx, json as Record<string, unknown>))
  }

  const server = https.createServer({ cert: tls.cert, key: tls.key }, (req, res) => {
    handle(req, res).catch((e: unknown) => {
      const err = protocolError(e, { region, account })
      if (err.internal) log.error(`kms serve: ${req.headers['x-amz-target'] ?? req.url}: ${isS3sseError(e) ? `${e.code}: ${e.message}` : (e as Error)?.message}`)
      if (!res.headersSent) sendError(res, err)
      else res.destroy()
    })
  })
  server.headersTimeout = 30_000
  server.requestTimeout = 60_000
  await new Promise<void>((ok, fail) => {
    server.once('error', fail)
    server.listen(config.port ?? DEFAULT_KMS_PORT, config.host ?? '127.0.0.1', () => {
      server.off('error', fail)
      ok()
    })
  })
  const address = server.address() as AddressInfo
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address

  // Automatic rotation (EnableKeyRotation): due keys rotate at start and then on a timer.
  const rotate = () => kms.rotateDue().then(
    (rotated) => rotated.forEach((k) => log.info(`kms serve: rotated ${k.keyId} to version ${k.current} (automatic rotation)`)),
    (e: unknown) => log.error(`kms serve: automatic rotation failed: ${isS3sseError(e) ? e.code : (e as Error).message}`),
  )
  await rotate()
  const timer = setInterval(() => void rotate(), config.rotationCheckMs ?? 3600_000)
  timer.unref()

  let closing: Promise<void> | undefined
  return {
    url: `https://${host}:${address.port}`,
    port: address.port,
    tls,
    kms,
    rootCredentials,
    counts,
    close() {
      closing ??= (async () => {
        clearInterval(timer)
        const closed = new Promise<void>((ok) => server.close(() => ok()))
        server.closeIdleConnections()
        const idle = setInterval(() => server.closeIdleConnections(), 100)
        await closed
        clearInterval(idle)
        await kms.close()
      })()
      return closing
    },
  }
}
