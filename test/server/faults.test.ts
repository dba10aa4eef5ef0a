/**
 * What a client hears when a real component fails, and that nothing stored is lost: the server
 * started in process with failing components injected through its seams (test/server/faults.ts
 * wraps the embedded KMS, file store and SQLite store), spoken to over HTTPS with the AWS SDK.
 *
 * - KMS unreachable → 503 ServiceUnavailable, nothing partial stored; plaintext buckets and
 *   HEAD keep working. A disabled key → 400 KMS.DisabledException (as Amazon S3 answers). A slow KMS → slow, correct answers.
 * - Disk full (ENOSPC) or failing (EIO) on write, a write that dies half-way, a failing
 *   rename, a database that refuses the commit → 503, the old object intact, no orphan data;
 *   deletes still work on a full disk. EIO on read → 503 before any byte is sent, or a broken
 *   transfer once the body is under way (never a short 200).
 */
import { randomBytes } from 'node:crypto'
import https from 'node:https'
import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutBucketEncryptionCommand,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3'
import { NodeHttpHandler } from '@smithy/node-http-handler'
import { openEmbeddedKms, type EmbeddedKms } from '../../src/keys/index.js'
import { serviceKeyAlias } from '../../src/s3/sse.js'
import { SqliteMetaStore } from '../../src/server/meta/sqlite/index.js'
import { startServer, type RunningServer } from '../../src/server/server.js'
import { FileBlobStore } from '../../src/server/store/files.js'
import { FaultyBlobStore, FaultyKms, faultyMeta } from './faults.js'
import { errorCode, errorStatus, rawRequest, removeDir, tempDir, type TestServer } from './helpers.js'

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true'

const KMS_RULE = { Rules: [{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms' as const } }] }

interface Harness {
  dataDir: string
  server: RunningServer
  s3: S3Client
  embedded: EmbeddedKms
  kms: FaultyKms
  blobs: FaultyBlobStore
  meta: ReturnType<typeof faultyMeta>
  logs: string[]
  stop(): Promise<void>
}

/** The server in process over the embedded components, each wrapped to fail on demand. */
async function start(dataDir: string): Promise<Harness> {
  const embedded = await openEmbeddedKms(dataDir, { create: true })
  const kms = new FaultyKms(embedded)
  const blobs = new FaultyBlobStore(await FileBlobStore.open(dataDir))
  const sqlite = new SqliteMetaStore(dataDir)
  const meta = faultyMeta(sqlite)
  const logs: string[] = []
  const server = await startServer({
    config: { dataDir, host: '127.0.0.1', httpsPort: 0, httpPort: null, region: 'us-east-1', mode: 'oss', domains: ['s3.localhost'] },
    kms,
    blobs,
    meta,
    log: { info: (m) => logs.push(m), error: (m) => logs.push(m) },
  })
  const { accessKey, secretKey } = server.rootCredentials.user
  const s3 = new S3Client({
    region: 'us-east-1',
    endpoint: server.httpsUrl,
    forcePathStyle: true,
    credentials: { accessKeyId: accessKey, secretAccessKey: secretKey },
    requestHandler: new NodeHttpHandler({ httpsAgent: new https.Agent({ ca: server.tls.cert, keepAlive: true }) }),
    maxAttempts: 1,
  })
  return {
    dataDir, server, s3, embedded, kms, blobs, meta, logs,
    async stop() {
      s3.destroy()
      await server.close()
      // The server closes only what it built: these were injected.
      await sqlite.close()
      await blobs.close()
      await embedded.close()
    },
  }
}

async function read(s3: S3Client, bucket: string, key: string): Promise<Buffer> {
  const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }))
  return Buffer.from(await got.Body!.transformToByteArray())
}

