/**
 * Object tags, bucket policies and DeleteBucket with uploads in progress on a fleet: two real
 * `s3-sse serve` processes (--store s3 on Ceph RGW, --meta postgres://), each request through
 * the other gateway than the one before, with the AWS SDK v3. What one gateway stores is what
 * the other answers, because both read the rows of one PostgreSQL database.
 */
import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, expect, it } from 'vitest'
import {
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteBucketCommand,
  DeleteObjectTaggingCommand,
  GetObjectCommand,
  GetObjectTaggingCommand,
  HeadBucketCommand,
  ListMultipartUploadsCommand,
  PutBucketPolicyCommand,
  PutObjectCommand,
  PutObjectTaggingCommand,
  UploadPartCommand,
  type S3Client,
} from '@aws-sdk/client-s3'
import pg from 'pg'
import { clientFor, processFleet, type ProcessFleet } from '../helpers/fleet.js'
import { describeWithServices } from '../helpers/services.js'
import { errorCode, runCli } from '../server/helpers.js'

describeWithServices('tags, bucket policies and bucket deletes on a fleet', ['rgw', 'postgres'], () => {
  let fleet: ProcessFleet
  let one: S3Client
  let two: S3Client
  const clients: S3Client[] = []

  beforeAll(async () => {
    fleet = await processFleet(2)
    one = clientFor(fleet.gateways[0].httpsUrl, fleet.cert.pem)
    two = clientFor(fleet.gateways[1].httpsUrl, fleet.cert.pem)
    clients.push(one, two)
  })

  afterAll(async () => {
    for (const c of clients) c.destroy()
    await fleet?.stop()
  })

  const tagsOf = async (s3: S3Client, Bucket: string, Key: string) => (await s3.send(new GetObjectTaggingCommand({ Bucket, Key }))).TagSet

  it('tags written through one gateway are read through the other: on PUT, by PutObjectTagging, on a multipart upload across gateways; DeleteObjectTagging removes them', async () => {
    await one.send(new CreateBucketCommand({ Bucket: 'fleet-tags' }))
    await one.send(new PutObjectCommand({ Bucket: 'fleet-tags', Key: 'a', Body: 'x', Tagging: 'project=blue&empty=' }))
    expect(await tagsOf(two, 'fleet-tags', 'a')).toEqual([{ Key: 'project', Value: 'blue' }, { Key: 'empty', Value: '' }])
    await two.send(new PutObjectTaggingCommand({ Bucket: 'fleet-tags', Key: 'a', Tagging: { TagSet: [{ Key: 'z', Value: '1' }, { Key: 'ключ', Value: 'значение' }] } }))
    expect(await tagsOf(one, 'fleet-tags', 'a')).toEqual([{ Key: 'z', Value: '1' }, { Key: 'ключ', Value: 'значение' }])
    await one.send(new DeleteObjectTaggingCommand({ Bucket: 'fleet-tags', Key: 'a' }))
    expect(await tagsOf(two, 'fleet-tags', 'a')).toEqual([])
    expect(await errorCode(two.send(new PutObjectTaggingCommand({ Bucket: 'fleet-tags', Key: 'none', Tagging: { TagSet: [] } })))).toBe('NoSuchKey')

    const { UploadId } = await one.send(new CreateMultipartUploadCommand({ Bucket: 'fleet-tags', Key: 'mp', Tagging: 'stage=upload' }))
    const part = randomBytes(5 * 1024 * 1024)
    const p1 = await two.send(new UploadPartCommand({ Bucket: 'fleet-tags', Key: 'mp', UploadId, PartNumber: 1, Body: part }))
    const p2 = await one.send(new UploadPartCommand({ Bucket: 'fleet-tags', Key: 'mp', UploadId, PartNumber: 2, Body: 'tail' }))
    await two.send(new CompleteMultipartUploadCommand({ Bucket: 'fleet-tags', Key: 'mp', UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: p1.ETag }, { PartNumber: 2, ETag: p2.ETag }] } }))
    expect(await tagsOf(one, 'fleet-tags', 'mp')).toEqual([{ Key: 'stage', Value: 'upload' }])
    const got = await one.send(new GetObjectCommand({ Bucket: 'fleet-tags', Key: 'mp' }))
    expect(got.TagCount).toBe(1)
    expect(Buffer.from(await got.Body!.transformToByteArray()).equals(Buffer.concat([part, Buffer.from('tail')]))).toBe(true)
  })

  it('a bucket policy put through one gateway is enforced by the other, for a user added with --meta', async () => {
    const added = await runCli(['user', 'add', 'pat', '--meta', fleet.db.url])
    expect(added.code, added.stderr).toBe(0)
    const pat = { accessKeyId: /access key: (\S+)/.exec(added.stdout)![1], secretAccessKey: /secret key: (\S+)/.exec(added.stdout)![1] }
    const patOne = clientFor(fleet.gateways[0].httpsUrl, fleet.cert.pem, pat)
    const patTwo = clientFor(fleet.gateways[1].httpsUrl, fleet.cert.pem, pat)
    clients.push(patOne, patTwo)
    await one.send(new CreateBucketCommand({ Bucket: 'fleet-pol' }))
    await one.send(new PutObjectCommand({ Bucket: 'fleet-pol', Key: 'shared/r', Body: 'readable' }))
    await one.send(new PutObjectCommand({ Bucket: 'fleet-pol', Key: 'private/s', Body: 'secret' }))
    expect(await errorCode(patTwo.send(new GetObjectCommand({ Bucket: 'fleet-pol', Key: 'shared/r' })))).toBe('AccessDenied')
    // A user is named by name or IAM ARN; the name is looked up in the fleet's users table.
    await one.send(new PutBucketPolicyCommand({
      Bucket: 'fleet-pol',
      Policy: JSON.stringify({
        Version: '2012-10-17',
        Statement: [
          { Sid: 'PatReads', Effect: 'Allow', Principal: { AWS: 'arn:aws:iam::000000000000:user/pat' }, Action: 's3:GetObject', Resource: 'arn:aws:s3:::fleet-pol/*' },
          { Sid: 'NotPrivate', Effect: 'Deny', Principal: { AWS: 'pat' }, Action: 's3:GetObject', Resource: 'arn:aws:s3:::fleet-pol/private/*' },
          { Sid: 'KmsOnly', Effect: 'Deny', Principal: '*', Action: 's3:PutObject', Resource: 'arn:aws:s3:::fleet-pol/*', Condition: { StringNotEquals: { 's3:x-amz-server-side-encryption': 'aws:kms' } } },
        ],
      }),
    }))
    const r = await patTwo.send(new GetObjectCommand({ Bucket: 'fleet-pol', Key: 'shared/r' }))
    expect(await r.Body!.transformToString()).toBe('readable')
    expect(await errorCode(patOne.send(new GetObjectCommand({ Bucket: 'fleet-pol', Key: 'private/s' })))).toBe('AccessDenied')
    expect(await errorCode(patTwo.send(new PutObjectCommand({ Bucket: 'fleet-pol', Key: 'shared/w', Body: 'x', ServerSideEncryption: 'aws:kms' })))).toBe('AccessDenied')
    expect(await errorCode(two.send(new PutObjectCommand({ Bucket: 'fleet-pol', Key: 'plain', Body: 'x' })))).toBe('AccessDenied')
    await two.send(new PutObjectCommand({ Bucket: 'fleet-pol', Key: 'sealed', Body: 'x', ServerSideEncryption: 'aws:kms' }))
    // A policy naming a user who does not exist anywhere in the fleet is refused.
    expect(await errorCode(two.send(new PutBucketPolicyCommand({
      Bucket: 'fleet-pol',
      Policy: JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: { AWS: 'nobody' }, Action: 's3:GetObject', Resource: 'arn:aws:s3:::fleet-pol/*' }] }),
    })))).toBe('MalformedPolicy')
  })

  it('DeleteBucket through one gateway discards the uploads another gateway has in progress, with their parts', async () => {
    await one.send(new CreateBucketCommand({ Bucket: 'fleet-del' }))
    const { UploadId } = await two.send(new CreateMultipartUploadCommand({ Bucket: 'fleet-del', Key: 'big' }))
    await two.send(new UploadPartCommand({ Bucket: 'fleet-del', Key: 'big', UploadId, PartNumber: 1, Body: randomBytes(1000) }))
    expect((await one.send(new ListMultipartUploadsCommand({ Bucket: 'fleet-del' }))).Uploads).toHaveLength(1)
    await one.send(new DeleteBucketCommand({ Bucket: 'fleet-del' }))
    expect(await errorCode(two.send(new HeadBucketCommand({ Bucket: 'fleet-del' })))).toBe('NotFound')
    expect(await errorCode(two.send(new UploadPartCommand({ Bucket: 'fleet-del', Key: 'big', UploadId, PartNumber: 2, Body: 'x' })))).toMatch(/NoSuchBucket|NoSuchUpload/)
    const db = new pg.Client({ connectionString: fleet.db.url })
    await db.connect()
    const left = (await db.query("SELECT (SELECT COUNT(*)::int FROM uploads WHERE bucket = 'fleet-del') AS u, (SELECT COUNT(*)::int FROM parts WHERE upload_id = $1) AS p", [UploadId])).rows[0]
    await db.end()
    expect(left).toEqual({ u: 0, p: 0 })
  })
})
