/**
 * `s3-sse serve` and `s3-sse user add|list|remove`.
 */
import { parseArgs } from 'node:util'
import { existsSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { S3sseError } from '../errors.js'
import { UserStore, type User } from './credentials.js'
import {
  FLEET_OPTIONS, FLEET_REPLICATION, FLEET_SWEEP, FLEET_USAGE, openSelectedStores, parseMetaSelection, parseStoreSelection,
  type MetaSelection, type StoreSelection,
} from './fleet.js'
import type { MetaStore } from './meta/index.js'
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
  --replication-lease-ms N    how long a claimed replication holds (1 h; a fleet: 600000)
  --replication-poll-ms N     look at the shared queue at least this often (a fleet: 15000)
  --job-lease-ms N            how long a gateway's claim on a job holds unless renewed (30000):
                              how soon another gateway takes over the job of one that died
  --job-poll-ms N             how often the job table is looked at for jobs started elsewhere
                              (through another gateway, or before a restart) (2000)
  --key-cache-ttl-ms N        how long unwrapped data keys and bucket keys are kept (300000):
                              the longest a key rotated or disabled in the KMS goes unnoticed
  --public-url URL            the HTTPS URL clients use, when behind a load balancer
  --header-timeout-ms N  a request's headers (and a TLS handshake) must arrive within this (60000)
  --idle-timeout-ms N    a request body that stalls, or a response the client stops reading,
                         this long ends the request: 400 RequestTimeout (60000)
  --keep-alive-timeout-ms N  an idle keep-alive connection is closed after this (65000)
${KMS_OPTIONS_USAGE}${FLEET_USAGE}  --sweep-grace-ms N  a fleet: orphan blobs younger than this are left alone (900000)
  --sweep-interval-ms N       a fleet: how often the background orphan sweep runs (900000)
  --sweep-settle-ms N         a fleet: wait between listing blobs and reading references (120000)

Root credentials come from S3SSE_ACCESS_KEY / S3SSE_SECRET_KEY, or are generated on first
start into DATA_DIR/root-credentials.json (0600) and printed once. A fleet gives every gateway
the same root credentials (the environment) and certificate (--tls-cert / --tls-key).
`

export const USER_USAGE = `usage: s3-sse user add NAME | list | remove NAME-OR-ACCESS-KEY [--data-dir DIR | --meta postgres://…]
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

export interface ServeArgs {
  config: ServerConfig
  /** The KMS it should use (docs/KMS.md). */
  kms: KmsSelection
  store: StoreSelection
  meta: MetaSelection
}

export function parseServeArgs(argv: string[]): ServerConfig {
  return parseServeOptions(argv).config
}

/** The serve flags: the server's configuration, the KMS it should use and where its stores are. */
export function parseServeOptions(argv: string[]): ServeArgs {
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
      'replication-lease-ms': { type: 'string' },
      'replication-poll-ms': { type: 'string' },
      'key-cache-ttl-ms': { type: 'string' },
      'job-lease-ms': { type: 'string' },
      'job-poll-ms': { type: 'string' },
      'public-url': { type: 'string' },
      'sweep-grace-ms': { type: 'string' },
      'sweep-interval-ms': { type: 'string' },
      'sweep-settle-ms': { type: 'string' },
      'header-timeout-ms': { type: 'string' },
      'idle-timeout-ms': { type: 'string' },
      'keep-alive-timeout-ms': { type: 'string' },
      ...KMS_OPTIONS,
      ...FLEET_OPTIONS,
    },
    strict: true,
  })
  const store = parseStoreSelection(values)
  const meta = parseMetaSelection(values)
  // Shared stores: other gateways write too, so the fleet's sweep and queue settings apply.
  const shared = store.kind === 's3' || meta.kind === 'postgres'
  const publicUrl = values['public-url']
  if (publicUrl !== undefined && !/^https:\/\/[^/]+\/?$/.test(publicUrl)) throw new S3sseError('S3SSE_BAD_ARGUMENT', `--public-url must be https://host[:port], got "${publicUrl}"`)
  const cacheTtl = values['key-cache-ttl-ms'] === '0' ? 0 : positive(values['key-cache-ttl-ms'], '--key-cache-ttl-ms')
  const sweepFlags = ['sweep-grace-ms', 'sweep-interval-ms', 'sweep-settle-ms'] as const
  if (!shared) for (const f of sweepFlags) if (values[f] !== undefined) throw new S3sseError('S3SSE_BAD_ARGUMENT', `--${f} goes with --store s3 or --meta postgres`)
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
      ...(shared ? FLEET_REPLICATION : {}),
      ...(values['replication-attempts'] !== undefined ? { attempts: positive(values['replication-attempts'], '--replication-attempts') } : {}),
      ...(values['replication-backoff-ms'] !== undefined ? { backoffMs: positive(values['replication-backoff-ms'], '--replication-backoff-ms') } : {}),
      ...(values['replication-lease-ms'] !== undefined ? { leaseMs: positive(values['replication-lease-ms'], '--replication-lease-ms') } : {}),
      ...(values['replication-poll-ms'] !== undefined ? { pollMs: positive(values['replication-poll-ms'], '--replication-poll-ms') } : {}),
    },
    ...(shared
      ? {
          sweep: {
            graceMs: positive(values['sweep-grace-ms'], '--sweep-grace-ms') ?? FLEET_SWEEP.graceMs,
            intervalMs: positive(values['sweep-interval-ms'], '--sweep-interval-ms') ?? FLEET_SWEEP.intervalMs,
            settleMs: values['sweep-settle-ms'] === '0' ? 0 : (positive(values['sweep-settle-ms'], '--sweep-settle-ms') ?? FLEET_SWEEP.settleMs),
          },
        }
      : {}),
    jobs: {
      ...(values['job-lease-ms'] !== undefined ? { leaseMs: positive(values['job-lease-ms'], '--job-lease-ms') } : {}),
      ...(values['job-poll-ms'] !== undefined ? { pollMs: positive(values['job-poll-ms'], '--job-poll-ms') } : {}),
    },
    ...(cacheTtl !== undefined ? { keyCache: { ttlMs: cacheTtl, bucketKeyTtlMs: cacheTtl } } : {}),
    ...(publicUrl ? { publicUrl } : {}),
    timeouts: {
      ...(values['header-timeout-ms'] !== undefined ? { headersMs: positive(values['header-timeout-ms'], '--header-timeout-ms') } : {}),
      ...(values['idle-timeout-ms'] !== undefined ? { idleMs: positive(values['idle-timeout-ms'], '--idle-timeout-ms') } : {}),
      ...(values['keep-alive-timeout-ms'] !== undefined ? { keepAliveMs: positive(values['keep-alive-timeout-ms'], '--keep-alive-timeout-ms') } : {}),
    },
  }
  return { config, kms, store, meta }
}

