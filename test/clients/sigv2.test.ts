/**
 * Signature Version 2 from the clients that still make it (issue 12 item 6): boto3's default
 * generate_presigned_url and generate_presigned_post, `s3cmd signurl` (which has no SigV4
 * form) and s3cmd with `signature_v2 = True`. In aws mode the server accepts them wherever
 * Amazon S3 does — everything but requests that move SSE-KMS data, which keep their SigV4
 * refusal; in oss mode SigV2 stays refused (the product brief).
 */
import { randomBytes } from 'node:crypto'
import https from 'node:https'
import { readFileSync } from 'node:fs'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { CreateBucketCommand, GetObjectCommand, HeadObjectCommand, PutBucketEncryptionCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3'
import { removeDir, startServer, stopAll, type TestServer } from '../server/helpers.js'
import { cleanupClients, Clients, describeClient, ok } from './harness.js'

const NOT_V4 = 'Requests specifying Server Side Encryption with AWS KMS managed keys require AWS Signature Version 4.'
let aws: TestServer
let oss: TestServer
let s3: S3Client
let s3oss: S3Client
let c: Clients
let cOss: Clients

/** GET a URL over HTTPS trusting the server's certificate. */
function fetchUrl(server: TestServer, url: string, init: { method?: string; body?: Buffer; headers?: Record<string, string> } = {}): Promise<{ status: number; body: Buffer; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method: init.method ?? 'GET', ca: server.ca, headers: init.headers }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (d) => chunks.push(d))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), headers: res.headers }))
    })
    req.on('error', reject)
    req.end(init.body)
  })
}

