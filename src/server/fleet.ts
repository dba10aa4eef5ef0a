/**
 * Where `s3-sse serve` gets its blob and metadata stores: the embedded defaults (files and
 * SQLite in the data dir), or a fleet's shared ones — one bucket of an S3-compatible cluster
 * (`--store s3`) and PostgreSQL (`--meta postgres://…`). docs/DEPLOY.md shows a fleet end to end.
 */
import { readFileSync } from 'node:fs'
import { S3sseError } from '../errors.js'
import type { MetaStore } from './meta/index.js'
import type { ReplicationSettings, SweepSettings } from './state.js'
import type { BlobStore } from './store/blob.js'

export interface StoreSelection {
  kind: 'files' | 's3'
  endpoint?: string
  bucket?: string
  region?: string
  prefix?: string
  caFile?: string
  /** How long a removed blob stays readable (S3 store). */
  deleteGraceMs?: number
}

export interface MetaSelection {
  kind: 'sqlite' | 'postgres'
  url?: string
}

/** The flags, for node:util parseArgs. */
export const FLEET_OPTIONS = {
  store: { type: 'string' },
  'store-endpoint': { type: 'string' },
  'store-bucket': { type: 'string' },
  'store-region': { type: 'string' },
  'store-prefix': { type: 'string' },
  'store-ca-file': { type: 'string' },
  'store-delete-grace-ms': { type: 'string' },
  meta: { type: 'string' },
} as const

export const FLEET_USAGE = `  --store files|s3    where sealed object data lives (files: DATA_DIR/objects)
  --store-endpoint URL   s3: the cluster's S3 endpoint (default: Amazon S3 of the region)
  --store-bucket NAME    s3: the one backend bucket (it must exist)
  --store-region R       s3: the region to sign for (us-east-1)
  --store-prefix P       s3: a key prefix inside the bucket (none)
  --store-ca-file F      s3: PEM certificates to trust for an https endpoint
  --store-delete-grace-ms N  s3: how long a removed blob stays readable for open readers (900000)
                       s3 credentials: S3SSE_STORE_ACCESS_KEY / S3SSE_STORE_SECRET_KEY, else the AWS chain
  --meta sqlite|postgres://USER:PASS@HOST:PORT/DB   where metadata lives (sqlite: DATA_DIR/meta.sqlite)
`

type Values = { [K in keyof typeof FLEET_OPTIONS]?: string }

function whole(value: string | undefined, name: string, min = 0): number | undefined {
  if (value === undefined) return undefined
  if (!/^\d+$/.test(value) || Number(value) < min || !Number.isSafeInteger(Number(value))) {
    throw new S3sseError('S3SSE_BAD_ARGUMENT', `${name} must be a whole number of at least ${min}, got "${value}"`)
  }
  return Number(value)
}

export function parseStoreSelection(values: Values): StoreSelection {
  const kind = values.store ?? 'files'
  if (kind !== 'files' && kind !== 's3') throw new S3sseError('S3SSE_BAD_ARGUMENT', `--store must be files or s3, got "${kind}"`)
  const s3Only = ['store-endpoint', 'store-bucket', 'store-region', 'store-prefix', 'store-ca-file', 'store-delete-grace-ms'] as const
  if (kind === 'files') {
    for (const f of s3Only) if (values[f] !== undefined) throw new S3sseError('S3SSE_BAD_ARGUMENT', `--${f} goes with --store s3`)
    return { kind }
  }
  const bucket = values['store-bucket']
  if (!bucket) throw new S3sseError('S3SSE_BAD_ARGUMENT', '--store s3 needs --store-bucket NAME')
  const endpoint = values['store-endpoint']
  if (endpoint !== undefined && !/^https?:\/\/[^/]+\/?$/.test(endpoint)) {
    throw new S3sseError('S3SSE_BAD_ARGUMENT', `--store-endpoint must be http(s)://host[:port], got "${endpoint}"`)
  }
  return {
    kind,
    bucket,
    ...(endpoint ? { endpoint } : {}),
    ...(values['store-region'] ? { region: values['store-region'] } : {}),
    ...(values['store-prefix'] ? { prefix: values['store-prefix'] } : {}),
    ...(values['store-ca-file'] ? { caFile: values['store-ca-file'] } : {}),
    ...(values['store-delete-grace-ms'] !== undefined ? { deleteGraceMs: whole(values['store-delete-grace-ms'], '--store-delete-grace-ms') } : {}),
  }
}

export function parseMetaSelection(values: Values): MetaSelection {
  const v = values.meta ?? 'sqlite'
  if (v === 'sqlite') return { kind: 'sqlite' }
  if (/^postgres(ql)?:\/\//.test(v)) return { kind: 'postgres', url: v }
  throw new S3sseError('S3SSE_BAD_ARGUMENT', '--meta must be sqlite or a postgres://user:password@host:port/database URL')
}

/** A fleet's defaults, where other gateways share the stores (docs/DEPLOY.md explains each). */
export const FLEET_SWEEP: SweepSettings = { graceMs: 15 * 60_000, intervalMs: 15 * 60_000, settleMs: 2 * 60_000 }
export const FLEET_REPLICATION: Pick<ReplicationSettings, 'leaseMs' | 'pollMs'> = { leaseMs: 10 * 60_000, pollMs: 15_000 }

/** Opens the selected stores; embedded ones are left to startServer's defaults (undefined here). */
export async function openSelectedStores(store: StoreSelection, meta: MetaSelection): Promise<{ blobs?: BlobStore; meta?: MetaStore; close(): Promise<void> }> {
  const opened: Array<{ close(): Promise<void> }> = []
  const close = async () => {
    for (const o of opened.reverse()) await o.close().catch(() => undefined)
  }
  try {
    let blobs: BlobStore | undefined
    let metaStore: MetaStore | undefined
    if (meta.kind === 'postgres') {
      const { PostgresMetaStore } = await import('./meta/postgres/index.js')
      metaStore = await PostgresMetaStore.open(meta.url!)
      opened.push(metaStore)
    }
    if (store.kind === 's3') {
      let ca: Buffer | undefined
      if (store.caFile) {
        try {
          ca = readFileSync(store.caFile)
        } catch (e) {
          throw new S3sseError('S3SSE_BAD_ARGUMENT', `cannot read --store-ca-file ${store.caFile}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`)
        }
      }
      const { S3BlobStore } = await import('./store/s3.js')
      blobs = await S3BlobStore.open({
        bucket: store.bucket!,
        ...(store.endpoint ? { endpoint: store.endpoint } : {}),
        ...(store.region ? { region: store.region } : {}),
        ...(store.prefix ? { prefix: store.prefix } : {}),
        ...(ca ? { ca } : {}),
        ...(store.deleteGraceMs !== undefined ? { graceMs: store.deleteGraceMs } : {}),
      })
      opened.push(blobs)
    }
    return { blobs, meta: metaStore, close }
  } catch (err) {
    await close()
    throw err
  }
}
