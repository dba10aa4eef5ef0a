/**
 * Console sessions and the failed-login brake, on a clock the test moves (the only thing
 * not real here: waiting half an hour for an idle expiry).
 */
import { describe, expect, it } from 'vitest'
import type { User } from '../../src/server/credentials.js'
import { LoginThrottle, SessionStore, sameSecret } from '../../src/server/console/sessions.js'

const alice: User = { id: 'u-alice', name: 'alice', accessKey: 'ALICEKEY0001', secretKey: 'alice-secret-0001', createdAt: '2026-01-01T00:00:00Z' }

function clock(start = 1_000_000) {
  const c = { t: start, now: () => c.t }
  return c
}

describe('SessionStore', () => {
  it('hands out 256-bit base64url tokens, each once, and finds the session by its token', () => {
    const s = new SessionStore()
    const tokens = new Set(Array.from({ length: 50 }, () => s.create(alice)))
    expect(tokens.size).toBe(50)
    for (const t of tokens) expect(t).toMatch(/^[A-Za-z0-9_-]{43}$/)
    const [first] = tokens
    expect(Buffer.from(first, 'base64url')).toHaveLength(32)
    expect(s.touch(first)).toMatchObject({ userName: 'alice', accessKey: 'ALICEKEY0001' })
    // Nothing but the token opens it: not a prefix, not a changed letter, not garbage.
    expect(s.touch(first.slice(0, 42))).toBeUndefined()
    expect(s.touch((first[0] === 'A' ? 'B' : 'A') + first.slice(1))).toBeUndefined()
    expect(s.touch(undefined)).toBeUndefined()
    expect(s.touch('../../etc/passwd')).toBeUndefined()
  })

  it('keeps no token in memory, only its hash', () => {
    const s = new SessionStore()
    const token = s.create(alice)
    const held = JSON.stringify([...(s as unknown as { sessions: Map<string, unknown> }).sessions])
    expect(held).not.toContain(token)
    expect(held).not.toContain(alice.secretKey)
  })

  it('ends a session after the idle time, and each use restarts the idle clock', () => {
    const c = clock()
    const s = new SessionStore({ idleMs: 1000, maxAgeMs: 10_000, now: c.now })
    const token = s.create(alice)
    c.t += 900
    expect(s.touch(token)).toBeDefined()
    c.t += 900
    expect(s.touch(token)).toBeDefined()
    c.t += 1000
    expect(s.touch(token)).toBeUndefined()
    // Gone for good, even if the clock were to go back.
    c.t -= 1000
    expect(s.touch(token)).toBeUndefined()
  })

  it('ends a busy session at its maximum age', () => {
    const c = clock()
    const s = new SessionStore({ idleMs: 1000, maxAgeMs: 2500, now: c.now })
    const token = s.create(alice)
    for (let i = 0; i < 4; i++) {
      c.t += 600
      expect(s.touch(token)).toBeDefined()
    }
    c.t += 600
    expect(s.touch(token)).toBeUndefined()
  })

  it('logout ends the session; expired sessions are swept when new ones open', () => {
    const c = clock()
    const s = new SessionStore({ idleMs: 1000, now: c.now })
    const a = s.create(alice)
    s.end(a)
    expect(s.touch(a)).toBeUndefined()
    s.create(alice)
    s.create(alice)
    c.t += 5000
    s.create(alice)
    expect(s.size).toBe(1)
  })

  it('holds at most maxSessions, dropping the least recently used', () => {
    const s = new SessionStore({ maxSessions: 3 })
    const [a, b, c] = [s.create(alice), s.create(alice), s.create(alice)]
    s.touch(a)
    const d = s.create(alice)
    expect(s.size).toBe(3)
    expect(s.touch(b)).toBeUndefined()
    for (const t of [a, c, d]) expect(s.touch(t)).toBeDefined()
  })

  it('a session belongs to its user with the secret it was opened with', () => {
    const s = new SessionStore()
    const session = s.touch(s.create(alice))!
    expect(SessionStore.matches(session, alice)).toBe(true)
    expect(SessionStore.matches(session, { ...alice, secretKey: 'rotated-secret-0002' })).toBe(false)
    expect(SessionStore.matches(session, { ...alice, name: 'mallory' })).toBe(false)
    expect(SessionStore.matches(session, undefined)).toBe(false)
  })

  it('compares secrets of any lengths', () => {
    expect(sameSecret('abc', 'abc')).toBe(true)
    expect(sameSecret('abc', 'abd')).toBe(false)
    expect(sameSecret('abc', 'abcd')).toBe(false)
    expect(sameSecret('', 'x')).toBe(false)
  })
})

describe('LoginThrottle', () => {
  it('refuses an address after maxFailures within the window, until the oldest failure leaves it', () => {
    const c = clock()
    const t = new LoginThrottle({ maxFailures: 3, windowMs: 60_000, now: c.now })
    for (let i = 0; i < 3; i++) {
      expect(t.retryAfter('10.0.0.1')).toBe(0)
      t.fail('10.0.0.1')
      c.t += 10_000
    }
    // First failure at t0, now t0+30 s: it leaves the window at t0+60 s.
    expect(t.retryAfter('10.0.0.1')).toBe(30)
    expect(t.retryAfter('10.0.0.2')).toBe(0)
    c.t += 29_000
    expect(t.retryAfter('10.0.0.1')).toBe(1)
    c.t += 1_001
    expect(t.retryAfter('10.0.0.1')).toBe(0)
  })

  it('a successful login clears the count', () => {
    const t = new LoginThrottle({ maxFailures: 2 })
    t.fail('a')
    t.fail('a')
    expect(t.retryAfter('a')).toBeGreaterThan(0)
    t.succeed('a')
    expect(t.retryAfter('a')).toBe(0)
  })
})
