/**
 * The fleet BlobStore: sealed blobs as objects in one bucket of an S3-compatible cluster (Ceph
 * RGW, MinIO, Amazon S3), shared by every gateway. docs/DEPLOY.md describes it for operators.
 *
 *   PREFIX blobs/ID     the sealed bytes (only ever ciphertext for an encrypted object)
 *   PREFIX staging/ID   present while ID is staged: empty, owner in its metadata, rewritten
 *                       (renewed) by the staging gateway every leaseMs / 3, deleted (in the
 *                       background) once the blob is published
 *   PREFIX deleted/ID   a removal: the blob is deleted `graceMs` after this was written
 *
 * - stage: the staging marker, and beside it the stream as one PutObject when it fits in one
 *   part, else as a multipart upload of `partSize` parts read from the stream as it comes (at
 *   most two parts in memory, no temp file). publish deletes the markers; discard deletes both.
 * - copy: a server-side CopyObject, or UploadPartCopy of ranges above `copyThreshold`.
 * - open/read: ranged GETs of exactly the bytes asked for, streamed.
 * - remove: writes tombstones; the blobs themselves go `graceMs` later in batched DeleteObjects
 *   (purge, run by every gateway), so a reader that opened them keeps reading for that long:
 *   the promise "readable for the reader's lifetime" holds for readers shorter than graceMs.
 * - list: staged blobs carry their marker's time (a live gateway keeps it fresh, so a sweep
 *   with a cutoff older than leaseMs never takes another gateway's staging); stored blobs their
 *   LastModified; blobs being removed are left out.
 *
 * Backend errors are typed: 404 → S3SSE_BLOB_NOT_FOUND; throttling, 5xx and network errors are
 * retried by the SDK (standard mode, backoff) and then S3SSE_STORAGE_UNAVAILABLE; a quota →
 * S3SSE_STORAGE_FULL; anything else (refused credentials, a missing bucket) → S3SSE_STORAGE_IO.
 * Clocks of gateways and backend are assumed in sync (NTP): times come from the backend.
 */
import { randomBytes } from 'node:crypto'
import http from 'node:http'
import https from 'node:https'
import { hostname } from 'node:os'
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  UploadPartCopyCommand,
  type S3ClientConfig,
} from '@aws-sdk/client-s3'
import { NodeHttpHandler } from '@smithy/node-http-handler'
import { S3sseError, isS3sseError } from '../../errors.js'
import { watchSource, type BlobEntry, type BlobId, type BlobReader, type BlobStore, type StagedBlob } from './blob.js'

export interface S3StoreOptions {
  /** The backend's endpoint (http(s)://host:port); omitted: Amazon S3 of the region. */
  endpoint?: string
  bucket: string
  region?: string
  /** Key prefix inside the bucket (e.g. "s3sse/"); default none. */
  prefix?: string
  /** Explicit credentials; omitted: S3SSE_STORE_ACCESS_KEY/SECRET_KEY, else the standard AWS chain. */
  credentials?: { accessKeyId: string; secretAccessKey: string }
  /** Path-style addressing (default: on when an endpoint is given, as most clusters need). */
  forcePathStyle?: boolean
  /** PEM certificates to trust for an https endpoint. */
  ca?: string | Buffer
  /** This gateway's name in staging markers (default host-pid-random). */
  owner?: string
  /** Backend part size of a staged blob (default 8 MiB; at least 5 MiB, S3's minimum). */
  partSize?: number
  /** Blobs larger than this are copied with UploadPartCopy (default 5 GiB, CopyObject's limit). */
  copyThreshold?: number
  /** The range each UploadPartCopy copies (default 512 MiB). */
  copyPartSize?: number
  /** How long a staging marker holds without renewal (default 2 min). */
  leaseMs?: number
  /** How long a removed blob stays readable (default 15 min). */
  graceMs?: number
  /** How often this gateway purges removed blobs whose grace ran out (default 1 min; 0: never, tests call purge). */
  purgeIntervalMs?: number
  /** Attempts per backend call, throttling included (default 5). */
  maxAttempts?: number
}

