/**
 * What only the PostgreSQL store has (the contract suite covers the rest): migrations run by
 * gateways that start at once, a schema newer than this s3-sse refused, and a database that
 * cannot be reached is S3SSE_META_UNAVAILABLE (→ 503), never a hang or a crash.
 */
import { expect, it } from 'vitest'
import pg from 'pg'
import { PG_SCHEMA_VERSION, PostgresMetaStore } from '../../src/server/meta/postgres/index.js'
import { describeWithServices, freshDatabase } from '../helpers/services.js'

describeWithServices('PostgreSQL MetaStore', ['postgres'], () => {
  it('eight gateways starting at once on an empty database migrate it once', async () => {
    const db = await freshDatabase('migrate')
    try {
      const stores = await Promise.all(Array.from({ length: 8 }, () => PostgresMetaStore.open(db.url, { poolSize: 2 })))
      const [{ version }] = (await stores[0].pool.query('SELECT version FROM s3sse_schema')).rows
      expect(version).toBe(PG_SCHEMA_VERSION)
      expect((await stores[0].pool.query('SELECT COUNT(*)::int AS n FROM s3sse_schema')).rows[0].n).toBe(1)
      expect(await stores[3].createBucket({ name: 'b', owner: 'root', region: 'us-east-1', createdAt: 1, settings: {} })).toBe(true)
      expect(await stores[5].getBucket('b')).toBeDefined()
      for (const s of stores) await s.close()
    } finally {
      await db.drop()
    }
  })

  it('refuses a database whose schema is newer than this s3-sse', async () => {
    const db = await freshDatabase('newer')
    try {
      const s = await PostgresMetaStore.open(db.url)
      await s.pool.query('UPDATE s3sse_schema SET version = $1', [PG_SCHEMA_VERSION + 1])
      await s.close()
      await expect(PostgresMetaStore.open(db.url)).rejects.toMatchObject({ code: 'S3SSE_META_UNAVAILABLE', message: expect.stringContaining(`schema version ${PG_SCHEMA_VERSION + 1}`) })
    } finally {
      await db.drop()
    }
  })

  it('a database that is gone: S3SSE_META_UNAVAILABLE at open and on every call, without leaking the password', async () => {
    const db = await freshDatabase('gone')
    const s = await PostgresMetaStore.open(db.url, { connectTimeoutMs: 2000 })
    await db.drop() // terminates its connections
    const err = await s.getBucket('b').catch((e) => e)
    expect(err).toMatchObject({ code: 'S3SSE_META_UNAVAILABLE' })
    await expect(s.commitObject({ bucket: 'b', key: 'k', size: 0, etag: '"e"', lastModified: 0, headers: {}, meta: {}, partsCount: 1, manifest: new Uint8Array(1), blobs: [] })).rejects.toMatchObject({ code: 'S3SSE_META_UNAVAILABLE' })
    await s.close()
    const url = new URL(db.url)
    url.port = '1'
    const refused = await PostgresMetaStore.open(url.toString(), { connectTimeoutMs: 2000 }).catch((e) => e)
    expect(refused).toMatchObject({ code: 'S3SSE_META_UNAVAILABLE' })
    expect(String(refused.message)).not.toContain(decodeURIComponent(url.password))
  })

  it('keys are bytes: a NUL and every plane of Unicode survive, in S3 order, in the table an operator reads', async () => {
    const db = await freshDatabase('bytes')
    try {
      const s = await PostgresMetaStore.open(db.url)
      await s.createBucket({ name: 'b', owner: 'root', region: 'us-east-1', createdAt: 1, settings: {} })
      const keys = ['a\u0000b', '\u{1F5DD}', '\uFFFD']
      for (const k of keys) await s.commitObject({ bucket: 'b', key: k, size: 0, etag: '"e"', lastModified: 0, headers: {}, meta: {}, partsCount: 1, manifest: new Uint8Array(1), blobs: [] })
      const c = new pg.Client({ connectionString: db.url })
      await c.connect()
      const raw = (await c.query("SELECT encode(key, 'hex') AS k FROM objects ORDER BY key")).rows.map((r) => r.k)
      await c.end()
      expect(raw).toEqual(['610062', 'efbfbd', 'f09f979d'])
      await s.close()
    } finally {
      await db.drop()
    }
  })
})
