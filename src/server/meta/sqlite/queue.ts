/**
 * The replication queue of the SQLite MetaStore: one row per source key (its latest write),
 * written in the same transaction as the object row (./index.ts, commitObject).
 *
 * A claim is a lease: claiming moves the item's next_attempt to the end of the lease, so no
 * other worker takes it before then, and the claim token is that time. finish, retry and drop
 * act only on the row whose id and next_attempt still match the claim: a newer write of the key
 * (a new id) or a worker that took the item over after the lease ran out (a new next_attempt)
 * makes an old claim void. Unclaimed items (claim null) match on id alone.
 */
import { randomBytes } from 'node:crypto'
import type Database from 'better-sqlite3'
import type { ClaimOptions, ReplicationItem, ReplicationTarget } from '../index.js'
import { itemFromRaw, type RawReplicationItem } from './rows.js'

export class SqliteQueue {
  private readonly stmts

  constructor(private readonly db: Database.Database) {
    this.stmts = {
      queue: db.prepare(
        `INSERT OR REPLACE INTO replication_queue (bucket, key, id, destination, destination_owner, rule_id, enqueued_at, attempts, next_attempt, last_error)
         VALUES (@bucket, @key, @id, @destination, @destinationOwner, @ruleId, @enqueuedAt, 0, @enqueuedAt, NULL)`,
      ),
      unqueueKey: db.prepare('DELETE FROM replication_queue WHERE bucket = ? AND key = ?'),
      unqueueItem: db.prepare('DELETE FROM replication_queue WHERE bucket = @bucket AND key = @key AND id = @id AND (@claim IS NULL OR next_attempt = @claim)'),
      setStatus: db.prepare(`UPDATE objects SET replication = ? WHERE bucket = ? AND key = ? AND json_extract(replication, '$.id') = ?`),
      due: db.prepare('SELECT * FROM replication_queue WHERE next_attempt <= ? ORDER BY next_attempt, enqueued_at LIMIT ?'),
      lease: db.prepare('UPDATE replication_queue SET next_attempt = ? WHERE bucket = ? AND key = ? AND id = ?'),
      next: db.prepare('SELECT MIN(next_attempt) AS at FROM replication_queue'),
      count: db.prepare('SELECT COUNT(*) AS n FROM replication_queue'),
      retry: db.prepare(
        `UPDATE replication_queue SET attempts = @attempts, next_attempt = @nextAttempt, last_error = @error
         WHERE bucket = @bucket AND key = @key AND id = @id AND (@claim IS NULL OR next_attempt = @claim)`,
      ),
      resume: db.prepare('UPDATE replication_queue SET next_attempt = ? WHERE next_attempt > ?'),
    }
  }

  /** Queues the write `id` of a key (inside the caller's transaction), replacing an older one. */
  enqueue(bucket: string, key: string, target: ReplicationTarget): string {
    const id = randomBytes(12).toString('base64url')
    this.stmts.queue.run({ bucket, key, id, destination: target.destination, destinationOwner: target.destinationOwner, ruleId: target.ruleId, enqueuedAt: Date.now() })
    return id
  }

  unqueueKey(bucket: string, key: string): void {
    this.stmts.unqueueKey.run(bucket, key)
  }

  due(now: number, limit: number): ReplicationItem[] {
    return (this.stmts.due.all(now, limit) as RawReplicationItem[]).map((r) => itemFromRaw(r))
  }

  claim(opts: ClaimOptions): ReplicationItem[] {
    return this.db.transaction(() => {
      const until = opts.now + Math.max(1, opts.leaseMs)
      return (this.stmts.due.all(opts.now, opts.limit) as RawReplicationItem[]).map((r) => {
        this.stmts.lease.run(until, r.bucket, r.key, r.id)
        return itemFromRaw({ ...r, next_attempt: until }, String(until))
      })
    })()
  }

  nextAt(): number | null {
    return (this.stmts.next.get() as { at: number | null }).at
  }

  count(): number {
    return (this.stmts.count.get() as { n: number }).n
  }

  finish(item: ReplicationItem, status: 'COMPLETED' | 'FAILED'): boolean {
    return this.db.transaction(() => {
      const unqueued = this.stmts.unqueueItem.run(itemKey(item)).changes > 0
      if (unqueued || item.claim === null) this.stmts.setStatus.run(JSON.stringify({ status, id: item.id }), item.bucket, item.key, item.id)
      return unqueued
    })()
  }

  drop(item: ReplicationItem): void {
    this.stmts.unqueueItem.run(itemKey(item))
  }

  retry(item: ReplicationItem, attempts: number, nextAttempt: number, error: string): void {
    this.stmts.retry.run({ ...itemKey(item), attempts, nextAttempt, error })
  }

  resume(now: number): number {
    return this.stmts.resume.run(now, now).changes
  }
}

function itemKey(item: ReplicationItem) {
  return { bucket: item.bucket, key: item.key, id: item.id, claim: item.claim === null ? null : Number(item.claim) }
}
