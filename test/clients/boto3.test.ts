/**
 * boto3 (Debian's python3-boto3) against the real server over HTTPS, SigV4 (the client's
 * default for requests): the calls Python programs make, multipart through s3transfer with
 * a small threshold, keys that need escaping in DeleteObjects, and SSE-KMS headers in aws
 * mode.
 */
import { afterAll, beforeAll, expect, it } from 'vitest'
import { removeDir, startServer, stopAll, type TestServer } from '../server/helpers.js'
import { cleanupClients, Clients, describeClient } from './harness.js'

let server: TestServer
let c: Clients

describeClient('boto3', 'boto3 against s3-sse', () => {
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

  it('creates a bucket, puts, heads, gets, lists, copies and deletes', async () => {
    const r = await c.boto3<Record<string, unknown>>(
      [
        's3.create_bucket(Bucket="boto-basic")',
        'put = s3.put_object(Bucket="boto-basic", Key="dir/hello ü.txt", Body=b"hello boto", ContentType="text/plain", Metadata={"k": "v"})',
        'head = s3.head_object(Bucket="boto-basic", Key="dir/hello ü.txt")',
        'got = s3.get_object(Bucket="boto-basic", Key="dir/hello ü.txt")["Body"].read().decode()',
        'rng = s3.get_object(Bucket="boto-basic", Key="dir/hello ü.txt", Range="bytes=6-9")["Body"].read().decode()',
        's3.copy_object(Bucket="boto-basic", Key="copy.txt", CopySource={"Bucket": "boto-basic", "Key": "dir/hello ü.txt"})',
        'listed = [o["Key"] for o in s3.list_objects_v2(Bucket="boto-basic")["Contents"]]',
        'pages = [len(p.get("Contents", [])) for p in s3.get_paginator("list_objects_v2").paginate(Bucket="boto-basic", PaginationConfig={"PageSize": 1})]',
        's3.delete_object(Bucket="boto-basic", Key="copy.txt")',
        'after = [o["Key"] for o in s3.list_objects_v2(Bucket="boto-basic").get("Contents", [])]',
        'print(json.dumps({"etag": put["ETag"], "type": head["ContentType"], "meta": head["Metadata"], "got": got, "range": rng, "listed": listed, "pages": pages, "after": after}))',
      ].join('\n'),
    )
    expect(r).toEqual({
      // The MD5 of "hello boto".
      etag: '"1faf9da7f27a30804a012eb696016bf5"',
      type: 'text/plain',
      meta: { k: 'v' },
      got: 'hello boto',
      range: 'boto',
      listed: ['copy.txt', 'dir/hello ü.txt'],
      pages: [1, 1],
      after: ['dir/hello ü.txt'],
    })
  })

  it('uploads and downloads over the multipart threshold with s3transfer (upload_file / download_file)', async () => {
    const r = await c.boto3<{ etag: string; same: boolean; parts: number }>(
      [
        'import os, hashlib',
        'from boto3.s3.transfer import TransferConfig',
        'cfg = TransferConfig(multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024, max_concurrency=2)',
        's3.create_bucket(Bucket="boto-mp")',
        'data = os.urandom(11 * 1024 * 1024)',
        'open("up.bin", "wb").write(data)',
        's3.upload_file("up.bin", "boto-mp", "big.bin", Config=cfg)',
        's3.download_file("boto-mp", "big.bin", "down.bin", Config=cfg)',
        'head = s3.head_object(Bucket="boto-mp", Key="big.bin", PartNumber=1)',
        'print(json.dumps({"etag": head["ETag"], "same": open("down.bin", "rb").read() == data, "parts": head.get("PartsCount", 0)}))',
      ].join('\n'),
    )
    expect(r.same).toBe(true)
    expect(r.etag).toMatch(/-3"$/)
    expect(r.parts).toBe(3)
  })

  it('delete_objects with keys that XML has to escape deletes every one of them', async () => {
    const keys = ["it's.txt", 'a&b.txt', '<tag>.txt', 'quote".txt', 'tab\tkey', 'plain.txt']
    const r = await c.boto3<{ deleted: string[]; errors: unknown[]; left: string[] }>(
      [
        's3.create_bucket(Bucket="boto-names")',
        'for k in ARGS: s3.put_object(Bucket="boto-names", Key=k, Body=k.encode())',
        'res = s3.delete_objects(Bucket="boto-names", Delete={"Objects": [{"Key": k} for k in ARGS]})',
        'left = [o["Key"] for o in s3.list_objects_v2(Bucket="boto-names").get("Contents", [])]',
        'print(json.dumps({"deleted": sorted(d["Key"] for d in res.get("Deleted", [])), "errors": res.get("Errors", []), "left": left}))',
      ].join('\n'),
      keys,
    )
    expect(r.errors).toEqual([])
    expect(r.deleted).toEqual([...keys].sort())
    expect(r.left).toEqual([])
  })

  it('aws mode: SSE-KMS and SSE-S3 requested on put, reported back on head and read back', async () => {
    const r = await c.boto3<Record<string, string>>(
      [
        's3.create_bucket(Bucket="boto-sse")',
        'kms = s3.put_object(Bucket="boto-sse", Key="kms.txt", Body=b"secret", ServerSideEncryption="aws:kms")',
        'aes = s3.put_object(Bucket="boto-sse", Key="aes.txt", Body=b"secret", ServerSideEncryption="AES256")',
        'hk = s3.head_object(Bucket="boto-sse", Key="kms.txt")',
        'ha = s3.head_object(Bucket="boto-sse", Key="aes.txt")',
        'body = s3.get_object(Bucket="boto-sse", Key="kms.txt")["Body"].read().decode()',
        'print(json.dumps({"put": kms["ServerSideEncryption"], "head": hk["ServerSideEncryption"], "aes": ha["ServerSideEncryption"], "body": body}))',
      ].join('\n'),
    )
    expect(r).toEqual({ put: 'aws:kms', head: 'aws:kms', aes: 'AES256', body: 'secret' })
  })

  it('errors come back as the S3 codes botocore knows', async () => {
    const r = await c.boto3<string[]>(
      [
        'codes = []',
        'for call in [lambda: s3.get_object(Bucket="boto-basic", Key="missing"), lambda: s3.head_bucket(Bucket="no-such-bucket-x"), lambda: s3.abort_multipart_upload(Bucket="boto-basic", Key="k", UploadId="nope")]:',
        '    try:',
        '        call()',
        '        codes.append("ok")',
        '    except botocore.exceptions.ClientError as e:',
        '        codes.append(e.response["Error"]["Code"])',
        'print(json.dumps(codes))',
      ].join('\n'),
    )
    expect(r).toEqual(['NoSuchKey', '404', 'NoSuchUpload'])
  })

  it('tags given at CreateMultipartUpload land on the completed object; TagCount on GET', async () => {
    const r = await c.boto3<{ tags: unknown; count: number }>(
      [
        's3.create_bucket(Bucket="boto-tags")',
        'mp = s3.create_multipart_upload(Bucket="boto-tags", Key="mp.bin", Tagging="source=camera&year=2026")',
        'p = s3.upload_part(Bucket="boto-tags", Key="mp.bin", UploadId=mp["UploadId"], PartNumber=1, Body=b"x" * 1000)',
        's3.complete_multipart_upload(Bucket="boto-tags", Key="mp.bin", UploadId=mp["UploadId"], MultipartUpload={"Parts": [{"ETag": p["ETag"], "PartNumber": 1}]})',
        'tags = s3.get_object_tagging(Bucket="boto-tags", Key="mp.bin")["TagSet"]',
        'count = s3.get_object(Bucket="boto-tags", Key="mp.bin")["TagCount"]',
        'print(json.dumps({"tags": tags, "count": count}))',
      ].join('\n'),
    )
    expect(r).toEqual({ tags: [{ Key: 'source', Value: 'camera' }, { Key: 'year', Value: '2026' }], count: 2 })
  })
})
