/**
 * Moving a data dir from the embedded keyring to an external KMS with `s3-sse kms migrate`
 * (real processes: the S3 server, kms serve, the CLI): objects written on the keyring read
 * back through `--kms aws` afterwards, their sealed files are linked, not rewritten, and a
 * second run has nothing left to move.
 */
import { randomBytes } from 'node:crypto'
import { readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  CompleteMultipartUploadCommand, CreateBucketCommand, CreateMultipartUploadCommand, GetObjectCommand,
  PutBucketEncryptionCommand, PutObjectCommand, UploadPartCommand, AbortMultipartUploadCommand,
} from '@aws-sdk/client-s3'
import { runCli, startServer, stopAll } from './helpers.js'
import { startKmsServe, type KmsServeProcess } from '../helpers/kms-server.js'

function inodes(dir: string): Set<string> {
  const out = new Set<string>()
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name)
      if (e.isDirectory()) walk(p)
      else out.add(String(statSync(p).ino))
    }
  }
  walk(dir)
  return out
}

describe('s3-sse kms migrate: embedded keyring → kms serve', () => {
  let kmsd: KmsServeProcess
  let awsArgs: string[]
  let awsEnv: NodeJS.ProcessEnv
  beforeAll(async () => {
    kmsd = await startKmsServe()
    awsArgs = ['--kms', 'aws', '--kms-endpoint', kmsd.url, '--kms-ca-file', kmsd.caFile, '--kms-region', 'us-east-1']
    awsEnv = { AWS_ACCESS_KEY_ID: kmsd.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: kmsd.credentials.secretAccessKey, AWS_EC2_METADATA_DISABLED: 'true' }
  }, 60_000)
  afterAll(async () => {
    await stopAll()
    await kmsd?.stop()
  })

  it('rewraps every object without rewriting data; the server then reads them through the new KMS', async () => {
    let server = await startServer()
    const dataDir = server.dataDir
    let s3 = server.client()
    const objects: Array<{ bucket: string; key: string; data: Buffer }> = []
    for (const [bucket, bucketKey] of [['enc', false], ['keyed', true]] as const) {
      await s3.send(new CreateBucketCommand({ Bucket: bucket }))
      await s3.send(new PutBucketEncryptionCommand({ Bucket: bucket, ServerSideEncryptionConfiguration: { Rules: [{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms' }, BucketKeyEnabled: bucketKey }] } }))
      for (let i = 0; i < 3; i++) {
        const data = randomBytes(70_000 + i)
        await s3.send(new PutObjectCommand({ Bucket: bucket, Key: `o${i}`, Body: data }))
        objects.push({ bucket, key: `o${i}`, data })
      }
    }
    const parts = [randomBytes(5 * 1024 * 1024), randomBytes(1000)]
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: 'enc', Key: 'multi' }))
    const etags = []
    for (let i = 0; i < 2; i++) etags.push((await s3.send(new UploadPartCommand({ Bucket: 'enc', Key: 'multi', UploadId, PartNumber: i + 1, Body: parts[i] }))).ETag!)
    await s3.send(new CompleteMultipartUploadCommand({ Bucket: 'enc', Key: 'multi', UploadId, MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) } }))
    objects.push({ bucket: 'enc', key: 'multi', data: Buffer.concat(parts) })
    await s3.send(new CreateBucketCommand({ Bucket: 'plain' }))
    await s3.send(new PutObjectCommand({ Bucket: 'plain', Key: 'p', Body: 'plain' }))
    objects.push({ bucket: 'plain', key: 'p', data: Buffer.from('plain') })

    // An open upload blocks the migration, and the refusal changes nothing.
    const open = await s3.send(new CreateMultipartUploadCommand({ Bucket: 'enc', Key: 'pending' }))
    s3.destroy()
    expect(await server.stop()).toBe(0)
    const refused = await runCli(['kms', 'migrate', '--data-dir', dataDir, ...awsArgs], awsEnv)
    expect(refused.code).toBe(1)
    expect(refused.stderr).toContain('open multipart uploads')
    server = await startServer({ dataDir })
    s3 = server.client()
    await s3.send(new AbortMultipartUploadCommand({ Bucket: 'enc', Key: 'pending', UploadId: open.UploadId }))
    s3.destroy()
    expect(await server.stop()).toBe(0)

    const before = inodes(join(dataDir, 'objects'))
    const run = await runCli(['kms', 'migrate', '--data-dir', dataDir, ...awsArgs], awsEnv)
    expect(run.stderr).toBe('')
    expect(run.code).toBe(0)
    expect(run.stdout).toContain('migrated 7 objects in 3 buckets (0 already on the target, 1 not encrypted)')
    // Hard links of the same files: no sealed byte was rewritten.
    expect(inodes(join(dataDir, 'objects'))).toEqual(before)

    server = await startServer({ dataDir, args: awsArgs, env: awsEnv })
    s3 = server.client()
    for (const o of objects) {
      const r = await s3.send(new GetObjectCommand({ Bucket: o.bucket, Key: o.key }))
      expect(Buffer.from(await r.Body!.transformToByteArray()).equals(o.data), `${o.bucket}/${o.key}`).toBe(true)
      expect(r.ServerSideEncryption).toBe(o.bucket === 'plain' ? undefined : 'aws:kms')
    }
    // New writes go to the same service keys in the new KMS.
    await s3.send(new PutObjectCommand({ Bucket: 'enc', Key: 'after', Body: 'new' }))
    s3.destroy()
    expect(await server.stop()).toBe(0)

    const again = await runCli(['kms', 'migrate', '--data-dir', dataDir, ...awsArgs], awsEnv)
    expect(again.code).toBe(0)
    expect(again.stdout).toContain('migrated 0 objects in 3 buckets (8 already on the target, 1 not encrypted)')
  }, 120_000)
})
