/**
 * The representative S3 slice end to end with each kind of KMS behind the real server
 * process: the embedded keyring, `--kms aws` against a real `s3-sse kms serve` process, and
 * `--kms pkcs11` against SoftHSM2. Single PUT, multipart, copy in all four directions, range
 * GET, restart; then what a client sees when the key is disabled (KMS.DisabledException, as
 * Amazon S3 answers) and when the KMS goes away (503, nothing stored) and comes back.
 */
import { randomBytes } from 'node:crypto'
import { readdirSync, renameSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  CompleteMultipartUploadCommand, CopyObjectCommand, CreateBucketCommand, CreateMultipartUploadCommand, GetObjectCommand,
  HeadObjectCommand, PutBucketEncryptionCommand, PutObjectCommand, UploadPartCommand, type S3Client,
} from '@aws-sdk/client-s3'
import { DisableKeyCommand, EnableKeyCommand, ListAliasesCommand } from '@aws-sdk/client-kms'
import { openEmbeddedKms } from '../../src/keys/embedded.js'
import { openPkcs11Kms } from '../../src/keys/pkcs11.js'
import { errorCode, errorStatus, startServer, stopAll, type TestServer } from './helpers.js'
import { startKmsServe, type KmsServeProcess } from '../helpers/kms-server.js'
import { createSoftHsmToken, requireOrSkip, softhsmMissing, type SoftHsmToken } from '../helpers/softhsm.js'

const MiB = 1024 * 1024
const SERVICE_ALIAS = 'alias/s3-sse/bucket/enc'

interface Kind {
  name: string
  missing?: () => string | undefined
  /** Starts what the KMS needs; returns the server's extra args and env. */
  setup(): Promise<{ args: string[]; env: NodeJS.ProcessEnv }>
  teardown(): Promise<void>
  disable(enabled: boolean): Promise<void>
  /** Takes the KMS away (or brings it back); absent for the embedded kind, which is the process itself. */
  outage?: (down: boolean) => Promise<void>
}

let kmsd: KmsServeProcess | undefined
let token: SoftHsmToken | undefined
let dataDir = ''
let tokenDirName = ''

const kinds: Kind[] = [
  {
    name: 'embedded',
    async setup() { return { args: [], env: {} } },
    async teardown() {},
    async disable(enabled) {
      const kms = await openEmbeddedKms(dataDir, { create: false })
      try {
        await (enabled ? kms.enableKey(SERVICE_ALIAS) : kms.disableKey(SERVICE_ALIAS))
      } finally {
        await kms.close()
      }
    },
  },
  {
    name: 'aws (kms serve)',
    async setup() {
      kmsd = await startKmsServe()
      return {
        args: ['--kms', 'aws', '--kms-endpoint', kmsd.url, '--kms-ca-file', kmsd.caFile, '--kms-region', 'us-east-1'],
        env: { AWS_ACCESS_KEY_ID: kmsd.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: kmsd.credentials.secretAccessKey, AWS_EC2_METADATA_DISABLED: 'true' },
      }
    },
    async teardown() { await kmsd?.stop() },
    async disable(enabled) {
      const c = kmsd!.client()
      try {
        const aliases = await c.send(new ListAliasesCommand({}))
        const keyId = aliases.Aliases!.find((a) => a.AliasName === SERVICE_ALIAS)!.TargetKeyId!
        await c.send(enabled ? new EnableKeyCommand({ KeyId: keyId }) : new DisableKeyCommand({ KeyId: keyId }))
      } finally {
        c.destroy()
      }
    },
    async outage(down) {
      if (down) await kmsd!.stop()
      else kmsd = await startKmsServe({ dataDir: kmsd!.dataDir, args: ['--port', new URL(kmsd!.url).port] })
    },
  },
  {
    name: 'pkcs11 (SoftHSM2)',
    missing: softhsmMissing,
    async setup() {
      token = createSoftHsmToken()
      return {
        args: ['--kms', 'pkcs11', '--pkcs11-module', token.module, '--pkcs11-token', token.label, '--pkcs11-pin-file', token.pinFile],
        env: { SOFTHSM2_CONF: token.conf },
      }
    },
    async teardown() { token?.cleanup() },
    async disable(enabled) {
      const kms = await openPkcs11Kms({ module: token!.module, token: token!.label, pin: token!.pin })
      try {
        await (enabled ? kms.enableKey(SERVICE_ALIAS) : kms.disableKey(SERVICE_ALIAS))
      } finally {
        await kms.close()
      }
    },
    async outage(down) {
      const dir = `${token!.dir}/tokens`
      if (down) {
        tokenDirName = readdirSync(dir)[0]
        renameSync(`${dir}/${tokenDirName}`, `${token!.dir}/away`)
      } else {
        renameSync(`${token!.dir}/away`, `${dir}/${tokenDirName}`)
      }
    },
  },
]

