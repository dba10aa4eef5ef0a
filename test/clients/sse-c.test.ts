/**
 * SSE-C (issue 12 item 10) with boto3 and the aws CLI v2 against the real server in aws
 * mode: every operation S3 takes a customer key on — PutObject, GetObject (whole, ranged,
 * partNumber), HeadObject, CopyObject (source and destination keys), multipart uploads with
 * UploadPart and UploadPartCopy — and S3's answers when the key is wrong (403), missing or
 * not wanted (400), malformed, or sent over plain HTTP.
 */
import { createHash, randomBytes } from 'node:crypto'
import { GetObjectCommand } from '@aws-sdk/client-s3'
import { readFileSync } from 'node:fs'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { allFiles, removeDir, startServer, stopAll, type TestServer } from '../server/helpers.js'
import { cleanupClients, Clients, describeClient, ok } from './harness.js'

let server: TestServer
let c: Clients

describeClient(['boto3', 'aws'], 'SSE-C with boto3 and the aws CLI', () => {
  beforeAll(async () => {
    server = await startServer({ args: ['--mode', 'aws'] })
    c = new Clients(server)
  })

  afterAll(async () => {
    await server?.stop()
    await stopAll()
    if (server) removeDir(server.dataDir)
    cleanupClients()
  })

  it('put, get, ranged get, head and copy with customer keys; wrong, missing and unwanted keys', async () => {
    const r = await c.boto3<Record<string, unknown>>(
      [
        'import os, hashlib, base64',
        'K1, K2 = os.urandom(32), os.urandom(32)',
        'C1 = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": K1}',
        'C2 = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": K2}',
        'data = os.urandom(200000)',
        's3.create_bucket(Bucket="ssec")',
        'put = s3.put_object(Bucket="ssec", Key="secret.bin", Body=data, **C1)',
        'out = {"putAlg": put.get("SSECustomerAlgorithm"), "putMd5": put.get("SSECustomerKeyMD5") == base64.b64encode(hashlib.md5(K1).digest()).decode(), "putSse": put.get("ServerSideEncryption")}',
        'out["get"] = s3.get_object(Bucket="ssec", Key="secret.bin", **C1)["Body"].read() == data',
        'out["range"] = s3.get_object(Bucket="ssec", Key="secret.bin", Range="bytes=70000-70009", **C1)["Body"].read() == data[70000:70010]',
        'h = s3.head_object(Bucket="ssec", Key="secret.bin", **C1)',
        'out["head"] = [h["ContentLength"], h.get("SSECustomerAlgorithm")]',
        'def code(call):',
        '    try:',
        '        call()',
        '        return "ok"',
        '    except botocore.exceptions.ClientError as e:',
        '        return [e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"]["Code"]]',
        'out["wrongGet"] = code(lambda: s3.get_object(Bucket="ssec", Key="secret.bin", **C2))',
        'out["wrongHead"] = code(lambda: s3.head_object(Bucket="ssec", Key="secret.bin", **C2))',
        'out["noKey"] = code(lambda: s3.get_object(Bucket="ssec", Key="secret.bin"))',
        's3.put_object(Bucket="ssec", Key="plain.txt", Body=b"plain")',
        'out["unwanted"] = code(lambda: s3.get_object(Bucket="ssec", Key="plain.txt", **C1))',
        's3.copy_object(Bucket="ssec", Key="rekeyed.bin", CopySource={"Bucket": "ssec", "Key": "secret.bin"}, CopySourceSSECustomerAlgorithm="AES256", CopySourceSSECustomerKey=K1, **C2)',
        'out["rekeyed"] = s3.get_object(Bucket="ssec", Key="rekeyed.bin", **C2)["Body"].read() == data',
        'out["oldKeyOnCopy"] = code(lambda: s3.get_object(Bucket="ssec", Key="rekeyed.bin", **C1))',
        's3.copy_object(Bucket="ssec", Key="kms.bin", CopySource={"Bucket": "ssec", "Key": "secret.bin"}, CopySourceSSECustomerAlgorithm="AES256", CopySourceSSECustomerKey=K1, ServerSideEncryption="aws:kms")',
        'out["toKms"] = s3.get_object(Bucket="ssec", Key="kms.bin")["Body"].read() == data',
        'out["copyNoSourceKey"] = code(lambda: s3.copy_object(Bucket="ssec", Key="x.bin", CopySource={"Bucket": "ssec", "Key": "secret.bin"}))',
        'out["etag"] = put["ETag"]',
        'print(json.dumps(out))',
      ].join('\n'),
    )
    expect(r).toMatchObject({
      putAlg: 'AES256', putMd5: true, get: true, range: true, head: [200000, 'AES256'],
      wrongGet: [403, 'AccessDenied'], wrongHead: [403, '403'], noKey: [400, 'InvalidRequest'], unwanted: [400, 'InvalidRequest'],
      rekeyed: true, oldKeyOnCopy: [403, 'AccessDenied'], toKms: true, copyNoSourceKey: [400, 'InvalidRequest'],
    })
    expect(r.putSse ?? undefined).toBeUndefined()
    expect(r.etag).toMatch(/^"[0-9a-f]{32}-1"$/)
  })

  it('multipart: s3transfer upload_file / download_file with SSE-C, UploadPartCopy with both keys, partNumber GET', async () => {
    const r = await c.boto3<Record<string, unknown>>(
      [
        'import os',
        'from boto3.s3.transfer import TransferConfig',
        'cfg = TransferConfig(multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024, max_concurrency=2)',
        'K = os.urandom(32)',
        'C = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": K}',
        's3.create_bucket(Bucket="ssec-mp")',
        'data = os.urandom(11 * 1024 * 1024)',
        'open("mp.bin", "wb").write(data)',
        's3.upload_file("mp.bin", "ssec-mp", "big.bin", ExtraArgs=C, Config=cfg)',
        's3.download_file("ssec-mp", "big.bin", "mp.down", ExtraArgs=C, Config=cfg)',
        'out = {"same": open("mp.down", "rb").read() == data}',
        'p2 = s3.get_object(Bucket="ssec-mp", Key="big.bin", PartNumber=2, **C)',
        'out["part2"] = [p2["ContentLength"], p2["PartsCount"], p2["Body"].read() == data[5*1024*1024:10*1024*1024]]',
        'K2 = os.urandom(32)',
        'C2 = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": K2}',
        'mp = s3.create_multipart_upload(Bucket="ssec-mp", Key="copied.bin", **C2)',
        'part = s3.upload_part_copy(Bucket="ssec-mp", Key="copied.bin", UploadId=mp["UploadId"], PartNumber=1, CopySource={"Bucket": "ssec-mp", "Key": "big.bin"}, CopySourceRange="bytes=0-999", CopySourceSSECustomerAlgorithm="AES256", CopySourceSSECustomerKey=K, **C2)',
        'def code(call):',
        '    try:',
        '        call()',
        '        return "ok"',
        '    except botocore.exceptions.ClientError as e:',
        '        return [e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"]["Code"]]',
        'out["partWrongKey"] = code(lambda: s3.upload_part(Bucket="ssec-mp", Key="copied.bin", UploadId=mp["UploadId"], PartNumber=2, Body=b"x", **C))',
        'out["partNoKey"] = code(lambda: s3.upload_part(Bucket="ssec-mp", Key="copied.bin", UploadId=mp["UploadId"], PartNumber=2, Body=b"x"))',
        's3.complete_multipart_upload(Bucket="ssec-mp", Key="copied.bin", UploadId=mp["UploadId"], MultipartUpload={"Parts": [{"ETag": part["CopyPartResult"]["ETag"], "PartNumber": 1}]})',
        'out["copied"] = s3.get_object(Bucket="ssec-mp", Key="copied.bin", **C2)["Body"].read() == data[:1000]',
        'print(json.dumps(out))',
      ].join('\n'),
    )
    expect(r).toEqual({ same: true, part2: [5 * 1024 * 1024, 3, true], partWrongKey: [403, 'AccessDenied'], partNoKey: [400, 'InvalidRequest'], copied: true })
  })

  it('the aws CLI: s3 cp --sse-c up and down; s3api with a malformed key; never over plain HTTP; the key is not stored', async () => {
    const key = randomBytes(32)
    c.file('ssec.key', key)
    c.file('doc.txt', 'confidential')
    ok(await c.aws(['s3', 'mb', 's3://ssec-cli']))
    ok(await c.aws(['s3', 'cp', c.path('doc.txt'), 's3://ssec-cli/doc.txt', '--sse-c', 'AES256', '--sse-c-key', `fileb://${c.path('ssec.key')}`]), 'aws s3 cp --sse-c')
    ok(await c.aws(['s3', 'cp', 's3://ssec-cli/doc.txt', c.path('doc.down'), '--sse-c', 'AES256', '--sse-c-key', `fileb://${c.path('ssec.key')}`]), 'aws s3 cp --sse-c (download)')
    expect(readFileSync(c.path('doc.down'), 'utf8')).toBe('confidential')
    c.file('short.key', randomBytes(16))
    const short = await c.aws(['s3api', 'put-object', '--bucket', 'ssec-cli', '--key', 'short.txt', '--body', c.path('doc.txt'), '--sse-customer-algorithm', 'AES256', '--sse-customer-key', `fileb://${c.path('short.key')}`])
    expect(short.stderr).toMatch(/InvalidArgument.*secret key was invalid/)
    const aes128 = await c.aws(['s3api', 'put-object', '--bucket', 'ssec-cli', '--key', 'alg.txt', '--body', c.path('doc.txt'), '--sse-customer-algorithm', 'AES128', '--sse-customer-key', `fileb://${c.path('ssec.key')}`])
    expect(aes128.stderr).toMatch(/InvalidEncryptionAlgorithmError/)
    // Over plain HTTP a signed request with a customer key is refused before anything is read.
    const md5 = createHash('md5').update(key).digest('base64')
    const plain = server.client({ http: true })
    const refused = await plain.send(new GetObjectCommand({ Bucket: 'ssec-cli', Key: 'doc.txt', SSECustomerAlgorithm: 'AES256', SSECustomerKey: key as unknown as string, SSECustomerKeyMD5: md5 })).then(
      () => 'ok',
      (e: { $metadata?: { httpStatusCode?: number }; Code?: string; message?: string }) => [e.$metadata?.httpStatusCode, e.Code, e.message],
    )
    plain.destroy()
    expect(refused).toEqual([400, 'InvalidRequest', 'Requests specifying Server Side Encryption with Customer provided keys must be made over a secure connection.'])
    // Neither the key nor its MD5 is in any file the server keeps.
    for (const f of allFiles(server.dataDir)) {
      const bytes = readFileSync(f)
      expect(bytes.includes(key), f).toBe(false)
      expect(bytes.includes(Buffer.from(key.toString('base64'))), f).toBe(false)
      expect(bytes.includes(Buffer.from(md5)), f).toBe(false)
    }
  })
})
