/**
 * The replication worker: drains the replication queue (db.ts) inside the server process.
 *
 * A write that matches a rule is queued in the same SQLite transaction as its object row, so
 * a crash or a stop never loses one; at start everything queued is due at once. Each item is
 * tried until it succeeds, with a doubling delay between attempts, and marked FAILED after
 * the configured number. One key is never replicated twice at the same time, so replicas are
 * written in the order their sources were.
 *
 * A replica is written through the same object layer and KMS as any write, into the
 * destination bucket under the same key, with the source's metadata, content headers and
 * checksum. Its encryption follows the destination bucket's default encryption at the time it
 * is written (src/s3/replication.ts, replicaEncryption):
 * - encrypted source → the data key is re-wrapped for the replica's context and the sealed
 *   files are hard-linked, as CopyObject does: nothing is decrypted or re-encrypted;
 * - plaintext source, plaintext replica → the files are hard-linked;
 * - plaintext source, encrypted replica → sealed part by part under a new data key, so a
 *   multipart object keeps its parts (part numbers, x-amz-mp-parts-count, checksums).
 * It is a request of no client, so the HTTPS/SigV4 transport rule does not apply to it.
 */
import { S3sseError } from '../errors.js'
import { openRange, rewrap } from '../object/index.js'
import { replicaEncryption, replicaEtag } from '../s3/replication.js'
import type { ObjectRow, ReplicationItem } from './db.js'
import { bucketEncryption, encryptionRequest, manifestEncryption } from './encryption.js'
import type { ServerState } from './state.js'
import {
  beginUpload,
  decodeManifest,
  encodeManifest,
  finishUpload,
  stageObject,
  stagePart,
  type EncryptionRequest,
  type Manifest,
  type PartRecord,
  type StagedFile,
} from './store.js'

export interface ReplicationSettings {
  /** Attempts before an item is marked FAILED. */
  attempts: number
  /** Delay before the second attempt; it doubles with each attempt, up to 64 times this. */
  backoffMs: number
  /** Items replicated at once. */
  concurrency: number
}

export const DEFAULT_REPLICATION: ReplicationSettings = { attempts: 12, backoffMs: 1000, concurrency: 2 }

/** The delay after `attempts` failed attempts. */
export function retryDelay(settings: ReplicationSettings, attempts: number): number {
  return settings.backoffMs * 2 ** Math.min(Math.max(attempts - 1, 0), 6)
}

/** A failure with no point in retrying (the destination changed hands). */
class PermanentFailure extends Error {}

const keyOf = (item: { bucket: string; key: string }) => `${item.bucket}\u0000${item.key}`

async function* nothing(): AsyncGenerator<Buffer> {}

export class Replicator {
  private readonly inFlight = new Map<string, Promise<void>>()
  private timer: NodeJS.Timeout | undefined
  private scheduled = false
  private stopping = false
  /** Counters for /-/metrics. */
  completed = 0
  failed = 0
  retried = 0

  constructor(
    private readonly state: ServerState,
    readonly settings: ReplicationSettings = DEFAULT_REPLICATION,
  ) {}

  /** Resumes what an earlier run left queued and starts listening for new writes. */
  start(): void {
    this.state.meta.resumeReplications(Date.now())
    const pending = this.state.meta.pendingReplications()
    if (pending > 0) this.state.log.info(`replication: ${pending} ${pending === 1 ? 'write' : 'writes'} queued before the last stop, replicating now`)
    this.state.meta.onReplicationQueued = () => this.kick()
    this.kick()
  }

  /** Looks at the queue soon (after the current transaction, if any, has committed). */
  kick(): void {
    if (this.stopping || this.scheduled) return
    this.scheduled = true
    setImmediate(() => {
      this.scheduled = false
      this.pump()
    })
  }

  /** Takes no new items, and waits for those in flight (their outcome is recorded). */
  async stop(): Promise<void> {
    this.stopping = true
    this.state.meta.onReplicationQueued = undefined
    clearTimeout(this.timer)
    await Promise.allSettled([...this.inFlight.values()])
  }