/** Every blob file (stored and staged) under the data dir. */
function blobFiles(dataDir: string): { stored: string[]; staged: string[] } {
  const stored: string[] = []
  for (const shard of readdirSync(join(dataDir, 'objects'))) for (const f of readdirSync(join(dataDir, 'objects', shard))) stored.push(f)
  return { stored: stored.sort(), staged: readdirSync(join(dataDir, 'tmp')) }
}

/** Nothing lost, nothing left over: every stored blob is one a row references, none is staged. */
async function expectNoOrphans(h: Harness): Promise<void> {
  const referenced = [...(await h.meta.referencedBlobs())].sort()
  expect(blobFiles(h.dataDir)).toEqual({ stored: referenced, staged: [] })
}

describe('faults injected through the seams', () => {
  let h: Harness
  const dirs: string[] = []
  const v1 = randomBytes(300_000)
  const plain1 = randomBytes(200_000)

  beforeAll(async () => {
    const dataDir = tempDir('s3sse-faults-')
    dirs.push(dataDir)
    h = await start(dataDir)
    await h.s3.send(new CreateBucketCommand({ Bucket: 'vault' }))
    await h.s3.send(new PutBucketEncryptionCommand({ Bucket: 'vault', ServerSideEncryptionConfiguration: KMS_RULE }))
    await h.s3.send(new CreateBucketCommand({ Bucket: 'open' }))
    await h.s3.send(new PutObjectCommand({ Bucket: 'vault', Key: 'doc', Body: v1 }))
    await h.s3.send(new PutObjectCommand({ Bucket: 'open', Key: 'doc', Body: plain1 }))
  })

  afterAll(async () => {
    await h?.stop()
    for (const d of dirs) removeDir(d)
  })

  it('KMS unreachable: an encrypted write is 503 ServiceUnavailable and stores nothing; plaintext and HEAD keep working', async () => {
    h.kms.fault = 'unavailable'
    try {
      const put = h.s3.send(new PutObjectCommand({ Bucket: 'vault', Key: 'doc', Body: randomBytes(100_000) }))
      expect(await errorCode(put)).toBe('ServiceUnavailable')
      expect(await errorStatus(h.s3.send(new PutObjectCommand({ Bucket: 'vault', Key: 'new', Body: 'x' })))).toBe(503)
      expect(await errorCode(h.s3.send(new HeadObjectCommand({ Bucket: 'vault', Key: 'new' })))).toBe('NotFound')
      expect((await h.s3.send(new HeadObjectCommand({ Bucket: 'vault', Key: 'doc' }))).ServerSideEncryption).toBe('aws:kms')
      await h.s3.send(new PutObjectCommand({ Bucket: 'open', Key: 'during-outage', Body: 'plain works' }))
      expect((await read(h.s3, 'open', 'during-outage')).toString()).toBe('plain works')
      expect(h.logs.join('\n')).toMatch(/S3SSE_KMS_UNAVAILABLE|KMS/)
    } finally {
      h.kms.fault = 'none'
    }
    expect((await read(h.s3, 'vault', 'doc')).equals(v1)).toBe(true)
    await expectNoOrphans(h)
  })

  it('a slow KMS makes encrypted writes slow, not wrong', async () => {
    h.kms.fault = 'slow'
    const before = h.kms.calls
    try {
      const body = randomBytes(70_000)
      await h.s3.send(new PutObjectCommand({ Bucket: 'vault', Key: 'slow', Body: body }))
      expect(h.kms.calls).toBeGreaterThan(before)
      expect((await read(h.s3, 'vault', 'slow')).equals(body)).toBe(true)
    } finally {
      h.kms.fault = 'none'
    }
  })

  it('a disabled key: writes under it are 400 KMS.DisabledException and store nothing', async () => {
    await h.embedded.disableKey(serviceKeyAlias('vault'))
    try {
      const put = h.s3.send(new PutObjectCommand({ Bucket: 'vault', Key: 'doc', Body: randomBytes(1000) }))
      expect(await errorCode(put)).toBe('KMS.DisabledException')
      expect(await errorStatus(h.s3.send(new PutObjectCommand({ Bucket: 'vault', Key: 'other', Body: 'x' })))).toBe(400)
    } finally {
      await h.embedded.enableKey(serviceKeyAlias('vault'))
    }
    expect((await read(h.s3, 'vault', 'doc')).equals(v1)).toBe(true)
    await expectNoOrphans(h)
  })

  it('disk full (ENOSPC) on write: 503, the old object intact, and deletes still work', async () => {
    await h.s3.send(new PutObjectCommand({ Bucket: 'open', Key: 'to-delete', Body: 'bye' }))
    h.blobs.faults = { stage: 'ENOSPC' }
    try {
      for (const bucket of ['vault', 'open']) {
        const put = h.s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'doc', Body: randomBytes(50_000) }))
        expect(await errorStatus(put)).toBe(503)
      }
      expect(await errorCode(h.s3.send(new PutObjectCommand({ Bucket: 'open', Key: 'x', Body: 'x' })))).toBe('ServiceUnavailable')
      await h.s3.send(new DeleteObjectCommand({ Bucket: 'open', Key: 'to-delete' }))
      expect(await errorCode(h.s3.send(new HeadObjectCommand({ Bucket: 'open', Key: 'to-delete' })))).toBe('NotFound')
      expect((await read(h.s3, 'vault', 'doc')).equals(v1)).toBe(true)
      expect((await read(h.s3, 'open', 'doc')).equals(plain1)).toBe(true)
    } finally {
      h.blobs.faults = {}
    }
    await expectNoOrphans(h)
  })

  it('a write that dies half-way (EIO after 100 KB of 400 KB): 503, no partial object, no leftover data', async () => {
    h.blobs.faults = { dieAfterBytes: 100_000 }
    try {
      for (const bucket of ['vault', 'open']) {
        const put = h.s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'doc', Body: randomBytes(400_000) }))
        expect(await errorCode(put)).toBe('ServiceUnavailable')
        const torn = h.s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'torn', Body: randomBytes(400_000) }))
        expect(await errorStatus(torn)).toBe(503)
        expect(await errorCode(h.s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'torn' })))).toBe('NotFound')
      }
    } finally {
      h.blobs.faults = {}
    }
    expect((await read(h.s3, 'vault', 'doc')).equals(v1)).toBe(true)
    expect((await read(h.s3, 'open', 'doc')).equals(plain1)).toBe(true)
    await expectNoOrphans(h)
  })

  it('EIO when publishing, and a database that refuses the commit: 503, the published data removed again', async () => {
    h.blobs.faults = { publish: 'EIO' }
    try {
      expect(await errorCode(h.s3.send(new PutObjectCommand({ Bucket: 'vault', Key: 'doc', Body: randomBytes(10_000) })))).toBe('ServiceUnavailable')
    } finally {
      h.blobs.faults = {}
    }
    h.meta.failCommits = true
    try {
      expect(await errorCode(h.s3.send(new PutObjectCommand({ Bucket: 'open', Key: 'doc', Body: randomBytes(10_000) })))).toBe('ServiceUnavailable')
      expect(await errorCode(h.s3.send(new PutObjectCommand({ Bucket: 'vault', Key: 'doc', Body: randomBytes(10_000) })))).toBe('ServiceUnavailable')
    } finally {
      h.meta.failCommits = false
    }
    expect((await read(h.s3, 'vault', 'doc')).equals(v1)).toBe(true)
    expect((await read(h.s3, 'open', 'doc')).equals(plain1)).toBe(true)
    await expectNoOrphans(h)
  })

  it('EIO when reading: 503 before any byte of the body; the object reads again once the disk recovers', async () => {
    h.blobs.faults = { open: 'EIO' }
    try {
      expect(await errorCode(h.s3.send(new GetObjectCommand({ Bucket: 'vault', Key: 'doc' })))).toBe('ServiceUnavailable')
      expect(await errorStatus(h.s3.send(new GetObjectCommand({ Bucket: 'open', Key: 'doc' })))).toBe(503)
      // HEAD needs the row only.
      expect((await h.s3.send(new HeadObjectCommand({ Bucket: 'open', Key: 'doc' }))).ContentLength).toBe(plain1.length)
    } finally {
      h.blobs.faults = {}
    }
    expect((await read(h.s3, 'vault', 'doc')).equals(v1)).toBe(true)
    const list = await h.s3.send(new ListObjectsV2Command({ Bucket: 'vault' }))
    expect(list.Contents?.map((c) => c.Key)).toEqual(['doc', 'slow'])
  })

  it('EIO in the middle of a body already under way: the client sees a broken transfer, never a short 200', async () => {
    const big = randomBytes(16 * 1024 * 1024)
    await h.s3.send(new PutObjectCommand({ Bucket: 'vault', Key: 'big', Body: big }))
    // The first megabytes go out (status and headers are sent), then the disk fails.
    h.blobs.faults = { readFailsAfterBytes: 8 * 1024 * 1024 }
    try {
      let received: Buffer | undefined
      const outcome = await h.s3.send(new GetObjectCommand({ Bucket: 'vault', Key: 'big' })).then(
        async (got) => {
          received = Buffer.from(await got.Body!.transformToByteArray())
          return 'complete'
        },
        () => 'refused',
      ).catch(() => 'broken')
      expect(outcome).toBe('broken')
      expect(received).toBeUndefined()
    } finally {
      h.blobs.faults = {}
    }
    expect((await read(h.s3, 'vault', 'big')).equals(big)).toBe(true)
  })

  it('a KMS without an admin surface: the console says so and lists no keys', async () => {
    const server = { httpsUrl: h.server.httpsUrl, ca: h.server.tls.cert } as unknown as TestServer
    const { accessKey, secretKey } = h.server.rootCredentials.user
    const login = await rawRequest(server, {
      method: 'POST', path: '/-/console/api/session',
      headers: { 'content-type': 'application/json', 'x-s3sse-console': '1' },
      body: JSON.stringify({ accessKey, secretKey }),
    })
    expect(login.status).toBe(200)
    expect(JSON.parse(login.body.toString())).toMatchObject({ keyListing: false })
    const cookie = String(login.headers['set-cookie']).split(';')[0]
    const keys = await rawRequest(server, { method: 'GET', path: '/-/console/api/kms/keys', headers: { cookie } })
    expect(JSON.parse(keys.body.toString())).toEqual({ keys: [], listing: false })
  })
})

