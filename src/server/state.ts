/**
 * What a running server holds: its configuration, metadata, files and identities.
 */
import type { Kms } from '../keys/kms.js'
import type { CountingKms } from '../keys/cache.js'
import type { ServerMode } from '../s3/sse.js'
import type { User, UserStore } from './credentials.js'
import type { MetaStore } from './db.js'
import type { ReplicationSettings, Replicator } from './replication.js'
import type { FileStore } from './store.js'

export interface ServerConfig {
  dataDir: string
  host: string
  /** 0 picks a free port. */
  httpsPort: number
  /** Plain HTTP: null turns it off, 0 picks a free port. */
  httpPort: number | null
  region: string
  mode: ServerMode
  /** Host names under which `<bucket>.<domain>` is virtual-hosted-style addressing. */
  domains: string[]
  tlsCert?: string
  tlsKey?: string
  /** Retries and parallelism of the replication worker (defaults: DEFAULT_REPLICATION). */
  replication?: Partial<ReplicationSettings>
  /** Slow-client bounds (defaults: DEFAULT_TIMEOUTS in timeouts.ts). */
  timeouts?: Partial<{ headersMs: number; idleMs: number; keepAliveMs: number }>
}

export interface Logger {
  info(msg: string): void
  error(msg: string): void
}

export interface ServerState {
  config: ServerConfig
  meta: MetaStore
  files: FileStore
  users: UserStore
  root: User
  log: Logger
  /** The KMS the object layer uses (the embedded one, cached). */
  kms: Kms
  /** The calls that reach the KMS behind the cache, counted for /-/metrics. */
  kmsCalls?: CountingKms
  /** The replication worker (started once the server listens). */
  replicator?: Replicator
}

export function lookupUser(state: ServerState, accessKey: string): User | undefined {
  if (accessKey === state.root.accessKey) return state.root
  return state.users.lookup(accessKey)
}