  private pump(): void {
    if (this.stopping) return
    clearTimeout(this.timer)
    this.timer = undefined
    try {
      this.fill()
    } catch (err) {
      // The database refused (it is checked again on the next write or start); never crash the server.
      this.state.log.error(`replication: cannot read the queue: ${describe(err)}`)
    }
  }

  /** Starts due items in the free slots, and sets a timer for the next one due later. */
  private fill(): void {
    const { meta } = this.state
    const limit = this.settings.concurrency
    const now = Date.now()
    if (this.inFlight.size < limit) {
      // In-flight items are due too; ask for enough rows to find the free slots' worth.
      for (const item of meta.dueReplications(now, limit + this.inFlight.size)) {
        if (this.inFlight.size >= limit) break
        const k = keyOf(item)
        if (this.inFlight.has(k)) continue
        const run = this.run(item).finally(() => {
          this.inFlight.delete(k)
          this.kick()
        })
        this.inFlight.set(k, run)
      }
    }
    // Anything due now is running or waits for a slot; a finishing item kicks again.
    const next = meta.nextReplicationAt()
    if (next !== null && next > now) {
      this.timer = setTimeout(() => this.pump(), Math.min(next - now, 2 ** 31 - 1))
      this.timer.unref()
    }
  }

  private async run(item: ReplicationItem): Promise<void> {
    const { meta, log } = this.state
    try {
      let outcome: 'replicated' | 'superseded'
      try {
        outcome = await replicate(this.state, item)
      } catch (err) {
        const attempts = item.attempts + 1
        const reason = describe(err)
        if (err instanceof PermanentFailure || attempts >= this.settings.attempts) {
          meta.finishReplication(item, 'FAILED')
          this.failed++
          log.error(`replication of ${item.bucket}/${item.key} to ${item.destination} FAILED after ${attempts} ${attempts === 1 ? 'attempt' : 'attempts'}: ${reason}`)
        } else {
          const delay = retryDelay(this.settings, attempts)
          meta.retryReplication(item, attempts, Date.now() + delay, reason)
          this.retried++
          log.info(`replication of ${item.bucket}/${item.key} to ${item.destination}: attempt ${attempts} failed (${reason}); next in ${delay} ms`)
        }
        return
      }
      if (outcome === 'superseded') meta.dropReplication(item)
      else if (meta.finishReplication(item, 'COMPLETED')) this.completed++
    } catch (err) {
      // The queue itself failed (the database): the item stays queued for the next start.
      log.error(`replication of ${item.bucket}/${item.key}: ${describe(err)}`)
    }
  }
}

function describe(err: unknown): string {
  if (err instanceof S3sseError) return `${err.code}: ${err.message}`
  if (err instanceof Error) return err.message
  return String(err)
}

/** The source write of an item, if it is still the object's latest. */
function currentSource(state: ServerState, item: ReplicationItem): ObjectRow | undefined {
  const src = state.meta.getObject(item.bucket, item.key)
  return src?.replication?.status === 'PENDING' && src.replication.id === item.id ? src : undefined
}

/**
 * Writes the replica of one queued write. 'superseded': the write is no longer the source
 * key's latest (overwritten or deleted), so there is nothing of it to replicate.
 */
