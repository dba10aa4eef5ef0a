/**
 * Bucket policies with the aws CLI v2 against the real server (issue 12 item 11): Put/Get/
 * DeleteBucketPolicy, the AWS-documented "deny PutObject unless aws:kms" policy end to end —
 * single PUTs, multipart uploads (the CLI's and by hand) and copies — and a policy that
 * grants another user access, with an explicit Deny that overrides it.
 */
import { randomBytes } from 'node:crypto'
import { GetObjectCommand } from '@aws-sdk/client-s3'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { UserStore } from '../../src/server/credentials.js'
import { removeDir, startServer, stopAll, tempDir, type TestServer } from '../server/helpers.js'
import { cleanupClients, Clients, describeClient, ok } from './harness.js'

let server: TestServer
let c: Clients
let bob: Clients
const BOB = { accessKey: 'BOBPOLICYTEST0000001', secretKey: 'bob-policy-secret-0123456789abcdef' }

const requireKms = (bucket: string) => ({
  Version: '2012-10-17',
  Id: 'PutObjectPolicy',
  Statement: [
    { Sid: 'DenyIncorrectEncryptionHeader', Effect: 'Deny', Principal: '*', Action: 's3:PutObject', Resource: `arn:aws:s3:::${bucket}/*`, Condition: { StringNotEquals: { 's3:x-amz-server-side-encryption': 'aws:kms' } } },
    { Sid: 'DenyUnEncryptedObjectUploads', Effect: 'Deny', Principal: '*', Action: 's3:PutObject', Resource: `arn:aws:s3:::${bucket}/*`, Condition: { Null: { 's3:x-amz-server-side-encryption': 'true' } } },
  ],
})

