import { createHash } from 'node:crypto'
import { S3sseError } from '../errors.js'
import { canonicalContext, type EncryptionContext } from './context.js'
import { KMS_METHODS, type BucketKeySource, type DataKey, type KeyInfo, type Kms, type KmsMethod } from './kms.js'

export interface KeyCacheOptions {
  /** Unwrapped data keys kept at most (least recently used go first). Default 1024. */
  maxEntries?: number
  /** How long an unwrapped data key is served from memory. Default 5 minutes. */
  ttlMs?: number
  /** How long one bucket key serves new objects before the next is fetched. Default 5 minutes. */
  bucketKeyTtlMs?: number
  /** Objects one bucket key may serve before the next is fetched. Default unlimited. */
  bucketKeyMaxUses?: number
  /** Clock, for tests. */
  now?: () => number
}

interface Entry {
  key: Uint8Array
  expires: number
}

/**
 * A bounded LRU of plaintext keys with a time to live. Entries are zeroed when they leave;
 * callers always get copies, so wiping theirs never touches the cache.
 */
export class KeyLru {
  private readonly map = new Map<string, Entry>()

  constructor(private readonly maxEntries: number, private readonly ttlMs: number, private readonly now: () => number) {}

  get(id: string): Uint8Array | undefined {
    const e = this.map.get(id)
    if (!e) return undefined
    this.map.delete(id)
    if (e.expires <= this.now()) {
      e.key.fill(0)
      return undefined
    }
    this.map.set(id, e)
    return new Uint8Array(e.key)
  }

  set(id: string, key: Uint8Array): void {
    if (this.maxEntries <= 0 || this.ttlMs <= 0) return
    const old = this.map.get(id)
    if (old) {
      old.key.fill(0)
      this.map.delete(id)
    }
    this.map.set(id, { key: new Uint8Array(key), expires: this.now() + this.ttlMs })
    while (this.map.size > this.maxEntries) {
      const [first, e] = this.map.entries().next().value as [string, Entry]
      e.key.fill(0)
      this.map.delete(first)
    }
  }

  get size(): number {
    return this.map.size
  }

  clear(): void {
    for (const e of this.map.values()) e.key.fill(0)
    this.map.clear()
  }
}

function blobId(wrapped: Uint8Array, context: EncryptionContext): string {
  return createHash('sha256').update(wrapped).update(canonicalContext(context)).digest('hex')
}

interface BucketKeyEntry {
  dataKey: DataKey
  expires: number
  uses: number
}

/**
 * A KMS in front of another one (the data path only: an admin surface stays on the inner KMS)
 * that remembers unwrapped data keys (bounded, with a TTL) and
 * hands out bucket keys. Put it in front of the real KMS once per process:
 * `cachedKms(await openEmbeddedKms(dir))`.
 *
 * - decrypt of a blob seen recently (or just generated) under the same context is answered
 *   from memory; so are the repeated decrypts of a multipart upload's key, one per part.
 * - bucketKey(keyId, context) returns the same data key for every object of a bucket until it
 *   is `bucketKeyTtlMs` old (or has served `bucketKeyMaxUses` objects); concurrent first
 *   requests share one KMS call.
 *
 * The trade-off, as with S3 Bucket Keys: disabling a key in the KMS takes effect on cached
 * keys only when they expire.
 */
export class CachedKms implements Kms, BucketKeySource {
  readonly stats = { hits: 0, misses: 0, bucketKeyHits: 0, bucketKeyMisses: 0 }
  private readonly keys: KeyLru
  private readonly bucketKeys = new Map<string, BucketKeyEntry>()
  private readonly pendingBucketKeys = new Map<string, Promise<DataKey>>()
  private readonly bucketKeyTtlMs: number
  private readonly bucketKeyMaxUses: number
  private readonly now: () => number

  constructor(readonly inner: Kms, opts: KeyCacheOptions = {}) {
    checkCacheOptions(opts)
    this.now = opts.now ?? Date.now
    this.keys = new KeyLru(opts.maxEntries ?? 1024, opts.ttlMs ?? 300_000, this.now)
    this.bucketKeyTtlMs = opts.bucketKeyTtlMs ?? 300_000
    this.bucketKeyMaxUses = opts.bucketKeyMaxUses ?? Number.POSITIVE_INFINITY
  }

  describeKey(keyIdOrAlias: string): Promise<KeyInfo> { return this.inner.describeKey(keyIdOrAlias) }
  ensureKey(alias: string): Promise<KeyInfo> { return this.inner.ensureKey(alias) }
  encrypt(keyIdOrAlias: string, plaintext: Uint8Array, context: EncryptionContext) { return this.inner.encrypt(keyIdOrAlias, plaintext, context) }
  reEncrypt(wrapped: Uint8Array, context: EncryptionContext, newContext: EncryptionContext, newKeyId?: string) {
    return this.inner.reEncrypt(wrapped, context, newContext, newKeyId)
  }

