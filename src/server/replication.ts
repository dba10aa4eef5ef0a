/**
 * The replication worker: drains the replication queue (MetaStore) inside the server process.
 *
 * A write that matches a rule is queued in the same MetaStore transaction as its object row
 * (src/server/commit.ts), so a crash or a stop never loses one; at start everything queued is
 * due at once. Items are claimed with a lease, so workers in several processes never take one
 * item twice. Each item is
 * tried until it succeeds, with a doubling delay between attempts, and marked FAILED after
 * the configured number. One key is never replicated twice at the same time, so replicas are
 * written in the order their sources were.
 *
 * A replica is written through the same object layer and KMS as any write, into the
 * destination bucket under the same key, with the source's metadata, content headers and
 * checksum. Its encryption follows the destination bucket's default encryption at the time it
 * is written (src/s3/replication.ts, replicaEncryption):
 * - encrypted source → the data key is re-wrapped for the replica's context and the sealed
 *   blobs copied cheaply (BlobStore.copy), as CopyObject does: nothing is decrypted or re-encrypted;
 * - plaintext source, plaintext replica → the blobs are copied the same way;
 * - plaintext source, encrypted replica → sealed part by part under a new data key, so a
 *   multipart object keeps its parts (part numbers, x-amz-mp-parts-count, checksums).
 * It is a request of no client, so the HTTPS/SigV4 transport rule does not apply to it.
 */
import { S3sseError, isS3sseError } from '../errors.js'
import { rewrap, type EncryptionRequest, type Manifest } from '../object/index.js'
import { replicaEncryption, replicaEtag } from '../s3/replication.js'
import { etagProtection } from '../s3/sse.js'
import { commitObject, objectRow } from './commit.js'
import { bucketEncryption, encryptionRequest, kmsAccess } from './encryption.js'
import type { ObjectRow, ReplicationItem } from './meta/index.js'
import { checkedManifest, stageSealedCopy } from './sealed.js'
import { DEFAULT_REPLICATION, type ReplicationSettings, type ReplicationWorker, type ServerState } from './state.js'
import type { StagedBlob } from './store/blob.js'

export { DEFAULT_REPLICATION, type ReplicationSettings } from './state.js'

/**
 * How long a claimed item stays claimed (MetaStore.claimReplications). Longer than any one
 * replication takes; a crashed server's claims are released at its next start (resume).
 */
export const REPLICATION_LEASE_MS = 60 * 60 * 1000

/** The delay after `attempts` failed attempts. */
export function retryDelay(settings: ReplicationSettings, attempts: number): number {
  return settings.backoffMs * 2 ** Math.min(Math.max(attempts - 1, 0), 6)
}

/** A failure with no point in retrying (the destination changed hands). */
class PermanentFailure extends Error {}

const keyOf = (item: { bucket: string; key: string }) => `${item.bucket}\u0000${item.key}`

export class Replicator implements ReplicationWorker {
  private readonly inFlight = new Map<string, Promise<void>>()
  private timer: NodeJS.Timeout | undefined
  private scheduled = false
  private stopping = false
  private filling: Promise<void> | undefined
  private again = false
  /** Counters for /-/metrics. */
  completed = 0
  failed = 0
  retried = 0

  constructor(
    private readonly state: ServerState,
    readonly settings: ReplicationSettings = DEFAULT_REPLICATION,
  ) {}

  /** Resumes what an earlier run left queued; new writes kick it (src/server/commit.ts). */
  async start(): Promise<void> {
    await this.state.meta.resumeReplications(Date.now())
    const pending = await this.state.meta.pendingReplications()
    if (pending > 0) this.state.log.info(`replication: ${pending} ${pending === 1 ? 'write' : 'writes'} queued before the last stop, replicating now`)
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
    clearTimeout(this.timer)
    await this.filling
    await Promise.allSettled([...this.inFlight.values()])
  }

  private pump(): void {
    if (this.stopping) return
    // One fill at a time (it awaits the store): a kick during one runs another right after.
    if (this.filling) {
      this.again = true
      return
    }
    clearTimeout(this.timer)
    this.timer = undefined
    this.filling = this.fill()
      .catch((err) => {
        // The store refused (it is tried again on the next write or start); never crash the server.
        this.state.log.error(`replication: cannot read the queue: ${describe(err)}`)
      })
      .finally(() => {
        this.filling = undefined
        if (this.again) {
          this.again = false
          this.pump()
        }
      })
  }

