/**
 * Web console sessions and the brake on failed logins. On one machine both live in the
 * server's memory only: a restart signs everybody out, and nothing about a session is ever
 * written to disk. In a fleet the MetaStore keeps the sessions (SharedSessions below), so a
 * session opened on one gateway works on every other behind the load balancer; the login brake
 * stays per gateway.
 *
 * A session token is 256 random bits, handed to the browser once in an HttpOnly cookie; the
 * server keeps only its SHA-256, so the table it holds cannot be replayed as cookies.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import type { User } from '../credentials.js'
import type { SessionTable } from '../meta/index.js'

export interface Session {
  userName: string
  accessKey: string
  /** SHA-256 of the secret key the session was opened with: a changed secret ends it. */
  secretDigest: Buffer
  createdAt: number
  lastSeen: number
}

export interface SessionOptions {
  /** Idle time after which a session ends (ms). */
  idleMs?: number
  /** Longest life of a session however busy (ms). */
  maxAgeMs?: number
  /** Sessions kept at most; the least recently used goes first. */
  maxSessions?: number
  now?: () => number
}

export const DEFAULT_IDLE_MS = 30 * 60_000
export const DEFAULT_MAX_AGE_MS = 12 * 3600_000

/** base64url of 32 random bytes. */
const TOKEN_PATTERN = /^[A-Za-z0-9_-]{43}$/

export function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest()
}

/** Compares two secrets in time that does not depend on where they differ (or on their lengths). */
export function sameSecret(a: string, b: string): boolean {
  return timingSafeEqual(digest(a), digest(b))
}

export class SessionStore {
  /** SHA-256(token) → session, in least-recently-used order (a Map keeps insertion order). */
  private readonly sessions = new Map<string, Session>()
  private readonly idleMs: number
  private readonly maxAgeMs: number
  private readonly maxSessions: number
  private readonly now: () => number

  constructor(opts: SessionOptions = {}) {
    this.idleMs = opts.idleMs ?? DEFAULT_IDLE_MS
    this.maxAgeMs = opts.maxAgeMs ?? DEFAULT_MAX_AGE_MS
    this.maxSessions = opts.maxSessions ?? 10_000
    this.now = opts.now ?? Date.now
  }

  get size(): number {
    return this.sessions.size
  }

  /** Opens a session for `user`; returns the token for the cookie (the only copy). */
  create(user: User): string {
    this.sweep()
    while (this.sessions.size >= this.maxSessions) this.sessions.delete(this.sessions.keys().next().value!)
    const token = randomBytes(32).toString('base64url')
    const now = this.now()
    this.sessions.set(tokenId(token), {
      userName: user.name,
      accessKey: user.accessKey,
      secretDigest: digest(user.secretKey),
      createdAt: now,
      lastSeen: now,
    })
    return token
  }

  /** The live session of a token, its idle clock restarted; undefined when unknown or expired. */
  touch(token: string | undefined): Session | undefined {
    if (token === undefined || !TOKEN_PATTERN.test(token)) return undefined
    const id = tokenId(token)
    const s = this.sessions.get(id)
    if (!s) return undefined
    const now = this.now()
    if (this.expired(s, now)) {
      this.sessions.delete(id)
      return undefined
    }
    s.lastSeen = now
    this.sessions.delete(id)
    this.sessions.set(id, s)
    return s
  }

  /** Ends a session (logout); unknown tokens are ignored. */
  end(token: string | undefined): void {
    if (token !== undefined && TOKEN_PATTERN.test(token)) this.sessions.delete(tokenId(token))
  }

  /** Whether the session still belongs to this user with the secret it was opened with. */
  static matches(s: Session, user: User | undefined): user is User {
    return user !== undefined && user.name === s.userName && timingSafeEqual(digest(user.secretKey), s.secretDigest)
  }

  private expired(s: Session, now: number): boolean {
    return now - s.lastSeen >= this.idleMs || now - s.createdAt >= this.maxAgeMs
  }

  /** Drops expired sessions; the oldest-used come first, so the walk stops at the first live one. */
  private sweep(): void {
    const now = this.now()
    for (const [id, s] of this.sessions) {
      if (now - s.lastSeen < this.idleMs && now - s.createdAt < this.maxAgeMs) {
        // Idle-sorted: every later session was used more recently; max age is checked on use.
        break
      }
      this.sessions.delete(id)
    }
  }
}

