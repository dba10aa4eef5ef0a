/**
 * The client side of the admin API (./index.ts), for `s3-sse job` and `s3-sse kms usage`:
 * JSON over HTTPS, each request signed with SigV4 by @smithy/signature-v4 (the SDKs' own
 * signer) as root, the body's SHA-256 signed with it.
 *
 * Where it connects and as whom: --endpoint (or S3SSE_ENDPOINT; default https://127.0.0.1:9443),
 * the credentials in S3SSE_ACCESS_KEY / S3SSE_SECRET_KEY, else AWS_ACCESS_KEY_ID /
 * AWS_SECRET_ACCESS_KEY, else the data dir's root-credentials.json (--data-dir, default
 * ./data); the server's certificate from --ca, else the data dir's tls-cert.pem (when there is
 * one) and AWS_CA_BUNDLE, else the system's CAs.
 */
import { createHash } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import https from 'node:https'
import { join, resolve } from 'node:path'
import { SignatureV4 } from '@smithy/signature-v4'
import { S3sseError } from '../../errors.js'
import { NodeSha256 } from '../auth/sigv4.js'
import { ROOT_CREDENTIALS_FILE } from '../credentials.js'
import { ADMIN_PATH } from './index.js'

export interface AdminConnection {
  endpoint: URL
  region: string
  accessKey: string
  secretKey: string
  ca?: Buffer
}

export interface ConnectionOptions {
  endpoint?: string
  dataDir?: string
  ca?: string
  region?: string
}

export const DEFAULT_ENDPOINT = 'https://127.0.0.1:9443'

/** The connection options every command that talks to the server takes, for parseArgs. */
export const CONNECTION_OPTIONS = {
  endpoint: { type: 'string' },
  'data-dir': { type: 'string' },
  ca: { type: 'string' },
  region: { type: 'string' },
} as const

export const CONNECTION_USAGE = `connection (to the running server, as root):
  --endpoint URL           the server's HTTPS endpoint ($S3SSE_ENDPOINT, ${DEFAULT_ENDPOINT})
  --data-dir DIR           root credentials and certificate from the server's data dir (./data),
                           unless S3SSE_ACCESS_KEY/S3SSE_SECRET_KEY (or AWS_ACCESS_KEY_ID/
                           AWS_SECRET_ACCESS_KEY) and --ca (or AWS_CA_BUNDLE) say otherwise
  --ca FILE                the server's certificate (PEM) to trust
  --region NAME            the region the server signs for (us-east-1)
`

function bad(message: string): S3sseError {
  return new S3sseError('S3SSE_BAD_ARGUMENT', message)
}

export function resolveConnection(opts: ConnectionOptions, env: NodeJS.ProcessEnv = process.env): AdminConnection {
  const dataDir = resolve(opts.dataDir ?? './data')
  let endpoint: URL
  try {
    endpoint = new URL(opts.endpoint ?? env.S3SSE_ENDPOINT ?? DEFAULT_ENDPOINT)
  } catch {
    throw bad(`--endpoint must be a URL such as ${DEFAULT_ENDPOINT}`)
  }
  if (endpoint.protocol !== 'https:') throw bad('the admin API works over HTTPS only: --endpoint https://…')
  let accessKey = env.S3SSE_ACCESS_KEY ?? env.AWS_ACCESS_KEY_ID
  let secretKey = env.S3SSE_ACCESS_KEY ? env.S3SSE_SECRET_KEY : env.AWS_SECRET_ACCESS_KEY
  if (!accessKey || !secretKey) {
    const file = join(dataDir, ROOT_CREDENTIALS_FILE)
    if (!existsSync(file)) {
      throw bad(`no credentials: set S3SSE_ACCESS_KEY and S3SSE_SECRET_KEY (root's), or point --data-dir at the server's data dir (${file} is missing)`)
    }
    const stored = JSON.parse(readFileSync(file, 'utf8')) as { accessKey?: string; secretKey?: string }
    if (!stored.accessKey || !stored.secretKey) throw bad(`${file} does not hold root credentials`)
    accessKey = stored.accessKey
    secretKey = stored.secretKey
  }
  // --ca alone, or the data dir's certificate and AWS_CA_BUNDLE together; neither: the system's CAs.
  const own = join(dataDir, 'tls-cert.pem')
  const caFiles = opts.ca ? [opts.ca] : [...(existsSync(own) ? [own] : []), ...(env.AWS_CA_BUNDLE ? [env.AWS_CA_BUNDLE] : [])]
  return {
    endpoint,
    region: opts.region ?? env.AWS_REGION ?? 'us-east-1',
    accessKey,
    secretKey,
    ...(caFiles.length > 0 ? { ca: Buffer.concat(caFiles.map((f) => Buffer.concat([readFileSync(f), Buffer.from('\n')]))) } : {}),
  }
}

/** An error the server answered with. */
export class AdminError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message)
  }
}

/** One signed admin request; resolves with the parsed JSON, or rejects with AdminError. */
export async function adminRequest(conn: AdminConnection, method: string, path: string, query: Record<string, string> = {}, body?: unknown): Promise<any> {
  const payload = body === undefined ? Buffer.alloc(0) : Buffer.from(JSON.stringify(body), 'utf8')
  const signer = new SignatureV4({
    credentials: { accessKeyId: conn.accessKey, secretAccessKey: conn.secretKey },
    region: conn.region,
    service: 's3',
    sha256: NodeSha256,
    uriEscapePath: false,
  })
  const fullPath = ADMIN_PATH + path
  const host = conn.endpoint.host
  const headers: Record<string, string> = {
    host,
    'x-amz-content-sha256': createHash('sha256').update(payload).digest('hex'),
    ...(body !== undefined ? { 'content-type': 'application/json', 'content-length': String(payload.length) } : {}),
  }
  const signed = await signer.sign({
    method,
    protocol: 'https:',
    hostname: conn.endpoint.hostname,
    port: conn.endpoint.port ? Number(conn.endpoint.port) : undefined,
    path: fullPath,
    query,
    headers,
    body: payload,
  })
  const search = new URLSearchParams(query).toString()
  return new Promise((resolveReq, reject) => {
    const req = https.request(
      {
        host: conn.endpoint.hostname.replace(/^\[|\]$/g, ''),
        port: conn.endpoint.port || 443,
        method,
        path: fullPath + (search ? `?${search}` : ''),
        headers: signed.headers as Record<string, string>,
        ...(conn.ca ? { ca: conn.ca } : {}),
      },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c) => chunks.push(c))
        res.on('error', reject)
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8')
          let json: any
          try {
            json = text ? JSON.parse(text) : {}
          } catch {
            return reject(new AdminError(res.statusCode ?? 0, 'BadResponse', `the server answered ${res.statusCode} with something that is not JSON`))
          }
          if ((res.statusCode ?? 500) >= 400) {
            return reject(new AdminError(res.statusCode ?? 0, json?.error?.code ?? 'Error', json?.error?.message ?? `the server answered ${res.statusCode}`))
          }
          resolveReq(json)
        })
      },
    )
    req.on('error', (err) => reject(new AdminError(0, 'ConnectionFailed', `cannot reach ${conn.endpoint.origin}: ${err.message}`)))
    req.end(payload)
  })
}