describeClient('aws', 'bucket policies with the aws CLI v2', () => {
  beforeAll(async () => {
    const dir = tempDir()
    new UserStore(dir).add('bob', BOB)
    server = await startServer({ dataDir: dir, args: ['--mode', 'aws'] })
    c = new Clients(server)
    bob = new Clients(server, BOB, 'bob')
  })

  afterAll(async () => {
    await server?.stop()
    await stopAll()
    if (server) removeDir(server.dataDir)
    cleanupClients()
  })

  async function putPolicy(bucket: string, policy: unknown, as = c) {
    as.file(`${bucket}-policy.json`, JSON.stringify(policy))
    return as.aws(['s3api', 'put-bucket-policy', '--bucket', bucket, '--policy', `file://${as.path(`${bucket}-policy.json`)}`])
  }

  it('put, get and delete a policy; none is NoSuchBucketPolicy; a malformed one is MalformedPolicy', async () => {
    ok(await c.aws(['s3', 'mb', 's3://pol-crud']))
    expect((await c.aws(['s3api', 'get-bucket-policy', '--bucket', 'pol-crud'])).stderr).toMatch(/NoSuchBucketPolicy/)
    ok(await putPolicy('pol-crud', requireKms('pol-crud')))
    const got = JSON.parse(ok(await c.aws(['s3api', 'get-bucket-policy', '--bucket', 'pol-crud'])).stdout)
    expect(JSON.parse(got.Policy)).toEqual(requireKms('pol-crud'))
    const bad = await putPolicy('pol-crud', { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: '*', Action: 's3:Fly', Resource: 'arn:aws:s3:::pol-crud/*' }] })
    expect(bad.stderr).toMatch(/MalformedPolicy.*invalid action/)
    const other = await putPolicy('pol-crud', { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: { AWS: 'nobody' }, Action: 's3:GetObject', Resource: 'arn:aws:s3:::pol-crud/*' }] })
    expect(other.stderr).toMatch(/MalformedPolicy.*Invalid principal/)
    ok(await c.aws(['s3api', 'delete-bucket-policy', '--bucket', 'pol-crud']))
    expect((await c.aws(['s3api', 'get-bucket-policy', '--bucket', 'pol-crud'])).stderr).toMatch(/NoSuchBucketPolicy/)
  })

  it('"deny PutObject unless aws:kms": PUTs, multipart uploads and copies need the header', async () => {
    ok(await c.aws(['s3', 'mb', 's3://pol-kms']))
    ok(await putPolicy('pol-kms', requireKms('pol-kms')))
    c.file('small.txt', 'small')
    c.file('big.bin', randomBytes(9 * 1024 * 1024))
    expect((await c.aws(['s3', 'cp', c.path('small.txt'), 's3://pol-kms/plain.txt'])).stderr).toMatch(/AccessDenied/)
    expect((await c.aws(['s3', 'cp', c.path('small.txt'), 's3://pol-kms/aes.txt', '--sse', 'AES256'])).stderr).toMatch(/AccessDenied/)
    ok(await c.aws(['s3', 'cp', c.path('small.txt'), 's3://pol-kms/kms.txt', '--sse', 'aws:kms']), 'PUT with aws:kms')
    expect(JSON.parse(ok(await c.aws(['s3api', 'head-object', '--bucket', 'pol-kms', '--key', 'kms.txt'])).stdout).ServerSideEncryption).toBe('aws:kms')
    // The CLI's multipart upload (CreateMultipartUpload carries the header, parts do not).
    expect((await c.aws(['s3', 'cp', c.path('big.bin'), 's3://pol-kms/big-plain.bin', '--no-progress'])).stderr).toMatch(/AccessDenied/)
    ok(await c.aws(['s3', 'cp', c.path('big.bin'), 's3://pol-kms/big.bin', '--sse', 'aws:kms', '--no-progress']), 'multipart with aws:kms')
    // By hand: parts and Complete of an aws:kms upload are allowed without the header.
    const mp = JSON.parse(ok(await c.aws(['s3api', 'create-multipart-upload', '--bucket', 'pol-kms', '--key', 'hand.bin', '--server-side-encryption', 'aws:kms'])).stdout)
    const part = JSON.parse(ok(await c.aws(['s3api', 'upload-part', '--bucket', 'pol-kms', '--key', 'hand.bin', '--part-number', '1', '--upload-id', mp.UploadId, '--body', c.path('small.txt')])).stdout)
    c.file('hand.json', JSON.stringify({ Parts: [{ ETag: part.ETag, PartNumber: 1 }] }))
    ok(await c.aws(['s3api', 'complete-multipart-upload', '--bucket', 'pol-kms', '--key', 'hand.bin', '--upload-id', mp.UploadId, '--multipart-upload', `file://${c.path('hand.json')}`]))
    expect((await c.aws(['s3api', 'create-multipart-upload', '--bucket', 'pol-kms', '--key', 'hand2.bin'])).stderr).toMatch(/AccessDenied/)
    // Copies: the copy request must say aws:kms too.
    expect((await c.aws(['s3', 'cp', 's3://pol-kms/kms.txt', 's3://pol-kms/copy-plain.txt'])).stderr).toMatch(/AccessDenied/)
    ok(await c.aws(['s3', 'cp', 's3://pol-kms/kms.txt', 's3://pol-kms/copy.txt', '--sse', 'aws:kms']), 'copy with aws:kms')
    ok(await c.aws(['s3', 'cp', 's3://pol-kms/big.bin', 's3://pol-kms/big-copy.bin', '--sse', 'aws:kms', '--no-progress']), 'multipart copy with aws:kms')
    const listed = JSON.parse(ok(await c.aws(['s3api', 'list-objects-v2', '--bucket', 'pol-kms'])).stdout).Contents.map((o: { Key: string }) => o.Key).sort()
    expect(listed).toEqual(['big-copy.bin', 'big.bin', 'copy.txt', 'hand.bin', 'kms.txt'])
  })

  it('a policy grants another user access; an explicit Deny overrides the Allow', async () => {
    ok(await c.aws(['s3', 'mb', 's3://pol-share']))
    c.file('report.txt', 'quarterly numbers')
    ok(await c.aws(['s3', 'cp', c.path('report.txt'), 's3://pol-share/reports/q1.txt']))
    ok(await c.aws(['s3', 'cp', c.path('report.txt'), 's3://pol-share/private/salaries.txt']))
    expect((await bob.aws(['s3', 'ls', 's3://pol-share/'])).stderr).toMatch(/AccessDenied/)
    ok(await putPolicy('pol-share', {
      Version: '2012-10-17',
      Statement: [
        { Sid: 'BobReads', Effect: 'Allow', Principal: { AWS: ['arn:aws:iam::000000000000:user/bob'] }, Action: ['s3:ListBucket', 's3:GetObject'], Resource: ['arn:aws:s3:::pol-share', 'arn:aws:s3:::pol-share/*'] },
        { Sid: 'NotPrivate', Effect: 'Deny', Principal: { AWS: 'bob' }, Action: 's3:GetObject', Resource: 'arn:aws:s3:::pol-share/private/*' },
      ],
    }))
    expect(ok(await bob.aws(['s3', 'ls', 's3://pol-share/', '--recursive'])).stdout).toContain('reports/q1.txt')
    ok(await bob.aws(['s3', 'cp', 's3://pol-share/reports/q1.txt', bob.path('q1.txt')]), 'bob reads a shared object')
    expect((await bob.aws(['s3', 'cp', 's3://pol-share/private/salaries.txt', bob.path('s.txt')])).stderr).toMatch(/403|AccessDenied|Forbidden/)
    // What a policy grants still obeys the transport rule: SSE-KMS data only over HTTPS.
    ok(await c.aws(['s3', 'cp', c.path('report.txt'), 's3://pol-share/reports/enc.txt', '--sse', 'aws:kms']))
    const bobHttp = server.client({ http: true, accessKeyId: BOB.accessKey, secretAccessKey: BOB.secretKey })
    const overHttp = await bobHttp.send(new GetObjectCommand({ Bucket: 'pol-share', Key: 'reports/enc.txt' })).then(() => 'served', (e: { message?: string }) => e.message)
    bobHttp.destroy()
    expect(overHttp).toMatch(/must be made over a secure connection/)
    bob.file('mine.txt', 'bob writes')
    expect((await bob.aws(['s3', 'cp', bob.path('mine.txt'), 's3://pol-share/bob.txt'])).stderr).toMatch(/AccessDenied/)
    // Bob may not change the policy; the owner can remove it, and Bob is out again.
    expect((await bob.aws(['s3api', 'delete-bucket-policy', '--bucket', 'pol-share'])).stderr).toMatch(/AccessDenied/)
    ok(await c.aws(['s3api', 'delete-bucket-policy', '--bucket', 'pol-share']))
    expect((await bob.aws(['s3', 'ls', 's3://pol-share/'])).stderr).toMatch(/AccessDenied/)
  })
})