async function replicate(state: ServerState, item: ReplicationItem): Promise<'replicated' | 'superseded'> {
  const { meta, files } = state
  const src = currentSource(state, item)
  if (!src) return 'superseded'
  const dest = meta.getBucket(item.destination)
  if (!dest) throw new Error(`the destination bucket ${item.destination} does not exist`)
  if (item.destinationOwner !== null && dest.owner !== item.destinationOwner) {
    throw new PermanentFailure(`the destination bucket ${item.destination} no longer belongs to the owner it had when the rule was set`)
  }
  const encryption = encryptionRequest(
    state,
    replicaEncryption({ mode: state.config.mode, destination: dest.name, destinationDefault: bucketEncryption(dest), source: src.encryption }),
  )
  const srcManifest = decodeManifest(src.manifest)
  const from = { bucket: src.bucket, key: src.key }
  const to = { bucket: dest.name, key: src.key }

  let staged: { manifest: Manifest; files: StagedFile[] }
  try {
    staged = encryption && !srcManifest.encryption
      ? await sealReplica(state, src, srcManifest, from, to, encryption)
      : await linkReplica(state, src, srcManifest, from, to, encryption)
  } catch (err) {
    // The source's files went with a newer write or a delete: that write is not ours to finish.
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' && !currentSource(state, item)) return 'superseded'
    throw err
  }

  const { manifest } = staged
  const replica: ObjectRow = {
    bucket: dest.name,
    key: src.key,
    size: src.size,
    etag: replicaEtag({ etag: src.etag, encrypted: src.encryption !== undefined }, manifest.encryption !== undefined),
    // S3 replicas keep the source's metadata, creation time included.
    lastModified: src.lastModified,
    headers: src.headers,
    meta: src.meta,
    checksum: src.checksum,
    partsCount: src.partsCount,
    manifest: encodeManifest(manifest),
    files: staged.files.map((f) => f.id),
    encryption: manifestEncryption(manifest),
    replication: { status: 'REPLICA' },
  }
  try {
    await files.publish(staged.files)
  } catch (err) {
    await files.discard(staged.files)
    throw err
  }
  // Checked again right before the commit (no await between): a source overwritten or deleted
  // meanwhile is not replicated, so a replica never brings back data its source has lost.
  if (!currentSource(state, item)) {
    await files.remove(replica.files)
    return 'superseded'
  }
  const put = meta.putObject(replica)
  if (put === null) {
    await files.remove(replica.files)
    throw new Error(`the destination bucket ${dest.name} was deleted`)
  }
  await files.remove(put.replacedFiles)
  return 'replicated'
}

/** The replica keeps the source's bytes: re-wrap the data key (if any) and hard-link the files. */
async function linkReplica(
  state: ServerState,
  src: ObjectRow,
  m: Manifest,
  from: { bucket: string; key: string },
  to: { bucket: string; key: string },
  encryption: EncryptionRequest | null,
): Promise<{ manifest: Manifest; files: StagedFile[] }> {
  if (encryption?.createKey) await encryption.kms.ensureKey(encryption.keyId)
  const manifest = await rewrap(m, {
    kms: state.kms,
    from,
    to,
    ...(encryption ? { keyId: encryption.keyId, algorithm: encryption.algorithm, extraContext: encryption.extraContext ?? {} } : {}),
  })
  return { manifest, files: await state.files.linkCopies(src.files) }
}

/** A plaintext source sealed into an encrypted replica, part by part. */
async function sealReplica(
  state: ServerState,
  src: ObjectRow,
  m: Manifest,
  from: { bucket: string; key: string },
  to: { bucket: string; key: string },
  encryption: EncryptionRequest,
): Promise<{ manifest: Manifest; files: StagedFile[] }> {
  const { files } = state
  const access = { kms: state.kms }
  const reader = await files.openFiles(src.files)
  const staged: StagedFile[] = []
  try {
    let offset = 0
    const partPlaintext = (size: number) => {
      const start = offset
      offset += size
      return size === 0 ? nothing() : openRange(m, { context: from, ...access }, start, start + size - 1, reader.read)
    }
    if (m.parts.length === 1) {
      const one = await stageObject(files, partPlaintext(m.parts[0].size), { context: to, encryption })
      staged.push(one.file)
      return { manifest: one.result, files: staged }
    }
    const upload = await beginUpload({ context: to, encryption })
    const records: PartRecord[] = []
    for (const part of m.parts) {
      const sealed = await stagePart(files, upload, access, part.number, partPlaintext(part.size))
      staged.push(sealed.file)
      records.push(sealed.result)
    }
    return { manifest: await finishUpload(upload, access, records), files: staged }
  } catch (err) {
    await files.discard(staged)
    throw err
  } finally {
    await reader.close()
  }
}