async function body(out: { Body?: unknown }): Promise<Buffer> {
  return Buffer.from(await (out.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray())
}

describeClient(['boto3', 's3cmd'], 'SigV2 in aws mode (boto3, s3cmd)', () => {
  beforeAll(async () => {
    ;[aws, oss] = await Promise.all([startServer({ args: ['--mode', 'aws'] }), startServer()])
    s3 = aws.client()
    s3oss = oss.client()
    c = new Clients(aws)
    cOss = new Clients(oss, undefined, 'oss')
    for (const client of [s3, s3oss]) {
      await client.send(new CreateBucketCommand({ Bucket: 'v2-plain' }))
      await client.send(new CreateBucketCommand({ Bucket: 'v2-enc' }))
      await client.send(new PutBucketEncryptionCommand({ Bucket: 'v2-enc', ServerSideEncryptionConfiguration: { Rules: [{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms' } }] } }))
      await client.send(new PutObjectCommand({ Bucket: 'v2-plain', Key: 'shared file.txt', Body: 'plain text to share' }))
      await client.send(new PutObjectCommand({ Bucket: 'v2-enc', Key: 'secret.txt', Body: 'encrypted text' }))
    }
  })

  afterAll(async () => {
    s3?.destroy()
    s3oss?.destroy()
    await Promise.all([aws?.stop(), oss?.stop()])
    await stopAll()
    if (aws) removeDir(aws.dataDir)
    if (oss) removeDir(oss.dataDir)
    cleanupClients()
  })

  it("boto3's default generate_presigned_url is SigV2, and it works for a plain object", async () => {
    const urls = await c.boto3<{ get: string; put: string }>(
      [
        'get = s3.generate_presigned_url("get_object", Params={"Bucket": "v2-plain", "Key": "shared file.txt"}, ExpiresIn=600)',
        'put = s3.generate_presigned_url("put_object", Params={"Bucket": "v2-plain", "Key": "uploaded.bin"}, ExpiresIn=600)',
        'print(json.dumps({"get": get, "put": put}))',
      ].join('\n'),
    )
    expect(urls.get).toMatch(/[?&]AWSAccessKeyId=.*&Signature=/)
    const got = await fetchUrl(aws, urls.get)
    expect(got.status).toBe(200)
    expect(got.body.toString()).toBe('plain text to share')
    const data = randomBytes(3000)
    const put = await fetchUrl(aws, urls.put, { method: 'PUT', body: data })
    expect(put.status).toBe(200)
    expect((await body(await s3.send(new GetObjectCommand({ Bucket: 'v2-plain', Key: 'uploaded.bin' })))).equals(data)).toBe(true)
    // A changed URL, or one past its expiry, is refused.
    expect((await fetchUrl(aws, urls.get.replace('shared%20file.txt', 'other.txt'))).status).toBe(403)
    const expired = await c.boto3<string>('print(json.dumps(s3.generate_presigned_url("get_object", Params={"Bucket": "v2-plain", "Key": "shared file.txt"}, ExpiresIn=-10)))')
    const refused = await fetchUrl(aws, expired)
    expect(refused.status).toBe(403)
    expect(refused.body.toString()).toContain('<Code>AccessDenied</Code>')
  })

  it('a SigV2 URL for an SSE-KMS object is refused with the SigV4 message (after its signature is checked)', async () => {
    const url = await c.boto3<string>('print(json.dumps(s3.generate_presigned_url("get_object", Params={"Bucket": "v2-enc", "Key": "secret.txt"}, ExpiresIn=600)))')
    const res = await fetchUrl(aws, url)
    expect(res.status).toBe(400)
    expect(res.body.toString()).toContain(NOT_V4)
    // A forged one hears nothing about the object.
    const forged = await fetchUrl(aws, url.replace(/Signature=[^&]+/, 'Signature=AAAAAAAAAAAAAAAAAAAAAAAAAAA%3D'))
    expect(forged.status).toBe(403)
    expect(forged.body.toString()).toContain('<Code>SignatureDoesNotMatch</Code>')
  })

  it("boto3's default generate_presigned_post (SigV2 policy) uploads into a plain bucket, not an encrypted one", async () => {
    const program = [
      'import urllib.request, ssl, uuid',
      'ctx = ssl.create_default_context(cafile=CA)',
      'def post(bucket, key, data):',
      '    p = s3.generate_presigned_post(bucket, key, ExpiresIn=600)',
      '    boundary = uuid.uuid4().hex',
      '    parts = []',
      '    for k, v in p["fields"].items():',
      '        parts.append(("--%s\\r\\nContent-Disposition: form-data; name=\\"%s\\"\\r\\n\\r\\n%s\\r\\n" % (boundary, k, v)).encode())',
      '    parts.append(("--%s\\r\\nContent-Disposition: form-data; name=\\"file\\"; filename=\\"f.bin\\"\\r\\n\\r\\n" % boundary).encode() + data + ("\\r\\n--%s--\\r\\n" % boundary).encode())',
      '    req = urllib.request.Request(p["url"], data=b"".join(parts), method="POST", headers={"Content-Type": "multipart/form-data; boundary=" + boundary})',
      '    try:',
      '        with urllib.request.urlopen(req, context=ctx) as r:',
      '            return [r.status, sorted(p["fields"].keys()), ""]',
      '    except urllib.error.HTTPError as e:',
      '        return [e.code, sorted(p["fields"].keys()), e.read().decode()]',
      'print(json.dumps([post("v2-plain", "form.bin", b"form data"), post("v2-enc", "form.bin", b"form data")]))',
    ].join('\n')
    const [plain, enc] = await c.boto3<Array<[number, string[], string]>>(program)
    expect(plain[1]).toEqual(['AWSAccessKeyId', 'key', 'policy', 'signature'])
    expect(plain[0]).toBe(204)
    expect((await body(await s3.send(new GetObjectCommand({ Bucket: 'v2-plain', Key: 'form.bin' })))).toString()).toBe('form data')
    expect(enc[0]).toBe(400)
    expect(enc[2]).toContain(NOT_V4)
    expect(await s3.send(new HeadObjectCommand({ Bucket: 'v2-enc', Key: 'form.bin' })).then(() => 'exists', () => 'absent')).toBe('absent')
  })

  it('s3cmd signurl makes a link that works for a plain object (and is refused for an encrypted one)', async () => {
    const url = ok(await c.s3cmd(['signurl', 's3://v2-plain/shared file.txt', '+600']), 's3cmd signurl').stdout.trim()
    expect(url).toMatch(/^https:\/\/.*AWSAccessKeyId=/)
    const got = await fetchUrl(aws, url)
    expect([got.status, got.body.toString()]).toEqual([200, 'plain text to share'])
    const encUrl = ok(await c.s3cmd(['signurl', 's3://v2-enc/secret.txt', '+600'])).stdout.trim()
    const refused = await fetchUrl(aws, encUrl)
    expect(refused.status).toBe(400)
    expect(refused.body.toString()).toContain(NOT_V4)
  })

  it('s3cmd with signature_v2 = True: bucket listing, put, get and delete of plain objects; SSE-KMS data refused', async () => {
    const v2 = c.s3cmdConfig({ signature_v2: 'True' })
    const data = randomBytes(2000)
    c.file('v2.bin', data)
    ok(await c.s3cmd(['put', c.path('v2.bin'), 's3://v2-plain/dir/v2 file.bin'], { config: v2 }), 's3cmd put (SigV2)')
    const ls = ok(await c.s3cmd(['ls', 's3://v2-plain/dir/'], { config: v2 }), 's3cmd ls (SigV2)')
    expect(ls.stdout).toContain('s3://v2-plain/dir/v2 file.bin')
    ok(await c.s3cmd(['get', '--force', 's3://v2-plain/dir/v2 file.bin', c.path('v2.down')], { config: v2 }), 's3cmd get (SigV2)')
    expect(readFileSync(c.path('v2.down')).equals(data)).toBe(true)
    ok(await c.s3cmd(['del', 's3://v2-plain/dir/v2 file.bin'], { config: v2 }), 's3cmd del (SigV2)')
    const refused = await c.s3cmd(['put', c.path('v2.bin'), 's3://v2-enc/v2.bin'], { config: v2 })
    expect(refused.code).not.toBe(0)
    expect(refused.stderr + refused.stdout).toMatch(/InvalidArgument|Signature Version 4/)
    const get = await c.s3cmd(['get', '--force', 's3://v2-enc/secret.txt', c.path('secret.down')], { config: v2 })
    expect(get.code).not.toBe(0)
    expect(get.stderr + get.stdout).toMatch(/400|InvalidArgument/)
  })

  it('oss mode keeps refusing SigV2 (the product brief): an s3cmd signurl link fails', async () => {
    const url = ok(await cOss.s3cmd(['signurl', 's3://v2-plain/shared file.txt', '+600'])).stdout.trim()
    const res = await fetchUrl(oss, url)
    expect(res.status).toBe(400)
    expect(res.body.toString()).toMatch(/Please use AWS4-HMAC-SHA256/)
  })
})