describe('a KMS outage on reads', () => {
  it('an encrypted GET whose key is not cached is 503; HEAD answers; the data is intact after the outage', async () => {
    const dataDir = tempDir('s3sse-faults-read-')
    try {
      const body = randomBytes(150_000)
      const first = await start(dataDir)
      await first.s3.send(new CreateBucketCommand({ Bucket: 'vault' }))
      await first.s3.send(new PutBucketEncryptionCommand({ Bucket: 'vault', ServerSideEncryptionConfiguration: KMS_RULE }))
      await first.s3.send(new PutObjectCommand({ Bucket: 'vault', Key: 'doc', Body: body }))
      await first.stop()
      // A new process: its key cache is empty, so the read must ask the KMS.
      const second = await start(dataDir)
      try {
        second.kms.fault = 'unavailable'
        expect(await errorCode(second.s3.send(new GetObjectCommand({ Bucket: 'vault', Key: 'doc' })))).toBe('ServiceUnavailable')
        expect((await second.s3.send(new HeadObjectCommand({ Bucket: 'vault', Key: 'doc' }))).ContentLength).toBe(body.length)
        second.kms.fault = 'none'
        expect((await read(second.s3, 'vault', 'doc')).equals(body)).toBe(true)
        await expectNoOrphans(second)
      } finally {
        await second.stop()
      }
    } finally {
      removeDir(dataDir)
    }
  })
})
