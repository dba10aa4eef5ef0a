/**
 * Moving an embedded-default data dir into a fleet (docs/DEPLOY.md, "From one machine to a
 * fleet"): objects written by the embedded server — plaintext, SSE-KMS, multipart — and a user,
 * copied by `s3-sse migrate-store` into a backend bucket on RGW and PostgreSQL, then read by a
 * gateway whose KMS is `s3-sse kms serve` over the data dir's own keyring: nothing re-encrypted,
 * nothing rewrapped, no plaintext of the encrypted objects in the backend. A second run copies
 * nothing.
 */
import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, expect, it } from 'vitest'
import {
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutBucketEncryptionCommand,
  PutObjectCommand,
  UploadPartCommand,
  type S3Client,
} from '@aws-sdk/client-s3'
import { newJob } from '../../src/server/jobs/model.js'
import { PostgresMetaStore } from '../../src/server/meta/postgres/index.js'
import { SqliteMetaStore } from '../../src/server/meta/sqlite/index.js'
import { freshDatabase, describeWithServices, rgw } from '../helpers/services.js'
import { backendBucket, type BackendBucket } from '../helpers/rgw.js'
import { startKmsServe } from '../helpers/kms-server.js'
import { removeDir, runCli, startServer, stopAll, tempDir } from '../server/helpers.js'

const MiB = 1024 * 1024

async function get(s3: S3Client, Bucket: string, Key: string): Promise<Buffer> {
  return Buffer.from(await (await s3.send(new GetObjectCommand({ Bucket, Key }))).Body!.transformToByteArray())
}

function marked(marker: string, size: number): Buffer {
  const out = Buffer.alloc(size)
  for (let i = 0; i < size; i += 64) Buffer.from(marker.padEnd(64, '.')).copy(out, i)
  return out
}