  /**
   * Claims due items for the free slots and starts them, and sets a timer for the next one due
   * later. A claimed item whose key is still in flight (a newer write of it) runs after that
   * one, so one key is never replicated twice at a time.
   */
  private async fill(): Promise<void> {
    const { meta } = this.state
    const now = Date.now()
    const free = this.settings.concurrency - this.inFlight.size
    if (free > 0) {
      for (const item of await meta.claimReplications({ now, limit: free, leaseMs: this.settings.leaseMs ?? REPLICATION_LEASE_MS })) {
        if (this.stopping) break
        const k = keyOf(item)
        const before = this.inFlight.get(k) ?? Promise.resolve()
        const run: Promise<void> = before.then(() => this.run(item)).finally(() => {
          if (this.inFlight.get(k) === run) this.inFlight.delete(k)
          this.kick()
        })
        this.inFlight.set(k, run)
      }
    }
    // Anything due now is running or waits for a slot; a finishing item kicks again.
    const next = await meta.nextReplicationAt()
    if (this.stopping) return
    // A fleet also looks every pollMs: other gateways queue items too, and a dead one's claims run out.
    const poll = this.settings.pollMs ?? null
    const wait = next !== null && next > now ? next - now : poll
    if (wait !== null && (next === null || next > now)) {
      clearTimeout(this.timer)
      this.timer = setTimeout(() => this.pump(), Math.min(poll !== null ? Math.min(wait, poll) : wait, 2 ** 31 - 1))
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
          await meta.finishReplication(item, 'FAILED')
          this.failed++
          log.error(`replication of ${item.bucket}/${item.key} to ${item.destination} FAILED after ${attempts} ${attempts === 1 ? 'attempt' : 'attempts'}: ${reason}`)
        } else {
          const delay = retryDelay(this.settings, attempts)
          await meta.retryReplication(item, attempts, Date.now() + delay, reason)
          this.retried++
          log.info(`replication of ${item.bucket}/${item.key} to ${item.destination}: attempt ${attempts} failed (${reason}); next in ${delay} ms`)
        }
        return
      }
      if (outcome === 'superseded') await meta.dropReplication(item)
      else if (await meta.finishReplication(item, 'COMPLETED')) this.completed++
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
async function currentSource(state: ServerState, item: ReplicationItem): Promise<ObjectRow | undefined> {
  const src = await state.meta.getObject(item.bucket, item.key)
  return src?.replication?.status === 'PENDING' && src.replication.id === item.id ? src : undefined
}

/**
 * Writes the replica of one queued write. 'superseded': the write is no longer the source
 * key's latest (overwritten or deleted), so there is nothing of it to replicate.
 */
async function replicate(state: ServerState, item: ReplicationItem): Promise<'replicated' | 'superseded'> {
  const src = await currentSource(state, item)
  if (!src) return 'superseded'
  const dest = await state.meta.getBucket(item.destination)
  if (!dest) throw new Error(`the destination bucket ${item.destination} does not exist`)
  if (item.destinationOwner !== null && dest.owner !== item.destinationOwner) {
    throw new PermanentFailure(`the destination bucket ${item.destination} no longer belongs to the owner it had when the rule was set`)
  }
  const encryption = encryptionRequest(
    state,
    replicaEncryption({ mode: state.config.mode, destination: dest.name, destinationDefault: bucketEncryption(dest), source: src.encryption }),
  )
  const srcManifest = checkedManifest(src)
  const from = { bucket: src.bucket, key: src.key }
  const to = { bucket: dest.name, key: src.key }

  let staged: { manifest: Manifest; blobs: StagedBlob[] }
  try {
    staged = encryption && !srcManifest.encryption
      ? await sealReplica(state, src, srcManifest, from, to, encryption)
      : await copyReplica(state, src, srcManifest, from, to, encryption)
  } catch (err) {
    // The source's blobs went with a newer write or a delete: that write is not ours to finish.
    if (isS3sseError(err, 'S3SSE_BLOB_NOT_FOUND') && !(await currentSource(state, item))) return 'superseded'
    throw err
  }

  const { manifest } = staged
  const replica = objectRow({
    bucket: dest.name,
    key: src.key,
    manifest,
    blobs: staged.blobs.map((b) => b.id),
    size: src.size,
    etag: replicaEtag({ etag: src.etag, protection: etagProtection(src.encryption) }, etagProtection(manifest.encryption)),
    // S3 replicas keep the source's metadata, creation time included.
    lastModified: src.lastModified,
    headers: src.headers,
    meta: src.meta,
    checksum: src.checksum,
    partsCount: src.partsCount,
    keyName: encryption?.keyName,
    // S3 replicas keep the source's tags.
    tags: src.tags,
  })
  // Committed only while the source is still this write (checked in the commit's transaction):
  // a replica never brings back data its source has lost.
  let outcome: 'committed' | 'superseded'
  try {
    outcome = await commitObject(state, replica, staged.blobs, { replicaOf: item })
  } catch (err) {
    if (isS3sseError(err, 'NoSuchBucket')) throw new Error(`the destination bucket ${dest.name} was deleted`)
    throw err
  }
  return outcome === 'superseded' ? 'superseded' : 'replicated'
}

/** The replica keeps the source's bytes: re-wrap the data key (if any) and copy the blobs. */
async function copyReplica(
  state: ServerState,
  src: ObjectRow,
  m: Manifest,
  from: { bucket: string; key: string },
  to: { bucket: string; key: string },
  encryption: EncryptionRequest | null,
): Promise<{ manifest: Manifest; blobs: StagedBlob[] }> {
  const manifest = await rewrap(m, {
    kms: state.kms,
    from,
    to,
    ...(encryption ? { keyId: encryption.keyId, createKey: encryption.createKey, algorithm: encryption.algorithm, extraContext: encryption.extraContext ?? {} } : {}),
  })
  return { manifest, blobs: await state.blobs.copy(src.blobs) }
}

/** A plaintext source sealed into an encrypted replica, part by part. */
function sealReplica(
  state: ServerState,
  src: ObjectRow,
  m: Manifest,
  from: { bucket: string; key: string },
  to: { bucket: string; key: string },
  encryption: EncryptionRequest,
): Promise<{ manifest: Manifest; blobs: StagedBlob[] }> {
  return stageSealedCopy(state.blobs, { manifest: m, blobs: src.blobs, context: from }, kmsAccess(state), to, encryption)
}