const MiB = 1024 * 1024
const MIN_PART = 5 * MiB
const ID_PATTERN = /^[0-9a-f]{32}$/
/** DeleteObjects takes at most 1000 keys. */
const DELETE_BATCH = 1000

function newId(): BlobId {
  return randomBytes(16).toString('hex')
}

const THROTTLED = new Set(['SlowDown', 'Throttling', 'ThrottlingException', 'RequestLimitExceeded', 'TooManyRequests', 'ServiceUnavailable', 'RequestTimeout', 'InternalError', 'TimeoutError'])
const NETWORK = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ECONNABORTED'])

/** A backend failure of `what` as the store's typed error (never a credential or a user key in it). */
export function backendError(what: string, err: unknown): S3sseError {
  if (isS3sseError(err)) return err
  const e = err as { name?: string; Code?: string; code?: string; $metadata?: { httpStatusCode?: number } } | null
  const name = e?.Code ?? e?.name ?? ''
  const status = e?.$metadata?.httpStatusCode
  const sys = e?.code ?? ''
  if (name === 'NoSuchKey' || name === 'NotFound' || status === 404 && name !== 'NoSuchBucket') {
    return new S3sseError('S3SSE_BLOB_NOT_FOUND', `${what}: no such blob`, { cause: err })
  }
  if (name === 'QuotaExceeded' || name === 'EntityTooLarge' || status === 507) {
    return new S3sseError('S3SSE_STORAGE_FULL', `${what}: the object store is over its quota`, { cause: err })
  }
  if (THROTTLED.has(name) || NETWORK.has(sys) || (status !== undefined && status >= 500) || status === 429) {
    return new S3sseError('S3SSE_STORAGE_UNAVAILABLE', `${what}: the object store did not answer (${name || sys || status})`, { cause: err })
  }
  return new S3sseError('S3SSE_STORAGE_IO', `${what}: the object store refused (${name || sys || status || 'error'})`, { cause: err })
}

/** Collects a stream into parts of exactly `size` bytes (the last one shorter). */
async function* partsOf(source: AsyncIterable<Uint8Array>, size: number): AsyncGenerator<Buffer> {
  let chunks: Buffer[] = []
  let held = 0
  for await (const c of source) {
    let chunk = Buffer.from(c.buffer, c.byteOffset, c.byteLength)
    while (held + chunk.length >= size) {
      const take = size - held
      chunks.push(chunk.subarray(0, take))
      yield Buffer.concat(chunks, size)
      chunks = []
      held = 0
      chunk = chunk.subarray(take)
    }
    if (chunk.length > 0) {
      // Copied: the source may reuse its buffer once we ask for the next chunk.
      chunks.push(Buffer.from(chunk))
      held += chunk.length
    }
  }
  if (held > 0) yield Buffer.concat(chunks, held)
}

export class S3BlobStore implements BlobStore {
  readonly client: S3Client
  readonly bucket: string
  readonly prefix: string
  readonly owner: string
  readonly leaseMs: number
  readonly graceMs: number
  private readonly partSize: number
  private readonly copyThreshold: number
  private readonly copyPartSize: number
  /** Staged blobs of this gateway whose markers it renews. */
  private readonly live = new Set<BlobId>()
  private renewal: Promise<void> | undefined
  private readonly timers: NodeJS.Timeout[] = []
  private purging: Promise<unknown> | undefined
  private readonly unmarking = new Set<Promise<void>>()

