/**
 * What a running server holds: its configuration, its three seams (blobs, metadata, KMS) and
 * identities. A leaf: it names interfaces only, so every module can depend on it.
 */
import type { Kms, KmsAdmin } from '../keys/kms.js'
import type { ServerMode } from '../s3/sse.js'
import type { User } from './credentials.js'
import type { MetaStore } from './meta/index.js'
import type { BlobStore } from './store/blob.js'

export interface ReplicationSettings {
  /** Attempts before an item is marked FAILED. */
  attempts: number
  /** Delay before the second attempt; it doubles with each attempt, up to 64 times this. */
  backoffMs: number
  /** Items replicated at once. */
  concurrency: number
  /**
   * How long a claimed item stays claimed; an item whose worker died is taken over after it.
   * Longer than any one replication takes (one machine: an hour; a fleet: minutes).
   */
  leaseMs: number
  /**
   * Look at the queue at least this often (ms), for items other gateways queued or gave up on;
   * null: only when this server queues one or a timer for a known item fires (one machine).
   */
  pollMs: number | null
}

export const DEFAULT_REPLICATION: ReplicationSettings = { attempts: 12, backoffMs: 1000, concurrency: 2, leaseMs: 60 * 60 * 1000, pollMs: null }

/**
 * The orphan sweep in a fleet (src/server/commit.ts, sweepOrphans), where other gateways have
 * writes in flight: it runs in the background, at start and then every `intervalMs`, on blobs
 * older than `graceMs` (longer than a staging lease), waiting `settleMs` between listing blobs
 * and reading references (longer than any commit takes). Absent: one machine, swept once at
 * start, before listening, with nothing in flight.
 */
export interface SweepSettings {
  graceMs: number
  intervalMs: number
  settleMs: number
}

/** The key cache in front of the KMS (src/keys/cache.ts); the bound on how stale a key's state may be. */
export interface KeyCacheSettings {
  /** How long an unwrapped data key is served from memory (default 5 minutes). */
  ttlMs?: number
  /** How long one bucket key serves new objects (default 5 minutes). */
  bucketKeyTtlMs?: number
}

export interface JobSettings {
  /** Jobs this process works at once. */
  concurrency: number
  /** Objects of one job worked at once. */
  parallel: number
  /** How long a worker's claim on a job holds unless renewed (renewed every few seconds). */
  leaseMs: number
  /** How often the job table is looked at for work (jobs started through another gateway). */
  pollMs: number
  /** Keys listed at a time. */
  batch: number
  /** Progress is saved at least this often while objects complete. */
  checkpointMs: number
  /** Waits before each new try of an object whose KMS, disk or database failed; after the last, the job fails (resumable). */
  retryDelaysMs: number[]
}

export const DEFAULT_JOBS: JobSettings = {
  concurrency: 2,
  parallel: 4,
  leaseMs: 30_000,
  pollMs: 2_000,
  batch: 100,
  checkpointMs: 1_000,
  retryDelaysMs: [500, 1_000, 2_000, 4_000, 8_000, 15_000, 30_000, 30_000],
}

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
  /** How the job runner works (defaults: DEFAULT_JOBS). */
  jobs?: Partial<JobSettings>
  /** A fleet's background sweep (see SweepSettings); absent: one sweep at start. */
  sweep?: SweepSettings
  /** How long the KMS's answers are cached: how long a rotation or a disabled key may take to show. */
  keyCache?: KeyCacheSettings
  /**
   * The HTTPS URL clients reach the server by, when a load balancer stands in front of it
   * (e.g. https://s3.example.com): the console's cookie and redirects use it.
   */
  publicUrl?: string
  /** Slow-client bounds (defaults: DEFAULT_TIMEOUTS in timeouts.ts). */
  timeouts?: Partial<{ headersMs: number; idleMs: number; keepAliveMs: number }>
}

export interface Logger {
  info(msg: string): void
  error(msg: string): void
}

/** What the server shows of its replication worker (src/server/replication.ts). */
export interface ReplicationWorker {
  /** Looks at the queue soon: a write was just queued. */
  kick(): void
  readonly completed: number
  readonly failed: number
  readonly retried: number
}

/** What the server shows of its job runner (src/server/jobs/runner.ts). */
export interface JobWorker {
  /** Looks for work now: a job was just created or resumed. */
  kick(): void
  /** Objects done by this process's workers since start, and those found damaged. */
  readonly objects: number
  readonly damaged: number
}

/** The KMS calls counted behind the cache, for /-/metrics. */
export interface KmsCallCounts {
  readonly counts: Readonly<Record<string, number>>
}

export interface ServerState {
  config: ServerConfig
  /** Sealed object data. */
  blobs: BlobStore
  /** Buckets, objects, uploads, the replication queue, users. */
  meta: MetaStore
  /** The KMS the object layer uses (the injected one, cached). */
  kms: Kms
  /** The injected KMS's admin surface, when it has one (the console's key listing). */
  kmsAdmin?: KmsAdmin
  /** The calls that reach the KMS behind the cache, counted for /-/metrics. */
  kmsCalls?: KmsCallCounts
  root: User
  log: Logger
  /** The replication worker (started once the server listens). */
  replicator?: ReplicationWorker
  /** The job runner (started once the server listens). */
  jobs?: JobWorker
  /** Space held back on the data dir's disk so that deletes work on a full one (reserve.ts); embedded default only. */
  space?: SpaceReserve
}

/** Disk space held back for deletes (src/server/reserve.ts). */
export interface SpaceReserve {
  /** Frees the held space; true when there was some. */
  release(): Promise<boolean>
  /** Holds it again if there is room (best effort). */
  restore(): Promise<void>
}

/** Root, or a user the MetaStore knows, by access key. */
export async function lookupUser(state: ServerState, accessKey: string): Promise<User | undefined> {
  if (accessKey === state.root.accessKey) return state.root
  return state.meta.lookupUser(accessKey)
}
