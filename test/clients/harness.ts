/**
 * Real S3 clients against the real server process: rclone, s3cmd, the aws CLI v2
 * (/usr/bin/aws) and boto3 (python3-boto3), all from Debian, each run as a child process
 * with its own configuration in a temp HOME — path-style addressing, the server's
 * self-signed certificate as the only CA, region us-east-1 — a clean environment (no
 * AWS_CA_BUNDLE or proxy from the machine leaks in) and a timeout.
 *
 * A suite whose client is missing is skipped and says why; with S3SSE_REQUIRE_SERVICES=1
 * (CI) it fails instead.
 */
import { spawn, spawnSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, it } from 'vitest'
import { removeDir, ROOT_KEY, ROOT_SECRET, tempDir, type TestServer } from '../server/helpers.js'

export const AWS_CLI = '/usr/bin/aws'
export const PYTHON = '/usr/bin/python3'
export type ClientName = 'rclone' | 's3cmd' | 'aws' | 'boto3'

export interface Availability {
  ok: boolean
  /** The version line, when available. */
  version?: string
  /** Why not, when not. */
  reason?: string
}

const PROBES: Record<ClientName, { cmd: string; args: string[]; install: string }> = {
  rclone: { cmd: 'rclone', args: ['version'], install: 'apt-get install -y rclone' },
  s3cmd: { cmd: 's3cmd', args: ['--version'], install: 'apt-get install -y s3cmd' },
  aws: { cmd: AWS_CLI, args: ['--version'], install: 'apt-get install -y awscli' },
  // Debian's python3 and its python3-boto3, whatever else is first on PATH.
  boto3: { cmd: PYTHON, args: ['-c', 'import boto3, botocore; print("boto3", boto3.__version__, "botocore", botocore.__version__)'], install: 'apt-get install -y python3-boto3' },
}

const probed = new Map<ClientName, Availability>()

export function probe(name: ClientName): Availability {
  const cached = probed.get(name)
  if (cached) return cached
  const p = PROBES[name]
  const r = spawnSync(p.cmd, p.args, { encoding: 'utf8', timeout: 20_000, env: cleanEnv(tempDirFor('probe')) })
  let a: Availability
  if (r.error || r.status !== 0) {
    const why = r.error ? (r.error as NodeJS.ErrnoException).code ?? r.error.message : `exit ${r.status}: ${(r.stderr ?? '').trim().slice(0, 200)}`
    a = { ok: false, reason: `${p.cmd} is not usable (${why}); install it with \`${p.install}\`` }
  } else {
    a = { ok: true, version: `${r.stdout}${r.stderr}`.trim().split('\n')[0] }
  }
  probed.set(name, a)
  return a
}

export const REQUIRE_CLIENTS = process.env.S3SSE_REQUIRE_SERVICES === '1'

/**
 * describe() for a suite that needs one client: runs it when the client works; otherwise
 * skips it, naming the reason in the suite's title and on stderr — or, under
 * S3SSE_REQUIRE_SERVICES=1, fails with that reason.
 */
export function describeClient(names: ClientName | ClientName[], title: string, body: () => void): void {
  const list = Array.isArray(names) ? names : [names]
  const probes = list.map((n) => ({ n, a: probe(n) }))
  const missing = probes.find((p) => !p.a.ok)
  if (!missing) {
    describe(`${title} [${probes.map((p) => p.a.version).join('; ')}]`, body)
    return
  }
  const { n: name, a } = missing
  if (REQUIRE_CLIENTS) {
    describe(title, () => {
      it(`${name} is installed (S3SSE_REQUIRE_SERVICES=1)`, () => {
        throw new Error(`${name} is required: ${a.reason}`)
      })
    })
    return
  }
  process.stderr.write(`[skipped] ${title}: ${a.reason}\n`)
  describe.skip(`${title} — skipped: ${a.reason}`, body)
}

let scratch: string | undefined
function tempDirFor(what: string): string {
  scratch ??= tempDir('s3sse-clients-')
  const d = join(scratch, what)
  mkdirSync(d, { recursive: true })
  return d
}

/** Only what a client needs: no CA bundle, proxy or AWS variables from the machine. */
function cleanEnv(home: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    PATH: '/usr/local/bin:/usr/bin:/bin',
    HOME: home,
    LANG: 'C.UTF-8',
    LC_ALL: 'C.UTF-8',
    TMPDIR: home,
    NO_PROXY: '127.0.0.1,localhost',
    ...extra,
  }
}