/** What the console needs of a session store: the memory one (SessionStore) or the shared one. */
export interface Sessions {
  create(user: User): string | Promise<string>
  touch(token: string | undefined): Session | undefined | Promise<Session | undefined>
  end(token: string | undefined): void | Promise<void>
}

/**
 * Sessions in a table every gateway shares (MetaStore.sessions), with the same rules as
 * SessionStore: idle expiry, a longest life, only the token's SHA-256 stored. lastSeen is
 * written at most every `touchEveryMs` (default 10 s), so a busy console costs few writes;
 * idle expiry is exact to that much.
 */
export class SharedSessions implements Sessions {
  private readonly idleMs: number
  private readonly maxAgeMs: number
  private readonly now: () => number
  private readonly touchEveryMs: number
  private lastCleanup = 0

  constructor(private readonly table: SessionTable, opts: SessionOptions & { touchEveryMs?: number } = {}) {
    this.idleMs = opts.idleMs ?? DEFAULT_IDLE_MS
    this.maxAgeMs = opts.maxAgeMs ?? DEFAULT_MAX_AGE_MS
    this.now = opts.now ?? Date.now
    this.touchEveryMs = opts.touchEveryMs ?? 10_000
  }

  async create(user: User): Promise<string> {
    const now = this.now()
    if (now - this.lastCleanup > 60_000) {
      this.lastCleanup = now
      await this.table.deleteExpired(now - this.idleMs, now - this.maxAgeMs)
    }
    const token = randomBytes(32).toString('base64url')
    await this.table.insert({ id: tokenId(token), userName: user.name, accessKey: user.accessKey, secretDigest: digest(user.secretKey), createdAt: now, lastSeen: now })
    return token
  }

  async touch(token: string | undefined): Promise<Session | undefined> {
    if (token === undefined || !TOKEN_PATTERN.test(token)) return undefined
    const id = tokenId(token)
    const row = await this.table.get(id)
    if (!row) return undefined
    const now = this.now()
    if (now - row.lastSeen >= this.idleMs || now - row.createdAt >= this.maxAgeMs) {
      await this.table.delete(id)
      return undefined
    }
    if (now - row.lastSeen >= this.touchEveryMs) await this.table.touch(id, now)
    return { userName: row.userName, accessKey: row.accessKey, secretDigest: Buffer.from(row.secretDigest), createdAt: row.createdAt, lastSeen: now }
  }

  async end(token: string | undefined): Promise<void> {
    if (token !== undefined && TOKEN_PATTERN.test(token)) await this.table.delete(tokenId(token))
  }
}

function tokenId(token: string): string {
  return createHash('sha256').update(token).digest('base64url')
}

export interface ThrottleOptions {
  /** Failures from one address within `windowMs` before logins from it are refused. */
  maxFailures?: number
  windowMs?: number
  now?: () => number
}

/**
 * Counts failed logins per client address. Past `maxFailures` within the window, logins
 * from that address are refused until the oldest failure leaves the window. Every failed
 * attempt is also answered after a short delay (the caller's), so guessing is slow anyway.
 */
export class LoginThrottle {
  private readonly failures = new Map<string, number[]>()
  private readonly maxFailures: number
  private readonly windowMs: number
  private readonly now: () => number

  constructor(opts: ThrottleOptions = {}) {
    this.maxFailures = opts.maxFailures ?? 10
    this.windowMs = opts.windowMs ?? 10 * 60_000
    this.now = opts.now ?? Date.now
  }

  /** Seconds until `addr` may try again; 0 when it may now. */
  retryAfter(addr: string): number {
    const recent = this.recent(addr)
    if (recent.length < this.maxFailures) return 0
    return Math.max(1, Math.ceil((recent[recent.length - this.maxFailures] + this.windowMs - this.now()) / 1000))
  }

  fail(addr: string): void {
    const recent = this.recent(addr)
    recent.push(this.now())
    this.failures.delete(addr)
    this.failures.set(addr, recent.slice(-this.maxFailures))
    // Bounded memory whatever the number of addresses: forget the longest-quiet ones.
    while (this.failures.size > 10_000) this.failures.delete(this.failures.keys().next().value!)
  }

  succeed(addr: string): void {
    this.failures.delete(addr)
  }

  private recent(addr: string): number[] {
    const since = this.now() - this.windowMs
    return (this.failures.get(addr) ?? []).filter((t) => t > since)
  }
}