  async generateDataKey(keyIdOrAlias: string, context: EncryptionContext): Promise<DataKey> {
    const dk = await this.inner.generateDataKey(keyIdOrAlias, context)
    this.keys.set(blobId(dk.wrapped, context), dk.plaintext)
    return dk
  }

  async decrypt(wrapped: Uint8Array, context: EncryptionContext): Promise<Uint8Array> {
    const id = blobId(wrapped, context)
    const hit = this.keys.get(id)
    if (hit) {
      this.stats.hits++
      return hit
    }
    this.stats.misses++
    const key = await this.inner.decrypt(wrapped, context)
    this.keys.set(id, key)
    return key
  }

  async bucketKey(keyIdOrAlias: string, context: EncryptionContext): Promise<DataKey> {
    const id = `${keyIdOrAlias}\0${Buffer.from(canonicalContext(context)).toString('hex')}`
    const e = this.bucketKeys.get(id)
    if (e && e.expires > this.now() && e.uses < this.bucketKeyMaxUses) {
      e.uses++
      this.stats.bucketKeyHits++
      return copyKey(e.dataKey)
    }
    if (e) {
      e.dataKey.plaintext.fill(0)
      this.bucketKeys.delete(id)
    }
    let pending = this.pendingBucketKeys.get(id)
    if (!pending) {
      this.stats.bucketKeyMisses++
      pending = this.generateDataKey(keyIdOrAlias, context).then((dk) => {
        const stored = copyKey(dk)
        dk.plaintext.fill(0)
        this.bucketKeys.set(id, { dataKey: stored, expires: this.now() + this.bucketKeyTtlMs, uses: 0 })
        return stored
      }).finally(() => this.pendingBucketKeys.delete(id))
      this.pendingBucketKeys.set(id, pending)
    } else {
      this.stats.bucketKeyHits++
    }
    const dk = await pending
    const entry = this.bucketKeys.get(id)
    if (entry) entry.uses++
    return copyKey(dk)
  }

  /** Zeroes and forgets every cached key. */
  clear(): void {
    this.keys.clear()
    for (const e of this.bucketKeys.values()) e.dataKey.plaintext.fill(0)
    this.bucketKeys.clear()
  }
}

function copyKey(dk: DataKey): DataKey {
  return { ...dk, plaintext: new Uint8Array(dk.plaintext) }
}

export function cachedKms(inner: Kms, opts?: KeyCacheOptions): CachedKms {
  return new CachedKms(inner, opts)
}

/**
 * Counts the data-path calls that reach a KMS, per method: the benchmark and the tests put it between a
 * cache and the real KMS to show how many calls a workload costs.
 */
export class CountingKms implements Kms {
  readonly counts: Record<KmsMethod, number> = Object.fromEntries(KMS_METHODS.map((m) => [m, 0])) as Record<KmsMethod, number>

  constructor(readonly inner: Kms) {}

  get total(): number {
    return Object.values(this.counts).reduce((a, b) => a + b, 0)
  }

  reset(): void {
    for (const m of KMS_METHODS) this.counts[m] = 0
  }

  describeKey(keyIdOrAlias: string) { this.counts.describeKey++; return this.inner.describeKey(keyIdOrAlias) }
  generateDataKey(keyIdOrAlias: string, context: EncryptionContext) { this.counts.generateDataKey++; return this.inner.generateDataKey(keyIdOrAlias, context) }
  decrypt(wrapped: Uint8Array, context: EncryptionContext) { this.counts.decrypt++; return this.inner.decrypt(wrapped, context) }
  encrypt(keyIdOrAlias: string, plaintext: Uint8Array, context: EncryptionContext) { this.counts.encrypt++; return this.inner.encrypt(keyIdOrAlias, plaintext, context) }
  reEncrypt(wrapped: Uint8Array, context: EncryptionContext, newContext: EncryptionContext, newKeyId?: string) {
    this.counts.reEncrypt++
    return this.inner.reEncrypt(wrapped, context, newContext, newKeyId)
  }
  ensureKey(alias: string) { this.counts.ensureKey++; return this.inner.ensureKey(alias) }
}

export function countingKms(inner: Kms): CountingKms {
  return new CountingKms(inner)
}

function checkCacheOptions(o: KeyCacheOptions): void {
  for (const [k, v] of Object.entries(o)) {
    if (k !== 'now' && (typeof v !== 'number' || Number.isNaN(v) || v < 0)) {
      throw new S3sseError('S3SSE_BAD_ARGUMENT', `cache option ${k} must be a non-negative number`)
    }
  }
}