export interface RunResult {
  code: number | null
  stdout: string
  stderr: string
  /** True when killed for running past its timeout. */
  timedOut: boolean
}

export interface RunOptions {
  env?: Record<string, string>
  input?: string | Buffer
  timeoutMs?: number
  cwd?: string
}

/** Runs a command to completion (or kills its process group at the timeout). */
export function run(cmd: string, args: string[], env: NodeJS.ProcessEnv, opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { env, cwd: opts.cwd ?? env.HOME, stdio: ['pipe', 'pipe', 'pipe'], detached: true })
    let stdout = ''
    let stderr = ''
    let timedOut = false
    p.stdout.on('data', (d) => (stdout += d))
    p.stderr.on('data', (d) => (stderr += d))
    const timer = setTimeout(() => {
      timedOut = true
      try {
        process.kill(-p.pid!, 'SIGKILL')
      } catch {
        p.kill('SIGKILL')
      }
    }, opts.timeoutMs ?? 90_000)
    p.on('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
    p.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr, timedOut })
    })
    p.stdin.end(opts.input)
  })
}

/** Throws with the command's output unless it exited 0. */
export function ok(r: RunResult, what = 'command'): RunResult {
  if (r.code !== 0) {
    throw new Error(`${what} failed (exit ${r.code}${r.timedOut ? ', timed out' : ''})\n--- stdout\n${r.stdout.slice(-4000)}\n--- stderr\n${r.stderr.slice(-4000)}`)
  }
  return r
}

export interface Credentials {
  accessKey: string
  secretKey: string
}

/**
 * The four clients, configured for one server and one user. Files the tests make go in
 * `dir` (the clients' HOME and working directory).
 */
export class Clients {
  readonly dir: string
  readonly caFile: string
  readonly endpoint: string
  readonly hostPort: string
  private readonly rcloneConf: string
  private readonly s3cfg: string

  constructor(
    readonly server: TestServer,
    readonly creds: Credentials = { accessKey: ROOT_KEY, secretKey: ROOT_SECRET },
    name = 'root',
  ) {
    this.dir = tempDirFor(`${name}-${Math.random().toString(16).slice(2, 8)}`)
    this.caFile = join(server.dataDir, 'tls-cert.pem')
    this.endpoint = server.httpsUrl
    this.hostPort = new URL(server.httpsUrl).host
    this.rcloneConf = join(this.dir, 'rclone.conf')
    // provider = Other: what rclone's docs say to pick for an S3 server it has no entry for.
    writeFileSync(
      this.rcloneConf,
      [
        '[s3sse]',
        'type = s3',
        'provider = Other',
        `access_key_id = ${creds.accessKey}`,
        `secret_access_key = ${creds.secretKey}`,
        `endpoint = ${this.endpoint}`,
        'region = us-east-1',
        'force_path_style = true',
        '',
      ].join('\n'),
      { mode: 0o600 },
    )
    this.s3cfg = join(this.dir, 's3cfg')
    writeFileSync(this.s3cfg, this.s3cmdConfig(), { mode: 0o600 })
    mkdirSync(join(this.dir, '.aws'), { recursive: true })
    // Path-style: the bucket in the path, as for any endpoint given by address.
    writeFileSync(join(this.dir, '.aws', 'config'), '[default]\nregion = us-east-1\ns3 =\n  addressing_style = path\n')
  }

  /** s3cmd's configuration file; `extra` adds or overrides lines (e.g. signature_v2 = True). */
  s3cmdConfig(extra: Record<string, string> = {}): string {
    const settings: Record<string, string> = {
      access_key: this.creds.accessKey,
      secret_key: this.creds.secretKey,
      host_base: this.hostPort,
      // No %(bucket)s: path-style requests to the endpoint itself.
      host_bucket: this.hostPort,
      use_https: 'True',
      ca_certs_file: this.caFile,
      check_ssl_certificate: 'True',
      check_ssl_hostname: 'True',
      bucket_location: 'us-east-1',
      signature_v2: 'False',
      progress_meter: 'False',
      // s3cmd signurl links point at the HTTPS endpoint (s3cmd 2.3 has no flag for it).
      signurl_use_https: 'True',
      ...extra,
    }
    return '[default]\n' + Object.entries(settings).map(([k, v]) => `${k} = ${v}`).join('\n') + '\n'
  }

