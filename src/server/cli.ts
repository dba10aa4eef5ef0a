/**
 * `s3-sse serve` and `s3-sse user add|list|remove`.
 */
import { parseArgs } from 'node:util'
import { existsSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { S3sseError } from '../errors.js'
import { UserStore } from './credentials.js'
import { DB_FILE, SqliteMetaStore } from './meta/sqlite/index.js'
import { installProcessGuard } from './guard.js'
import { DEFAULT_CONFIG, startServer } from './server.js'
import { KMS_OPTIONS, KMS_OPTIONS_USAGE, openKms, parseKmsSelection, type KmsSelection } from '../keys/open.js'
import type { ServerConfig } from './state.js'

export const SERVE_USAGE = `usage: s3-sse serve [options]

  --data-dir DIR      where objects, metadata, credentials and the certificate live (./data)
  --host ADDR         address to listen on (127.0.0.1)
  --https-port N      HTTPS port (9443; 0 or auto picks a free one)
  --http-port N       plain HTTP port (9000; 0 turns plain HTTP off, auto picks a free one)
  --tls-cert FILE     certificate (PEM); without it a self-signed one is made in the data dir
  --tls-key FILE      its private key (PEM)
  --region NAME       the region clients sign for (us-east-1)
  --mode oss|aws      encryption semantics (oss)
  --domain NAME       base domain for virtual-hosted buckets, repeatable (s3.localhost, localhost)
  --replication-attempts N    tries per replicated write before it is FAILED (12)
  --replication-backoff-ms N  wait before the second try, doubling each try up to 64x (1000)
  --header-timeout-ms N  a request's headers (and a TLS handshake) must arrive within this (60000)
  --idle-timeout-ms N    a request body that stalls, or a response the client stops reading,
                         this long ends the request: 400 RequestTimeout (60000)
  --keep-alive-timeout-ms N  an idle keep-alive connection is closed after this (65000)
${KMS_OPTIONS_USAGE}
Root credentials come from S3SSE_ACCESS_KEY / S3SSE_SECRET_KEY, or are generated on first
start into DATA_DIR/root-credentials.json (0600) and printed once.
`

export const USER_USAGE = `usage: s3-sse user add NAME | list | remove NAME-OR-ACCESS-KEY [--data-dir DIR]
`

function positive(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined
  if (!/^\d+$/.test(value) || Number(value) < 1 || !Number.isSafeInteger(Number(value))) {
    throw new S3sseError('S3SSE_BAD_ARGUMENT', `${name} must be a whole number of at least 1, got "${value}"`)
  }
  return Number(value)
}

function port(value: string | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback
  if (value === 'auto') return 0
  if (!/^\d+$/.test(value) || Number(value) > 65535) throw new S3sseError('S3SSE_BAD_ARGUMENT', `${name} must be a port number, got "${value}"`)
  return Number(value)
}

export function parseServeArgs(argv: string[]): ServerConfig {
  return parseServeOptions(argv).config
}

/** The server's configuration and the KMS it should use (docs/KMS.md). */
export function parseServeOptions(argv: string[]): { config: ServerConfig; kms: KmsSelection } {
  const { values } = parseArgs({
    args: argv,
    options: {
      'data-dir': { type: 'string' },
      host: { type: 'string' },
      'https-port': { type: 'string' },
      'http-port': { type: 'string' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      region: { type: 'string' },
      mode: { type: 'string' },
      domain: { type: 'string', multiple: true },
      'replication-attempts': { type: 'string' },
      'replication-backoff-ms': { type: 'string' },
      'header-timeout-ms': { type: 'string' },
      'idle-timeout-ms': { type: 'string' },
      'keep-alive-timeout-ms': { type: 'string' },
      ...KMS_OPTIONS,
    },
    strict: true,
  })
  const mode = values.mode ?? DEFAULT_CONFIG.mode
  if (mode !== 'oss' && mode !== 'aws') throw new S3sseError('S3SSE_BAD_ARGUMENT', `--mode must be oss or aws, got "${mode}"`)
  const kms = parseKmsSelection(values)
  const config: ServerConfig = {
    dataDir: resolve(values['data-dir'] ?? './data'),
    host: values.host ?? DEFAULT_CONFIG.host,
    httpsPort: port(values['https-port'], DEFAULT_CONFIG.httpsPort, '--https-port'),
    // 0 means off for plain HTTP (the server then speaks HTTPS only).
    httpPort: values['http-port'] === '0' ? null : port(values['http-port'], DEFAULT_CONFIG.httpPort ?? 0, '--http-port'),
    tlsCert: values['tls-cert'],
    tlsKey: values['tls-key'],
    region: values.region ?? DEFAULT_CONFIG.region,
    mode,
    domains: values.domain ?? DEFAULT_CONFIG.domains,
    replication: {
      ...(values['replication-attempts'] !== undefined ? { attempts: positive(values['replication-attempts'], '--replication-attempts') } : {}),
      ...(values['replication-backoff-ms'] !== undefined ? { backoffMs: positive(values['replication-backoff-ms'], '--replication-backoff-ms') } : {}),
    },
    timeouts: {
      ...(values['header-timeout-ms'] !== undefined ? { headersMs: positive(values['header-timeout-ms'], '--header-timeout-ms') } : {}),
      ...(values['idle-timeout-ms'] !== undefined ? { idleMs: positive(values['idle-timeout-ms'], '--idle-timeout-ms') } : {}),
      ...(values['keep-alive-timeout-ms'] !== undefined ? { keepAliveMs: positive(values['keep-alive-timeout-ms'], '--keep-alive-timeout-ms') } : {}),
    },
  }
  return { config, kms }
}

/** Runs the server until SIGTERM / SIGINT, then shuts down gracefully. */
export async function serve(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(SERVE_USAGE)
    return 0
  }
  const { config, kms: kmsSelection } = parseServeOptions(argv)
  // Signals are caught from the start: one that arrives while starting up stops the server
  // as soon as it is up, and none can kill it between its "listening" line and here.
  let requested: string | undefined
  let onStop: ((signal: string) => void) | undefined
  const onSignal = (signal: string) => (onStop ? onStop(signal) : (requested ??= signal))
  const onTerm = () => onSignal('SIGTERM')
  const onInt = () => onSignal('SIGINT')
  process.on('SIGTERM', onTerm)
  process.on('SIGINT', onInt)
  let server
  let removeGuard: (() => void) | undefined
  // An external KMS is opened here and handed to the server; the embedded one the server
  // opens itself, in its data dir.
  let external: Awaited<ReturnType<typeof openKms>> | undefined
  try {
    if (kmsSelection.kind !== 'embedded') external = await openKms(kmsSelection)
    server = await startServer({ config, ...(external ? { kms: external } : {}) })
    removeGuard = installProcessGuard(server.state.log)
  } catch (err) {
    process.off('SIGTERM', onTerm)
    process.off('SIGINT', onInt)
    await external?.close()
    throw err
  }
  const running = server
  const out = (s: string) => process.stdout.write(s + '\n')
  out(`data dir: ${server.state.config.dataDir}`)
  out(`TLS certificate: ${server.tls.certPath}${server.tls.created ? ' (self-signed, created now; trust this file in clients)' : ''}`)
  out(`region: ${config.region}, mode: ${config.mode}`)
  out(`KMS: ${kmsSelection.kind === 'embedded' ? `embedded keyring in ${server.state.config.dataDir}/kms` : kmsSelection.kind === 'aws'
    ? `AWS KMS API at ${kmsSelection.endpoint ?? `the ${kmsSelection.region ?? 'default'} region's Amazon KMS`}`
    : `PKCS#11 token ${kmsSelection.pkcs11Token} (${kmsSelection.pkcs11Module})`}`)
  const root = server.rootCredentials
  if (root.created) {
    out('root credentials (generated now, shown once; stored 0600 in the data dir):')
    out(`  access key: ${root.user.accessKey}`)
    out(`  secret key: ${root.user.secretKey}`)
  } else {
    out(`root access key: ${root.user.accessKey} (from ${root.source === 'env' ? 'S3SSE_ACCESS_KEY' : 'the data dir'})`)
  }
  out(`web console: ${server.httpsUrl}/-/console/`)
  if (server.swept > 0) out(`removed ${server.swept} unreferenced object files left by an earlier stop`)
  // Last, so whoever waits for this line has seen everything above.
  out(`s3-sse listening on ${server.httpsUrl}${server.httpUrl ? ` and ${server.httpUrl}` : ''}`)
  await new Promise<void>((resolveStop) => {
    onStop = (signal: string) => {
      onStop = () => undefined
      out(`${signal}: finishing in-flight requests`)
      process.off('SIGTERM', onTerm)
      process.off('SIGINT', onInt)
      running.close().then(() => external?.close()).then(() => {
        removeGuard?.()
        out('stopped')
        resolveStop()
      })
    }
    if (requested) onStop(requested)
  })
  return 0
}

export const KMS_MIGRATE_USAGE = `usage: s3-sse kms migrate --data-dir DIR --kms aws|pkcs11 [that kind's flags]

Moves every object of DIR from its embedded keyring (DIR/kms/) to the KMS --kms names: each
data key is unwrapped by the keyring and wrapped by the target, under a key of the same
alias (created there); the sealed data is not rewritten. Stop the server first; complete or
abort open multipart uploads. Safe to run again. Then start s3-sse serve with the same --kms flags.

${KMS_OPTIONS_USAGE}`

/** \`s3-sse kms migrate\`: see KMS_MIGRATE_USAGE. */
export async function kmsMigrate(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(KMS_MIGRATE_USAGE)
    return 0
  }
  const { values } = parseArgs({ args: argv, options: { 'data-dir': { type: 'string' }, ...KMS_OPTIONS }, strict: true })
  const selection = parseKmsSelection(values)
  if (!values['data-dir'] || selection.kind === 'embedded') {
    process.stderr.write(`s3-sse kms migrate: needs --data-dir and --kms aws|pkcs11\n${KMS_MIGRATE_USAGE}`)
    return 2
  }
  const { migrateKms } = await import('./migrate.js')
  const target = await openKms(selection)
  try {
    const r = await migrateKms(resolve(values['data-dir']), target, (line) => process.stdout.write(line + '\n'))
    for (const [from, to] of Object.entries(r.keys)) process.stdout.write(`key ${from} → ${to}\n`)
    process.stdout.write(`migrated ${r.moved} objects in ${r.buckets} buckets (${r.skipped} already on the target, ${r.plaintext} not encrypted)\n`)
    return 0
  } finally {
    await target.close()
  }
}

/**
 * `s3-sse user remove` refuses a user who still owns buckets: buckets are owned by the
 * user's id, so nothing would pass to anyone else, but they would be left reachable by root
 * alone with no one told. Listed from the data dir's metadata (read beside a running server).
 */
async function bucketsOwnedBy(dataDir: string, userId: string): Promise<string[]> {
  if (!existsSync(join(dataDir, DB_FILE))) return []
  const meta = new SqliteMetaStore(dataDir)
  try {
    return (await meta.listBuckets()).filter((b) => b.owner === userId).map((b) => b.name)
  } finally {
    await meta.close()
  }
}

export async function userCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { 'data-dir': { type: 'string' } },
    allowPositionals: true,
    strict: true,
  })
  const store = new UserStore(resolve(values['data-dir'] ?? './data'))
  const [action, name] = positionals
  switch (action) {
    case 'add': {
      if (!name) break
      const u = store.add(name)
      process.stdout.write(`user ${u.name}\n  access key: ${u.accessKey}\n  secret key: ${u.secretKey}\n`)
      return 0
    }
    case 'list':
      for (const u of store.list()) process.stdout.write(`${u.name}\t${u.accessKey}\t${u.createdAt}\n`)
      return 0
    case 'remove': {
      if (!name) break
      const dataDir = resolve(values['data-dir'] ?? './data')
      const owned = await bucketsOwnedBy(dataDir, store.find(name).id)
      if (owned.length > 0) {
        throw new S3sseError(
          'S3SSE_USER_HAS_BUCKETS',
          `${name} owns ${owned.length} bucket(s): ${owned.join(', ')}. Delete them (emptied first) before removing the user; ` +
            'a new user is never given them, whatever their name',
        )
      }
      const u = store.remove(name)
      process.stdout.write(`removed ${u.name} (${u.accessKey})\n`)
      return 0
    }
  }
  process.stderr.write(USER_USAGE)
  return 2
}