describeWithServices('s3-sse migrate-store: an embedded data dir into a fleet', ['rgw', 'postgres'], () => {
  let dataDir: string
  let bucket: BackendBucket
  let db: { url: string; drop(): Promise<void> }
  const objects = new Map<string, Buffer>()
  let dave: { accessKeyId: string; secretAccessKey: string }
  const MARK = 'MIGRATED-SECRET-MARKER-44aa'

  beforeAll(async () => {
    dataDir = tempDir('s3sse-migrate-')
    bucket = await backendBucket('migrate')
    db = await freshDatabase('migrate')
    const embedded = await startServer({ dataDir })
    const s3 = embedded.client()
    await s3.send(new CreateBucketCommand({ Bucket: 'plain' }))
    await s3.send(new CreateBucketCommand({ Bucket: 'sealed' }))
    await s3.send(new PutBucketEncryptionCommand({ Bucket: 'sealed', ServerSideEncryptionConfiguration: { Rules: [{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms' } }] } }))
    const put = async (b: string, k: string, data: Buffer) => {
      await s3.send(new PutObjectCommand({ Bucket: b, Key: k, Body: data, Metadata: { origin: 'embedded' } }))
      objects.set(`${b}/${k}`, data)
    }
    await put('plain', 'p.txt', randomBytes(10_000))
    await put('sealed', 'dir/secret', marked(MARK, 300_000))
    await put('sealed', 'empty', Buffer.alloc(0))
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: 'sealed', Key: 'mp' }))
    const p1 = marked(MARK, 5 * MiB)
    const p2 = randomBytes(999)
    const e1 = await s3.send(new UploadPartCommand({ Bucket: 'sealed', Key: 'mp', UploadId, PartNumber: 1, Body: p1 }))
    const e2 = await s3.send(new UploadPartCommand({ Bucket: 'sealed', Key: 'mp', UploadId, PartNumber: 2, Body: p2 }))
    await s3.send(new CompleteMultipartUploadCommand({ Bucket: 'sealed', Key: 'mp', UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: e1.ETag }, { PartNumber: 2, ETag: e2.ETag }] } }))
    objects.set('sealed/mp', Buffer.concat([p1, p2]))
    const added = await runCli(['user', 'add', 'dave', '--data-dir', dataDir])
    dave = { accessKeyId: /access key: (\S+)/.exec(added.stdout)![1], secretAccessKey: /secret key: (\S+)/.exec(added.stdout)![1] }
    s3.destroy()
    expect(await embedded.stop()).toBe(0)
  })

  afterAll(async () => {
    await stopAll()
    await bucket?.drop()
    await db?.drop()
    if (dataDir) removeDir(dataDir)
  })

  it('copies the sealed objects and users; a gateway on kms serve over the same keyring reads them all', async () => {
    const r = rgw()!
    const env = { S3SSE_STORE_ACCESS_KEY: r.accessKey, S3SSE_STORE_SECRET_KEY: r.secretKey }
    const storeArgs = ['--store', 's3', '--store-endpoint', r.endpoint, '--store-bucket', bucket.name, '--meta', db.url]
    // A job the data dir has not finished is not carried over silently: migrate-store refuses.
    const local = new SqliteMetaStore(dataDir)
    await local.createJob(newJob({ kind: 'scrub', bucket: 'sealed' }, { id: 'abc123', createdBy: 'root', now: Date.now() }))
    await local.close()
    const refused = await runCli(['migrate-store', '--data-dir', dataDir, ...storeArgs], env)
    expect(refused.code).not.toBe(0)
    expect(refused.stderr).toContain('job abc123 (scrub of sealed) is queued: let it complete or cancel it (s3-sse job cancel abc123)')
    const again0 = new SqliteMetaStore(dataDir)
    await again0.updateJob('abc123', (j) => ({ ...j, state: 'cancelled', finishedAt: Date.now() }))
    await again0.close()
    const first = await runCli(['migrate-store', '--data-dir', dataDir, ...storeArgs], env)
    expect(first.code, first.stderr).toBe(0)
    expect(first.stdout).toMatch(/copied 4 objects \(\d+ sealed bytes\) in 2 buckets, 0 already there; 1 users/)
    const again = await runCli(['migrate-store', '--data-dir', dataDir, ...storeArgs], env)
    expect(again.stdout).toMatch(/copied 0 objects .* 4 already there; 0 users/)

    // The rows keep the key version each data key is wrapped under (what kms usage and rewrap read).
    const pgMeta = await PostgresMetaStore.open(db.url)
    const usage = await pgMeta.keyUsage()
    await pgMeta.close()
    expect(usage.reduce((n, u) => n + u.objects, 0)).toBe(3)

    // Nothing in the backend shows the encrypted objects' plaintext.
    for (const key of await bucket.keys()) expect((await bucket.get(key)).includes(MARK)).toBe(false)

    const kms = await startKmsServe({ dataDir })
    const gatewayDir = tempDir('s3sse-migrated-gw-')
    try {
      const gateway = await startServer({
        dataDir: gatewayDir,
        env: { ...env, AWS_ACCESS_KEY_ID: kms.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: kms.credentials.secretAccessKey },
        args: [...storeArgs, '--kms', 'aws', '--kms-endpoint', kms.url, '--kms-ca-file', kms.caFile],
      })
      const s3 = gateway.client()
      for (const [path, data] of objects) {
        const [b, ...k] = path.split('/')
        expect((await get(s3, b, k.join('/'))).equals(data)).toBe(true)
      }
      const head = await s3.send(new HeadObjectCommand({ Bucket: 'sealed', Key: 'dir/secret' }))
      expect(head.ServerSideEncryption).toBe('aws:kms')
      expect(head.Metadata).toEqual({ origin: 'embedded' })
      const asDave = gateway.client(dave)
      await asDave.send(new CreateBucketCommand({ Bucket: 'daves-bucket' }))
      asDave.destroy()
      s3.destroy()
      expect(await gateway.stop()).toBe(0)
    } finally {
      await kms.stop()
      removeDir(gatewayDir)
    }
  })
})
