/**
 * `s3-sse kms serve` as a real process for tests (through tsx, like the S3 server), on a free
 * port in a temp data dir, with root credentials from the environment.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync } from 'node:fs'
import https from 'node:https'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { KMSClient } from '@aws-sdk/client-kms'
import { NodeHttpHandler } from '@smithy/node-http-handler'

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true'

const ENTRY = fileURLToPath(new URL('../server/serve-entry.ts', import.meta.url))
const ROOT = fileURLToPath(new URL('../..', import.meta.url))

export const KMS_ROOT_KEY = 'S3SSEKMSTESTROOT0001'
export const KMS_ROOT_SECRET = 'kms-test-root-secret-0123456789abcdef'

export interface KmsServeProcess {
  url: string
  dataDir: string
  caFile: string
  ca: Buffer
  proc: ChildProcess
  credentials: { accessKeyId: string; secretAccessKey: string }
  output(): string
  /** An SDK client of this server (root credentials unless given), no retries unless asked. */
  client(opts?: { accessKeyId?: string; secretAccessKey?: string; maxAttempts?: number; region?: string }): KMSClient
  /** SIGTERM, then the exit code. */
  stop(): Promise<number | null>
}

const running = new Set<ChildProcess>()
process.on('exit', () => {
  for (const p of running) p.kill('SIGKILL')
})

export async function startKmsServe(opts: { dataDir?: string; args?: string[]; env?: NodeJS.ProcessEnv } = {}): Promise<KmsServeProcess> {
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 's3sse-kmsd-'))
  const env = { ...process.env, S3SSE_ACCESS_KEY: KMS_ROOT_KEY, S3SSE_SECRET_KEY: KMS_ROOT_SECRET, ...opts.env }
  const proc = spawn(process.execPath, ['--import', 'tsx', ENTRY, 'kms', 'serve', '--data-dir', dataDir, '--port', 'auto', ...(opts.args ?? [])], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] })
  running.add(proc)
  let out = ''
  proc.stdout!.on('data', (d) => (out += d))
  proc.stderr!.on('data', (d) => (out += d))
  const exit = new Promise<number | null>((resolve) => proc.on('exit', (code) => {
    running.delete(proc)
    resolve(code)
  }))
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`kms serve did not start:\n${out}`)), 30_000)
    const onData = () => {
      const m = /s3-sse kms listening on (https:\/\/\S+)/.exec(out)
      if (m) {
        clearTimeout(timer)
        resolve(m[1])
      }
    }
    proc.stdout!.on('data', onData)
    proc.on('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`kms serve exited with ${code}:\n${out}`))
    })
  })
  const caFile = join(dataDir, 'tls-cert.pem')
  const ca = readFileSync(caFile)
  let stopped: Promise<number | null> | undefined
  return {
    url, dataDir, caFile, ca, proc,
    credentials: { accessKeyId: KMS_ROOT_KEY, secretAccessKey: KMS_ROOT_SECRET },
    output: () => out,
    client(o = {}) {
      return new KMSClient({
        endpoint: url,
        region: o.region ?? 'us-east-1',
        credentials: { accessKeyId: o.accessKeyId ?? KMS_ROOT_KEY, secretAccessKey: o.secretAccessKey ?? KMS_ROOT_SECRET },
        maxAttempts: o.maxAttempts ?? 1,
        requestHandler: new NodeHttpHandler({ httpsAgent: new https.Agent({ ca, keepAlive: true }) }),
      })
    },
    stop() {
      stopped ??= (async () => {
        if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM')
        return exit
      })()
      return stopped
    },
  }
}