async function body(s3: S3Client, bucket: string, key: string, range?: string): Promise<{ data: Buffer; sse?: string }> {
  const r = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, ...(range ? { Range: range } : {}) }))
  return { data: Buffer.from(await r.Body!.transformToByteArray()), sse: r.ServerSideEncryption }
}

/** Retries `probe` until it yields `want` (the server trusts key state it read for a moment). */
async function eventually<T>(probe: () => Promise<T>, want: T, ms = 8000): Promise<T> {
  const end = Date.now() + ms
  for (;;) {
    const got = await probe()
    if (got === want || Date.now() > end) return got
    await new Promise((r) => setTimeout(r, 250))
  }
}

describe.each(kinds)('S3 slice with the $name KMS', (kind) => {
  const runs = requireOrSkip(kind.missing?.(), `S3 slice with the ${kind.name} KMS`)
  const test = runs ? it : it.skip
  let server: TestServer
  let s3: S3Client
  let start: { args: string[]; env: NodeJS.ProcessEnv }
  const objects = new Map<string, { bucket: string; key: string; data: Buffer; encrypted: boolean }>()

  beforeAll(async () => {
    if (!runs) return
    start = await kind.setup()
    server = await startServer(start)
    dataDir = server.dataDir
    s3 = server.client()
    await s3.send(new CreateBucketCommand({ Bucket: 'enc' }))
    await s3.send(new CreateBucketCommand({ Bucket: 'plain' }))
    await s3.send(new PutBucketEncryptionCommand({ Bucket: 'enc', ServerSideEncryptionConfiguration: { Rules: [{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms' } }] } }))
  }, 60_000)
  afterAll(async () => {
    s3?.destroy()
    await stopAll()
    if (runs) await kind.teardown()
  })

  test('single PUT, GET and HEAD', async () => {
    const data = randomBytes(300_000)
    const put = await s3.send(new PutObjectCommand({ Bucket: 'enc', Key: 'one.bin', Body: data }))
    expect(put.ServerSideEncryption).toBe('aws:kms')
    expect(await body(s3, 'enc', 'one.bin')).toEqual({ data, sse: 'aws:kms' })
    expect((await s3.send(new HeadObjectCommand({ Bucket: 'enc', Key: 'one.bin' }))).ServerSideEncryption).toBe('aws:kms')
    objects.set('one', { bucket: 'enc', key: 'one.bin', data, encrypted: true })
    const plain = randomBytes(1000)
    expect((await s3.send(new PutObjectCommand({ Bucket: 'plain', Key: 'p.bin', Body: plain }))).ServerSideEncryption).toBeUndefined()
    objects.set('p', { bucket: 'plain', key: 'p.bin', data: plain, encrypted: false })
  })

  test('multipart upload, and a range GET across its part boundary', async () => {
    const parts = [randomBytes(5 * MiB), randomBytes(MiB + 17)]
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: 'enc', Key: 'multi.bin' }))
    const etags: string[] = []
    for (let i = 0; i < parts.length; i++) {
      const up = await s3.send(new UploadPartCommand({ Bucket: 'enc', Key: 'multi.bin', UploadId, PartNumber: i + 1, Body: parts[i] }))
      expect(up.ServerSideEncryption).toBe('aws:kms')
      etags.push(up.ETag!)
    }
    const done = await s3.send(new CompleteMultipartUploadCommand({
      Bucket: 'enc', Key: 'multi.bin', UploadId, MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) },
    }))
    expect(done.ServerSideEncryption).toBe('aws:kms')
    const data = Buffer.concat(parts)
    expect((await body(s3, 'enc', 'multi.bin')).data.equals(data)).toBe(true)
    const from = 5 * MiB - 1000
    expect((await body(s3, 'enc', 'multi.bin', `bytes=${from}-${from + 2999}`)).data).toEqual(data.subarray(from, from + 3000))
    objects.set('multi', { bucket: 'enc', key: 'multi.bin', data, encrypted: true })
  })

  test('copy in all four directions follows the destination bucket', async () => {
    const cases = [
      { from: 'one', bucket: 'enc', key: 'copy-enc-enc', encrypted: true },
      { from: 'one', bucket: 'plain', key: 'copy-enc-plain', encrypted: false },
      { from: 'p', bucket: 'enc', key: 'copy-plain-enc', encrypted: true },
      { from: 'p', bucket: 'plain', key: 'copy-plain-plain', encrypted: false },
    ]
    for (const c of cases) {
      const src = objects.get(c.from)!
      const r = await s3.send(new CopyObjectCommand({ Bucket: c.bucket, Key: c.key, CopySource: `${src.bucket}/${src.key}` }))
      expect(r.ServerSideEncryption, c.key).toBe(c.encrypted ? 'aws:kms' : undefined)
      const got = await body(s3, c.bucket, c.key)
      expect(got.sse, c.key).toBe(c.encrypted ? 'aws:kms' : undefined)
      expect(got.data.equals(src.data), c.key).toBe(true)
      objects.set(c.key, { bucket: c.bucket, key: c.key, data: src.data, encrypted: c.encrypted })
    }
  })

  test('everything reads back after a restart', async () => {
    s3.destroy()
    expect(await server.stop()).toBe(0)
    server = await startServer({ ...start, dataDir })
    s3 = server.client()
    for (const o of objects.values()) {
      const got = await body(s3, o.bucket, o.key)
      expect(got.sse, o.key).toBe(o.encrypted ? 'aws:kms' : undefined)
      expect(got.data.equals(o.data), o.key).toBe(true)
    }
  }, 60_000)

  test('a disabled key is KMS.DisabledException, as Amazon S3 answers; enabled again, writes work', async () => {
    await kind.disable(false)
    const put = () => s3.send(new PutObjectCommand({ Bucket: 'enc', Key: 'while-disabled', Body: 'x' }))
    expect(await eventually(() => errorCode(put()), 'KMS.DisabledException')).toBe('KMS.DisabledException')
    expect(await errorStatus(put())).toBe(400)
    // Plaintext buckets do not depend on the key.
    await s3.send(new PutObjectCommand({ Bucket: 'plain', Key: 'unaffected', Body: 'y' }))
    await kind.disable(true)
    expect(await eventually(() => errorCode(put()), undefined)).toBeUndefined()
  }, 30_000)

  // The embedded KMS is the server process itself: it has no outage of its own to test here.
  if (kind.outage) test('a KMS that goes away is 503 with nothing stored; it comes back by itself', async () => {
    await kind.outage!(true)
    const put = () => s3.send(new PutObjectCommand({ Bucket: 'enc', Key: 'during-outage', Body: 'z' }))
    try {
      expect(await errorStatus(put())).toBe(503)
      expect(await errorCode(put())).toBe('ServiceUnavailable')
      expect(await errorCode(s3.send(new HeadObjectCommand({ Bucket: 'enc', Key: 'during-outage' })))).toBe('NotFound')
      await s3.send(new PutObjectCommand({ Bucket: 'plain', Key: 'still-fine', Body: 'w' }))
    } finally {
      await kind.outage!(false)
    }
    expect(await eventually(() => errorCode(put()), undefined)).toBeUndefined()
    expect((await body(s3, 'enc', 'during-outage')).data.toString()).toBe('z')
  }, 60_000)
})