  env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
    return cleanEnv(this.dir, extra)
  }

  /** A file in the clients' directory. */
  file(name: string, data: string | Buffer): string {
    const p = join(this.dir, name)
    mkdirSync(join(p, '..'), { recursive: true })
    writeFileSync(p, data)
    return p
  }

  path(name: string): string {
    return join(this.dir, name)
  }

  /** rclone with the remote `s3sse:`; one try, so a failure shows at once. */
  rclone(args: string[], opts: RunOptions = {}): Promise<RunResult> {
    return run(
      'rclone',
      ['--config', this.rcloneConf, '--ca-cert', this.caFile, '--retries', '1', '--low-level-retries', '1', '--contimeout', '10s', '--timeout', '60s', ...args],
      this.env(opts.env),
      opts,
    )
  }

  /** s3cmd with this user's configuration (or `config`, made with s3cmdConfig). */
  s3cmd(args: string[], opts: RunOptions & { config?: string } = {}): Promise<RunResult> {
    let cfg = this.s3cfg
    if (opts.config !== undefined) {
      cfg = join(this.dir, `s3cfg-${Math.random().toString(16).slice(2, 8)}`)
      writeFileSync(cfg, opts.config, { mode: 0o600 })
    }
    return run('s3cmd', ['-c', cfg, ...args], this.env(opts.env), opts)
  }

  /** /usr/bin/aws against the server (credentials and CA bundle from the environment). */
  aws(args: string[], opts: RunOptions = {}): Promise<RunResult> {
    return run(
      AWS_CLI,
      ['--endpoint-url', this.endpoint, '--no-cli-pager', ...args],
      this.env({
        AWS_ACCESS_KEY_ID: this.creds.accessKey,
        AWS_SECRET_ACCESS_KEY: this.creds.secretKey,
        AWS_DEFAULT_REGION: 'us-east-1',
        AWS_CA_BUNDLE: this.caFile,
        AWS_CONFIG_FILE: join(this.dir, '.aws', 'config'),
        AWS_SHARED_CREDENTIALS_FILE: join(this.dir, '.aws', 'credentials'),
        AWS_EC2_METADATA_DISABLED: 'true',
        AWS_PAGER: '',
        ...opts.env,
      }),
      opts,
    )
  }

  /**
   * A Python program with boto3. It gets `s3` (a client for this server, path-style, the
   * CA bundle), `boto3`, `botocore`, `ENDPOINT`, `CA` and `ARGS` (the JSON `args`), and
   * reports by printing one JSON value last; that value is returned.
   */
  async boto3<T = unknown>(program: string, args: unknown = null, opts: RunOptions & { signatureVersion?: string } = {}): Promise<T> {
    const prelude = [
      'import json, sys, boto3, botocore',
      'from botocore.config import Config',
      'ARGS = json.loads(sys.stdin.read())',
      `ENDPOINT = ${JSON.stringify(this.endpoint)}`,
      `CA = ${JSON.stringify(this.caFile)}`,
      `CONFIG = Config(region_name="us-east-1", s3={"addressing_style": "path"}, retries={"max_attempts": 1}${opts.signatureVersion ? `, signature_version=${JSON.stringify(opts.signatureVersion)}` : ''})`,
      `s3 = boto3.client("s3", endpoint_url=ENDPOINT, verify=CA, config=CONFIG, aws_access_key_id=${JSON.stringify(this.creds.accessKey)}, aws_secret_access_key=${JSON.stringify(this.creds.secretKey)})`,
      '',
    ].join('\n')
    const r = ok(await run(PYTHON, ['-c', prelude + program], this.env({ AWS_EC2_METADATA_DISABLED: 'true', ...opts.env }), { ...opts, input: JSON.stringify(args) }), 'boto3 program')
    const lines = r.stdout.trim().split('\n')
    return JSON.parse(lines[lines.length - 1]) as T
  }
}

/** Removes every client's scratch files (call from afterAll). */
export function cleanupClients(): void {
  if (scratch) removeDir(scratch)
  scratch = undefined
}