  private constructor(opts: S3StoreOptions, client: S3Client) {
    this.client = client
    this.bucket = opts.bucket
    this.prefix = opts.prefix ?? ''
    this.owner = opts.owner ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`
    this.partSize = opts.partSize ?? 8 * MiB
    this.copyThreshold = opts.copyThreshold ?? 5 * 1024 * MiB
    this.copyPartSize = opts.copyPartSize ?? 512 * MiB
    this.leaseMs = opts.leaseMs ?? 120_000
    this.graceMs = opts.graceMs ?? 15 * 60_000
    if (this.partSize < MIN_PART) throw new S3sseError('S3SSE_BAD_ARGUMENT', `the backend part size must be at least ${MIN_PART} bytes (S3's minimum)`)
    if (this.copyPartSize < MIN_PART) throw new S3sseError('S3SSE_BAD_ARGUMENT', `the backend copy part size must be at least ${MIN_PART} bytes`)
  }

  /** Connects to the backend bucket (it must exist: S3SSE_STORAGE_IO otherwise) and starts renewing and purging. */
  static async open(opts: S3StoreOptions): Promise<S3BlobStore> {
    const envKey = process.env.S3SSE_STORE_ACCESS_KEY
    const envSecret = process.env.S3SSE_STORE_SECRET_KEY
    if ((envKey === undefined) !== (envSecret === undefined) && !opts.credentials) {
      throw new S3sseError('S3SSE_BAD_CREDENTIALS', 'Set both S3SSE_STORE_ACCESS_KEY and S3SSE_STORE_SECRET_KEY, or neither (then the standard AWS chain is used).')
    }
    const credentials = opts.credentials ?? (envKey && envSecret ? { accessKeyId: envKey, secretAccessKey: envSecret } : undefined)
    const agentOptions = { keepAlive: true, maxSockets: 128 }
    const config: S3ClientConfig = {
      region: opts.region ?? process.env.AWS_REGION ?? 'us-east-1',
      ...(opts.endpoint ? { endpoint: opts.endpoint } : {}),
      forcePathStyle: opts.forcePathStyle ?? opts.endpoint !== undefined,
      ...(credentials ? { credentials } : {}),
      // Only what the call needs: many S3-compatible clusters do not know the newer checksums.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      retryMode: 'standard',
      maxAttempts: opts.maxAttempts ?? 5,
      requestHandler: new NodeHttpHandler({
        httpAgent: new http.Agent(agentOptions),
        httpsAgent: new https.Agent({ ...agentOptions, ...(opts.ca ? { ca: opts.ca } : {}) }),
        connectionTimeout: 10_000,
        requestTimeout: 120_000,
      }),
    }
    const store = new S3BlobStore(opts, new S3Client(config))
    try {
      await store.client.send(new HeadBucketCommand({ Bucket: store.bucket }))
    } catch (err) {
      store.client.destroy()
      const e = backendError(`opening the backend bucket ${store.bucket}`, err)
      // A HEAD of a missing bucket is a bare 404: say what it means.
      throw e.code === 'S3SSE_BLOB_NOT_FOUND' ? new S3sseError('S3SSE_STORAGE_IO', `the backend bucket ${store.bucket} does not exist`, { cause: err }) : e
    }
    const renew = setInterval(() => void store.renew(), Math.max(50, Math.floor(store.leaseMs / 3)))
    renew.unref()
    store.timers.push(renew)
    const every = opts.purgeIntervalMs ?? 60_000
    if (every > 0) {
      const purge = setInterval(() => {
        store.purging ??= store.purge().catch(() => undefined).finally(() => (store.purging = undefined))
      }, every)
      purge.unref()
      store.timers.push(purge)
    }
    return store
  }

  blobKey(id: BlobId): string {
    return `${this.prefix}blobs/${id}`
  }

  private markerKey(id: BlobId): string {
    return `${this.prefix}staging/${id}`
  }

  private tombstoneKey(id: BlobId): string {
    return `${this.prefix}deleted/${id}`
  }

  private async putMarker(id: BlobId): Promise<void> {
    await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: this.markerKey(id), Body: '', ContentLength: 0, Metadata: { owner: this.owner } }))
  }

  /** Rewrites the markers of this gateway's staged blobs, so no sweep takes them while it lives. */
  private renew(): Promise<void> {
    if (this.renewal || this.live.size === 0) return this.renewal ?? Promise.resolve()
    this.renewal = (async () => {
      const ids = [...this.live]
      for (let i = 0; i < ids.length; i += 16) {
        await Promise.all(ids.slice(i, i + 16).map(async (id) => {
          // A blob published meanwhile must not get its marker back.
          if (this.live.has(id)) await this.putMarker(id).catch(() => undefined)
        }))
      }
    })().finally(() => (this.renewal = undefined))
    return this.renewal
  }

  async stage(source: AsyncIterable<Uint8Array>): Promise<StagedBlob> {
    const id = newId()
    const createdAt = Date.now()
    const watched = watchSource(source)
    // The marker and the data go up side by side: until the marker lands the blob is not
    // listed at all, or listed as stored with a fresh time, which no sweep's cutoff reaches.
    this.live.add(id)
    const marker = this.putMarker(id)
    marker.catch(() => undefined)
    try {
      await this.upload(this.blobKey(id), watched.stream)
      await marker
    } catch (err) {
      await marker.catch(() => undefined)
      await this.discard([{ id, createdAt }])
      const failed = watched.failed()
      if (failed) throw failed.err
      throw backendError(`staging blob ${id}`, err)
    }
    return { id, createdAt, owner: this.owner }
  }

  /** One PutObject for a blob that fits in a part, else a multipart upload with one part in flight while the next fills. */
  private async upload(key: string, source: AsyncIterable<Uint8Array>): Promise<void> {
    const parts = partsOf(source, this.partSize)[Symbol.asyncIterator]()
    const first = await parts.next()
    const firstBody = first.done ? Buffer.alloc(0) : first.value
    const second = first.done || firstBody.length < this.partSize ? { done: true as const, value: undefined } : await parts.next()
    if (second.done) {
      await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: firstBody, ContentLength: firstBody.length }))
      return
    }
    const created = await this.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: key }))
    const uploadId = created.UploadId!
    const done: Array<{ PartNumber: number; ETag: string }> = []
    let inFlight: Promise<void> | undefined
    const send = (n: number, body: Buffer) =>
      this.client.send(new UploadPartCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId, PartNumber: n, Body: body, ContentLength: body.length })).then((r) => {
        done.push({ PartNumber: n, ETag: r.ETag! })
      })
    try {
      let n = 1
      inFlight = send(n++, firstBody)
      let next: IteratorResult<Buffer> = second
      while (!next.done) {
        const body = next.value
        await inFlight
        inFlight = send(n++, body)
        next = await parts.next()
      }
      await inFlight
      inFlight = undefined
      done.sort((a, b) => a.PartNumber - b.PartNumber)
      await this.client.send(new CompleteMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId, MultipartUpload: { Parts: done } }))
    } catch (err) {
      await inFlight?.catch(() => undefined)
      await parts.return?.(undefined).catch(() => undefined)
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId })).catch(() => undefined)
      throw err
    }
  }

  async copy(ids: BlobId[]): Promise<StagedBlob[]> {
    const staged: StagedBlob[] = []
    try {
      for (const src of ids) {
        const id = newId()
        const createdAt = Date.now()
        await this.putMarker(id)
        this.live.add(id)
        staged.push({ id, createdAt, owner: this.owner })
        await this.copyObject(this.blobKey(src), this.blobKey(id))
      }
    } catch (err) {
      await this.discard(staged)
      throw backendError(`copying blobs ${ids.join(', ')}`, err)
    }
    return staged
  }

  private async copyObject(from: string, to: string): Promise<void> {
    const source = `${this.bucket}/${from.split('/').map(encodeURIComponent).join('/')}`
    const head = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: from }))
    const size = head.ContentLength ?? 0
    if (size <= this.copyThreshold) {
      await this.client.send(new CopyObjectCommand({ Bucket: this.bucket, Key: to, CopySource: source }))
      return
    }
    const created = await this.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: to }))
    const uploadId = created.UploadId!
    try {
      const ranges: Array<[number, number]> = []
      for (let start = 0; start < size; start += this.copyPartSize) ranges.push([start, Math.min(size, start + this.copyPartSize) - 1])
      const parts: Array<{ PartNumber: number; ETag: string }> = []
      for (let i = 0; i < ranges.length; i += 4) {
        await Promise.all(ranges.slice(i, i + 4).map(async ([start, end], j) => {
          const n = i + j + 1
          const r = await this.client.send(new UploadPartCopyCommand({ Bucket: this.bucket, Key: to, UploadId: uploadId, PartNumber: n, CopySource: source, CopySourceRange: `bytes=${start}-${end}` }))
          parts.push({ PartNumber: n, ETag: r.CopyPartResult!.ETag! })
        }))
      }
      parts.sort((a, b) => a.PartNumber - b.PartNumber)
      await this.client.send(new CompleteMultipartUploadCommand({ Bucket: this.bucket, Key: to, UploadId: uploadId, MultipartUpload: { Parts: parts } }))
    } catch (err) {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: to, UploadId: uploadId })).catch(() => undefined)
      throw err
    }
  }

  /**
   * The blobs are durable already (the backend acknowledged them); their markers go now, in
   * the background, off the request's path. A marker that outlives its blob's commit (a crash,
   * a failed delete) is harmless: the sweep publishes a staged blob that a row references and
   * discards one that none does.
   */
  async publish(staged: StagedBlob[]): Promise<void> {
    if (staged.length === 0) return
    for (const b of staged) this.live.delete(b.id)
    const unmark = (async () => {
      // A renewal already under way might write a marker back after we delete it: let it finish.
      await this.renewal?.catch(() => undefined)
      await this.deleteKeys(staged.map((b) => this.markerKey(b.id)))
    })()
      .catch(() => undefined)
      .finally(() => this.unmarking.delete(unmark))
    this.unmarking.add(unmark)
  }

  /** Waits for the markers of published blobs to be gone (tests; close). */
  async settled(): Promise<void> {
    await Promise.all([...this.unmarking])
  }

  async discard(staged: StagedBlob[]): Promise<void> {
    if (staged.length === 0) return
    for (const b of staged) this.live.delete(b.id)
    await this.renewal?.catch(() => undefined)
    // A gateway that died mid-upload leaves a backend multipart upload behind: abort it too.
    await Promise.all(staged.map((b) => this.abortUploads(this.blobKey(b.id)).catch(() => undefined)))
    await this.deleteKeys(staged.flatMap((b) => [this.blobKey(b.id), this.markerKey(b.id)])).catch(() => undefined)
  }

  private async abortUploads(key: string): Promise<void> {
    const r = await this.client.send(new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: key }))
    for (const u of r.Uploads ?? []) {
      if (u.Key === key) await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: u.UploadId! }))
    }
  }

  /** DeleteObjects in batches; a key already gone is fine, any other per-key error fails the call. */
  private async deleteKeys(keys: string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += DELETE_BATCH) {
      const batch = keys.slice(i, i + DELETE_BATCH)
      const r = await this.client.send(new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true } }))
      const failed = (r.Errors ?? []).filter((e) => e.Code !== 'NoSuchKey')
      if (failed.length > 0) throw Object.assign(new Error(`DeleteObjects failed for ${failed.length} keys: ${failed[0].Code}`), { name: failed[0].Code })
    }
  }

  async open(ids: BlobId[]): Promise<BlobReader> {
    // The first blob's absence shows in its first read, before any byte goes out; the others are
    // checked now, so a reader never starts on an object that is partly gone.
    try {
      await Promise.all(ids.slice(1).map((id) => this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.blobKey(id) }))))
    } catch (err) {
      throw backendError(`opening blobs ${ids.join(', ')}`, err)
    }
    let closed = false
    const streams = new Set<{ destroy(): void }>()
    return {
      read: (index, start, end) => this.readRange(ids[index], start, end, streams, () => closed),
      async close() {
        closed = true
        for (const s of streams) s.destroy()
        streams.clear()
      },
    }
  }

  private async *readRange(id: BlobId | undefined, start: number, end: number, streams: Set<{ destroy(): void }>, closed: () => boolean): AsyncGenerator<Uint8Array> {
    if (end <= start) return
    if (id === undefined || closed()) throw new S3sseError('S3SSE_STORAGE_IO', 'reading a blob that is not in this reader')
    let body: (AsyncIterable<Uint8Array> & { destroy(): void }) | undefined
    try {
      const r = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.blobKey(id), Range: `bytes=${start}-${end - 1}` }))
      body = r.Body as unknown as AsyncIterable<Uint8Array> & { destroy(): void }
      streams.add(body)
      for await (const chunk of body) yield chunk
    } catch (err) {
      // 416: the blob is shorter than the manifest says; the object layer reports the short count.
      if ((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 416) return
      throw backendError(`reading blob ${id}`, err)
    } finally {
      if (body) {
        streams.delete(body)
        body.destroy()
      }
    }
  }

  /** Tombstones now; the blobs go after graceMs (purge), so open readers keep their bytes. */
  async remove(ids: BlobId[]): Promise<void> {
    try {
      for (let i = 0; i < ids.length; i += 16) {
        await Promise.all(ids.slice(i, i + 16).map((id) => this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: this.tombstoneKey(id), Body: '', ContentLength: 0 }))))
      }
    } catch (err) {
      throw backendError(`removing blobs ${ids.join(', ')}`, err)
    }
  }

  /** Deletes removed blobs whose grace ran out (any gateway may; deleting twice is harmless). */
  async purge(now = Date.now()): Promise<number> {
    const due: BlobId[] = []
    for await (const o of this.listKeys('deleted/')) if (o.at <= now - this.graceMs) due.push(o.id)
    for (let i = 0; i < due.length; i += DELETE_BATCH / 2) {
      const batch = due.slice(i, i + DELETE_BATCH / 2)
      try {
        await this.deleteKeys(batch.flatMap((id) => [this.blobKey(id), this.tombstoneKey(id)]))
      } catch (err) {
        throw backendError('purging removed blobs', err)
      }
    }
    return due.length
  }

  private async *listKeys(kind: 'blobs/' | 'staging/' | 'deleted/'): AsyncGenerator<{ id: BlobId; at: number }> {
    const prefix = this.prefix + kind
    let token: string | undefined
    do {
      let page
      try {
        page = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token, MaxKeys: 1000 }))
      } catch (err) {
        throw backendError('listing blobs', err)
      }
      for (const o of page.Contents ?? []) {
        const id = o.Key!.slice(prefix.length)
        if (ID_PATTERN.test(id)) yield { id, at: o.LastModified?.getTime() ?? 0 }
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined
    } while (token)
  }

  async *list(): AsyncGenerator<BlobEntry> {
    const removed = new Set<BlobId>()
    for await (const t of this.listKeys('deleted/')) removed.add(t.id)
    const staged = new Map<BlobId, number>()
    for await (const m of this.listKeys('staging/')) staged.set(m.id, m.at)
    for await (const b of this.listKeys('blobs/')) {
      if (removed.has(b.id)) continue
      const markedAt = staged.get(b.id)
      if (markedAt !== undefined) {
        staged.delete(b.id)
        yield { id: b.id, state: 'staged', createdAt: markedAt }
      } else {
        yield { id: b.id, state: 'stored', createdAt: b.at }
      }
    }
    // Markers without a blob: an upload still under way, or one whose gateway died.
    for (const [id, at] of staged) yield { id, state: 'staged', createdAt: at }
  }

  async close(): Promise<void> {
    for (const t of this.timers) clearInterval(t)
    await this.settled()
    await this.renewal?.catch(() => undefined)
    await this.purging
    this.client.destroy()
  }
}
