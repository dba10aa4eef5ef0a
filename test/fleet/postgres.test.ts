/**
 * What only the PostgreSQL store has (the contract suite covers the rest): migrations run by
 * gateways that start at once, an older schema brought up to date (its objects' key versions
 * read from their manifests), a schema newer than this s3-sse refused, and a database that
 * cannot be reached is S3SSE_META_UNAVAILABLE (→ 503), never a hang or a crash.
 */
import { expect, it } from 'vitest'
import pg from 'pg'
import { openEmbeddedKms } from '../../src/keys/index.js'
import { sealObject } from '../../src/object/index.js'
import { objectRow } from '../../src/server/commit.js'
import { PG_SCHEMA_VERSION, PostgresMetaStore } from '../../src/server/meta/postgres/index.js'
import { migrate } from '../../src/server/meta/postgres/schema.js'
import { removeDir, tempDir } from '../server/helpers.js'
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

  it('a schema-1 database (before key versions, jobs and tags) gets its objects\' key versions from their manifests and its uploads\' from their state', async () => {
    const db = await freshDatabase('schema1')
    const dir = tempDir('s3sse-pg-schema1-')
    try {
      const kms = await openEmbeddedKms(dir, { create: true })
      const k = await kms.createKey({ alias: 'old-objects' })
      await kms.rotateKey(k.keyId)
      const sealed = await sealObject((async function* () { yield Buffer.from('hello') })(), { context: { bucket: 'b', key: 'enc' }, encryption: { algorithm: 'aws:kms', kms, keyId: k.keyId } })
      for await (const _ of sealed.stream) void _
      const enc = objectRow({ bucket: 'b', key: 'enc', manifest: sealed.result(), blobs: ['f'], etag: 'e', headers: {}, meta: {} })
      await kms.close()
      // The database as the previous release left it.
      const c = new pg.Client({ connectionString: db.url })
      await c.connect()
      await migrate(c, 1)
      await c.query("INSERT INTO buckets VALUES ('b', 'root', 'us-east-1', 0, '{}')")
      const obj = `INSERT INTO objects (bucket, key, size, etag, last_modified, headers, meta, parts_count, manifest, blobs, encryption) VALUES ('b', $1, 5, 'e', 1, '{}', '{}', 1, $2, '["f"]', $3)`
      await c.query(obj, [Buffer.from('enc'), Buffer.from(enc.manifest), JSON.stringify(enc.encryption)])
      await c.query(obj, [Buffer.from('plain'), Buffer.from([1, 2, 3]), null])
      await c.query(obj, [Buffer.from('broken'), Buffer.from([1, 2, 3]), '{"algorithm":"aws:kms","keyId":"x"}'])
      await c.query(`INSERT INTO uploads (upload_id, bucket, key, initiated, owner, state, headers, meta, encryption)
        VALUES ('u', 'b', $1, 0, 'root', '{"version":1,"encryption":{"keyId":"k9","keyVersion":4}}', '{}', '{}', '{"algorithm":"aws:kms","keyId":"k9"}')`, [Buffer.from('big')])
      await c.end()
      const s = await PostgresMetaStore.open(db.url)
      expect((await s.pool.query('SELECT version FROM s3sse_schema')).rows[0].version).toBe(PG_SCHEMA_VERSION)
      expect((await s.getObject('b', 'enc'))?.kmsKey).toEqual({ keyId: k.keyId, version: 2 })
      expect((await s.getObject('b', 'plain'))?.kmsKey).toBeUndefined()
      // A manifest that does not decode is left for scrub to report; the store still opens.
      expect((await s.getObject('b', 'broken'))?.kmsKey).toBeUndefined()
      expect((await s.getUpload('u'))?.kmsKey).toEqual({ keyId: 'k9', version: 4 })
      expect(await s.keyUsage()).toEqual([
        { keyId: k.keyId, version: 2, objects: 1, bytes: 5, uploads: 0 },
        { keyId: 'k9', version: 4, objects: 0, bytes: 0, uploads: 1 },
      ])
      expect(await s.listJobs()).toEqual([])
      // Schema 3: the objects of before take tags.
      expect(await s.setObjectTags('b', 'plain', [{ key: 'k', value: 'v' }])).toBe(true)
      expect((await s.getObject('b', 'plain'))?.tags).toEqual([{ key: 'k', value: 'v' }])
      await s.close()
    } finally {
      removeDir(dir)
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