/** Runs the server until SIGTERM / SIGINT, then shuts down gracefully. */
export async function serve(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(SERVE_USAGE)
    return 0
  }
  const { config, kms: kmsSelection, store, meta } = parseServeOptions(argv)
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
  // An external KMS and the fleet's stores are opened here and handed to the server; the
  // embedded ones the server opens itself, in its data dir.
  let external: Awaited<ReturnType<typeof openKms>> | undefined
  let stores: Awaited<ReturnType<typeof openSelectedStores>> | undefined
  try {
    if (kmsSelection.kind !== 'embedded') external = await openKms(kmsSelection)
    stores = await openSelectedStores(store, meta)
    server = await startServer({
      config,
      ...(external ? { kms: external } : {}),
      ...(stores.blobs ? { blobs: stores.blobs } : {}),
      ...(stores.meta ? { meta: stores.meta } : {}),
    })
    removeGuard = installProcessGuard(server.state.log)
  } catch (err) {
    await stores?.close()
    process.off('SIGTERM', onTerm)
    process.off('SIGINT', onInt)
    await external?.close()
    throw err
  }
  const opened = stores
  const running = server
  const out = (s: string) => process.stdout.write(s + '\n')
  out(`data dir: ${server.state.config.dataDir}`)
  out(`TLS certificate: ${server.tls.certPath}${server.tls.created ? ' (self-signed, created now; trust this file in clients)' : ''}`)
  out(`region: ${config.region}, mode: ${config.mode}`)
  out(`object data: ${store.kind === 's3' ? `bucket ${store.bucket}${store.prefix ? ` prefix ${store.prefix}` : ''} at ${store.endpoint ?? 'Amazon S3'}` : 'files in the data dir'}; metadata: ${meta.kind === 'postgres' ? `PostgreSQL at ${new URL(meta.url!).host}` : 'SQLite in the data dir'}`)
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
      running.close().then(() => opened?.close()).then(() => external?.close()).then(() => {
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


export const MIGRATE_STORE_USAGE = `usage: s3-sse migrate-store --data-dir DIR --store s3 --store-bucket NAME [--store-endpoint URL …] --meta postgres://…

Copies the objects, buckets and users of an embedded data dir (files + SQLite) into a fleet's
backend bucket and PostgreSQL, sealed as they are: nothing is decrypted or re-encrypted. The
fleet reads them with the KMS that wrote them (serve DIR's keyring with s3-sse kms serve, or
move the keys first with s3-sse kms migrate). Stop the embedded server first; complete or abort
multipart uploads in progress. Objects already in the target are skipped: safe to run again.
Backend credentials: S3SSE_STORE_ACCESS_KEY / S3SSE_STORE_SECRET_KEY, else the AWS chain.
`

/** \`s3-sse migrate-store\`: see MIGRATE_STORE_USAGE. */
export async function migrateStoreCommand(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(MIGRATE_STORE_USAGE)
    return 0
  }
  const { values } = parseArgs({ args: argv, options: { 'data-dir': { type: 'string' }, ...FLEET_OPTIONS }, strict: true })
  const store = parseStoreSelection(values)
  const meta = parseMetaSelection(values)
  if (!values['data-dir'] || store.kind !== 's3' || meta.kind !== 'postgres') {
    process.stderr.write(`s3-sse migrate-store: needs --data-dir, --store s3 and --meta postgres://…\n${MIGRATE_STORE_USAGE}`)
    return 2
  }
  const { migrateStore } = await import('./migrate-store.js')
  const target = await openSelectedStores(store, meta)
  try {
    const r = await migrateStore(resolve(values['data-dir']), { blobs: target.blobs!, meta: target.meta! }, (line) => process.stdout.write(line + '\n'))
    process.stdout.write(`copied ${r.objects} objects (${r.bytes} sealed bytes) in ${r.buckets} buckets, ${r.skipped} already there; ${r.users} users\n`)
    return 0
  } finally {
    await target.close()
  }
}

/** What `s3-sse user` edits: the users file of a data dir, or a fleet's PostgreSQL. */
interface UserAdmin {
  add(name: string): User | Promise<User>
  list(): User[] | Promise<User[]>
  /** The user a name or access key names (S3SSE_NO_SUCH_USER if none). */
  find(nameOrKey: string): User | Promise<User>
  /** Names of the buckets a user id owns (a user who owns some is not removed). */
  bucketsOwnedBy(id: string): Promise<string[]>
  remove(nameOrKey: string): User | Promise<User>
  close(): Promise<void>
}

async function userAdmin(values: { 'data-dir'?: string; meta?: string }): Promise<UserAdmin> {
  const meta = parseMetaSelection({ meta: values.meta })
  if (meta.kind === 'sqlite') {
    const dataDir = resolve(values['data-dir'] ?? './data')
    const store = new UserStore(dataDir)
    return {
      add: (n) => store.add(n), list: () => store.list(), find: (n) => store.find(n), remove: (n) => store.remove(n),
      bucketsOwnedBy: (id) => bucketsOwnedBy(dataDir, id), close: async () => undefined,
    }
  }
  const { PostgresMetaStore } = await import('./meta/postgres/index.js')
  const pg = await PostgresMetaStore.open(meta.url!)
  return {
    add: (n) => pg.addUser(n), list: () => pg.listUsers(), find: (n) => pg.findUser(n), remove: (n) => pg.removeUser(n),
    bucketsOwnedBy: (id) => ownedIn(pg, id), close: () => pg.close(),
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
    return await ownedIn(meta, userId)
  } finally {
    await meta.close()
  }
}

async function ownedIn(meta: MetaStore, userId: string): Promise<string[]> {
  return (await meta.listBuckets()).filter((b) => b.owner === userId).map((b) => b.name)
}

export async function userCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { 'data-dir': { type: 'string' }, meta: { type: 'string' } },
    allowPositionals: true,
    strict: true,
  })
  const [action, name] = positionals
  if (!(action === 'list' || ((action === 'add' || action === 'remove') && name))) {
    process.stderr.write(USER_USAGE)
    return 2
  }
  const store = await userAdmin(values)
  try {
    switch (action) {
      case 'add': {
        const u = await store.add(name)
        process.stdout.write(`user ${u.name}\n  access key: ${u.accessKey}\n  secret key: ${u.secretKey}\n`)
        return 0
      }
      case 'list':
        for (const u of await store.list()) process.stdout.write(`${u.name}\t${u.accessKey}\t${u.createdAt}\n`)
        return 0
      default: {
        const owned = await store.bucketsOwnedBy((await store.find(name)).id)
        if (owned.length > 0) {
          throw new S3sseError(
            'S3SSE_USER_HAS_BUCKETS',
            `${name} owns ${owned.length} bucket(s): ${owned.join(', ')}. Delete them (emptied first) before removing the user; ` +
              'a new user is never given them, whatever their name',
          )
        }
        const u = await store.remove(name)
        process.stdout.write(`removed ${u.name} (${u.accessKey})\n`)
        return 0
      }
    }
  } finally {
    await store.close()
  }
}
