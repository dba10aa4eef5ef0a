/**
 * A seeded fuzzer over the request parsers of the real server process: XML bodies, SigV4 and
 * SigV2 headers and presigned queries, aws-chunked framing, POST forms and policies, Range,
 * query strings and keys. Most requests are validly signed, so they get past authentication
 * to the parser under test. A run fails on any 500 (or 502+), on a request that gets no
 * answer or hangs, and on a server that dies or lets an error escape its handlers.
 *
 * Bounded for npm test (fixed seed, fixed count); S3SSE_FUZZ_SEED=N picks another seed,
 * S3SSE_SOAK=1 runs 20 times as many requests. A failure prints the seed and the request.
 */
import { createHash, createHmac } from 'node:crypto'
import https from 'node:https'
import tls from 'node:tls'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CreateMultipartUploadCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3'
import { removeDir, ROOT_KEY, ROOT_SECRET, signingKey, signRequest, startServer, stopAll, type TestServer } from '../server/helpers.js'
import { expectAlive, makeBucket } from './helpers.js'
import { Rng, seedFromEnv, soakFactor } from './random.js'

const SEED = seedFromEnv(20261210)
const PER_CATEGORY = 250 * soakFactor()
const REQUEST_TIMEOUT_MS = 20_000
const EMPTY_SHA256 = createHash('sha256').update('').digest('hex')

let server: TestServer
let s3: S3Client
let uploadId = ''
let agent: https.Agent
const failures: string[] = []

beforeAll(async () => {
  server = await startServer()
  s3 = server.client()
  agent = new https.Agent({ ca: server.ca, keepAlive: true, maxSockets: 4 })
  await makeBucket(s3, 'fz-plain', false)
  await makeBucket(s3, 'fz-enc', true)
  for (const b of ['fz-plain', 'fz-enc']) {
    await s3.send(new PutObjectCommand({ Bucket: b, Key: 'obj', Body: Buffer.alloc(200_000, 7) }))
    await s3.send(new PutObjectCommand({ Bucket: b, Key: 'empty', Body: Buffer.alloc(0) }))
  }
  uploadId = (await s3.send(new CreateMultipartUploadCommand({ Bucket: 'fz-enc', Key: 'mp' }))).UploadId!
})

afterAll(async () => {
  agent?.destroy()
  s3?.destroy()
  await stopAll()
  if (server) removeDir(server.dataDir)
})

interface FuzzRequest {
  what: string
  method: string
  path: string
  headers?: Record<string, string>
  body?: Buffer | string
  /** Sign with SigV4 (the headers are signed as given); `payload` is x-amz-content-sha256. */
  sign?: boolean
  payload?: string
}

/** Node's client refuses what no header can carry; keep the rest of the mutation. */
function headerSafe(v: string): string {
  return v.replace(/[^\t\x20-\x7e\x80-\xff]/g, '?')
}

/** Node's client refuses a path with spaces or non-ASCII: percent-encode just those, keep every other mutation. */
function pathSafe(p: string): string {
  return p.replace(/[^\x21-\x7e]/gu, (c) => encodeURIComponent(c).replace(/^%$/, '%25')).replace(/#/g, '%23')
}

function md5b64(b: Buffer | string): string {
  return createHash('md5').update(b).digest('base64')
}

/** Status codes seen, by kind of request (to show the fuzzer gets past authentication). */
const seen = new Map<string, Map<number, number>>()

async function send(r: FuzzRequest): Promise<void> {
  r.path = pathSafe(r.path)
  let headers: Record<string, string> = {}
  for (const [k, v] of Object.entries(r.headers ?? {})) headers[k.toLowerCase()] = headerSafe(v)
  const body = r.body === undefined ? undefined : Buffer.isBuffer(r.body) ? r.body : Buffer.from(r.body)
  if (r.sign) {
    try {
      headers = await signRequest(server, { method: r.method, path: r.path, headers, payloadHash: r.payload ?? (body ? createHash('sha256').update(body).digest('hex') : EMPTY_SHA256) })
    } catch {
      // A path the signer cannot take: send it unsigned.
    }
  }
  if (body !== undefined && headers['content-length'] === undefined) headers['content-length'] = String(body.length)
  const url = new URL(server.httpsUrl)
  const outcome = await new Promise<string | undefined>((resolve) => {
    const timer = setTimeout(() => {
      req.destroy()
      resolve('no answer (hang)')
    }, REQUEST_TIMEOUT_MS)
    const req = https.request({ host: url.hostname, port: url.port, method: r.method, path: r.path, headers, agent }, (res) => {
      res.resume()
      res.on('end', () => {
        clearTimeout(timer)
        const s = res.statusCode ?? 0
        const counts = seen.get(r.what) ?? new Map<number, number>()
        counts.set(s, (counts.get(s) ?? 0) + 1)
        seen.set(r.what, counts)
        resolve(s === 500 || s >= 502 ? `status ${s}` : undefined)
      })
      res.on('error', () => {
        clearTimeout(timer)
        resolve(undefined) // cut mid-body after a status line: the status was fine
      })
    })
    req.on('error', (e) => {
      clearTimeout(timer)
      resolve(`no response: ${e.message}`)
    })
    req.end(body)
  })
  if (outcome) failures.push(`[seed ${SEED}] ${r.what}: ${outcome}\n    ${r.method} ${r.path.slice(0, 300)} ${JSON.stringify(r.headers ?? {}).slice(0, 300)} body=${JSON.stringify(body?.toString('latin1').slice(0, 200))}`)
}

/** Raw bytes over TLS (framing no client library would send): any answer but a 5xx, or a close. */
async function sendRaw(what: string, bytes: Buffer): Promise<void> {
  const outcome = await new Promise<string | undefined>((resolve) => {
    let data = ''
    const socket = tls.connect({ host: '127.0.0.1', port: server.httpsPort, ca: server.ca, servername: 'localhost' }, () => socket.end(bytes))
    const timer = setTimeout(() => {
      socket.destroy()
      resolve('no answer (hang)')
    }, REQUEST_TIMEOUT_MS)
    socket.on('data', (d) => (data += d.toString('latin1')))
    socket.on('error', () => undefined)
    socket.on('close', () => {
      clearTimeout(timer)
      const bad = [...data.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => Number(m[1])).find((s) => s === 500 || s >= 502)
      resolve(bad ? `status ${bad}` : undefined)
    })
  })
  if (outcome) failures.push(`[seed ${SEED}] ${what}: ${outcome}\n    ${JSON.stringify(bytes.toString('latin1').slice(0, 400))}`)
}

// ------------------------------------------------------------------ generators

const KMS_XML = '<ServerSideEncryptionConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>aws:kms</SSEAlgorithm></ApplyServerSideEncryptionByDefault><BucketKeyEnabled>true</BucketKeyEnabled></Rule></ServerSideEncryptionConfiguration>'
const REPLICATION_XML = '<ReplicationConfiguration><Role>arn:aws:iam::1:role/r</Role><Rule><ID>r</ID><Priority>1</Priority><Status>Enabled</Status><Filter><Prefix>a/</Prefix></Filter><DeleteMarkerReplication><Status>Disabled</Status></DeleteMarkerReplication><Destination><Bucket>arn:aws:s3:::fz-plain</Bucket></Destination></Rule></ReplicationConfiguration>'
const DELETE_XML = '<Delete><Quiet>false</Quiet><Object><Key>gone-1</Key></Object><Object><Key>gone-2</Key></Object></Delete>'
const COMPLETE_XML = '<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>"abc"</ETag></Part></CompleteMultipartUpload>'

function xmlBody(rng: Rng, base: string): string {
  switch (rng.int(0, 6)) {
    case 0:
      return rng.mutate(base)
    case 1:
      return rng.mutate(rng.mutate(rng.mutate(base)))
    case 2: // entity expansion (billion laughs) and external entities
      return `<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "${'A'.repeat(rng.int(1, 5000))}"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY x SYSTEM "file:///etc/passwd">]>` + base.replace('>aws:kms<', '>&c;&x;<').replace('>gone-1<', '>&c;<')
    case 3: // deep nesting
      return '<a>'.repeat(rng.int(100, 20000)) + '</a>'.repeat(rng.int(0, 20000))
    case 4:
      return rng.bytes(rng.int(0, 3000)).toString('latin1')
    case 5: // many elements
      return base.replace(/(<Object>.*?<\/Object>|<Part>.*?<\/Part>|<Rule>.*?<\/Rule>)/, (m) => m.repeat(rng.int(1, 3000)))
    default:
      return base.replace(/>[^<]+</, () => `>${rng.nasty()}<`)
  }
}

function xmlCase(rng: Rng): FuzzRequest {
  const target = rng.pick([
    ['PutBucketEncryption', 'PUT', '/fz-plain?encryption', KMS_XML],
    ['PutBucketReplication', 'PUT', '/fz-enc?replication', REPLICATION_XML],
    ['DeleteObjects', 'POST', '/fz-plain?delete', DELETE_XML],
    ['CompleteMultipartUpload', 'POST', `/fz-enc/mp?uploadId=${encodeURIComponent(uploadId)}`, COMPLETE_XML],
  ] as const)
  const body = xmlBody(rng, target[3])
  return { what: `XML ${target[0]}`, method: target[1], path: target[2], body: Buffer.from(body, 'latin1'), headers: { 'content-md5': md5b64(Buffer.from(body, 'latin1')) }, sign: true }
}

function sigV4Case(rng: Rng): FuzzRequest {
  const amzDate = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '')
  const cred = `${ROOT_KEY}/${amzDate.slice(0, 8)}/us-east-1/s3/aws4_request`
  const good = `AWS4-HMAC-SHA256 Credential=${cred}, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=${'0'.repeat(64)}`
  const path = rng.pick(['/fz-enc/obj', '/fz-plain/obj', '/', '/fz-enc', '/fz-enc/obj?uploads'])
  if (rng.chance(0.3)) {
    // Presigned-URL query authentication with mutated parameters.
    const params: Record<string, string> = {
      'X-Amz-Algorithm': 'AWS4-HMAC-SHA256', 'X-Amz-Credential': cred, 'X-Amz-Date': amzDate, 'X-Amz-Expires': '300',
      'X-Amz-SignedHeaders': 'host', 'X-Amz-Signature': 'ab'.repeat(32),
    }
    const name = rng.pick(Object.keys(params))
    params[name] = rng.chance(0.5) ? rng.mutate(params[name]) : rng.nasty()
    if (rng.chance(0.2)) delete params[rng.pick(Object.keys(params))]
    const q = Object.entries(params).map(([k, v]) => `${k}=${rng.chance(0.8) ? encodeURIComponent(v) : v}`).join('&')
    return { what: 'SigV4 presigned query', method: rng.pick(['GET', 'PUT', 'HEAD', 'DELETE']), path: `${path}${path.includes('?') ? '&' : '?'}${q}` }
  }
  const headers: Record<string, string> = {
    authorization: rng.chance(0.7) ? rng.mutate(good) : rng.nasty(),
    'x-amz-date': rng.chance(0.8) ? amzDate : rng.nasty(),
    'x-amz-content-sha256': rng.pick([EMPTY_SHA256, 'UNSIGNED-PAYLOAD', 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD', 'STREAMING-UNSIGNED-PAYLOAD-TRAILER', 'STREAMING-X', rng.nasty()]),
  }
  if (rng.chance(0.2)) headers.date = rng.nasty()
  return { what: 'SigV4 Authorization header', method: rng.pick(['GET', 'PUT', 'HEAD', 'POST', 'DELETE']), path, headers }
}

function sigV2Case(rng: Rng): FuzzRequest {
  const path = rng.pick(['/fz-enc/obj', '/fz-plain/obj', '/fz-enc/missing', '/nobucket/x'])
  if (rng.chance(0.5)) {
    const q = `AWSAccessKeyId=${encodeURIComponent(rng.chance(0.5) ? ROOT_KEY : rng.nasty())}&Expires=${encodeURIComponent(rng.nasty())}&Signature=${encodeURIComponent(rng.nasty())}`
    return { what: 'SigV2 query', method: rng.pick(['GET', 'PUT', 'HEAD']), path: `${path}?${q}` }
  }
  return { what: 'SigV2 header', method: rng.pick(['GET', 'PUT', 'HEAD', 'DELETE']), path, headers: { authorization: rng.mutate(`AWS ${ROOT_KEY}:c2lnbmF0dXJl`), date: new Date().toUTCString() } }
}

/** A streaming upload: signed chunks (with their chain of signatures) or unsigned with a trailer, then mutated framing. */
async function chunkedCase(rng: Rng): Promise<FuzzRequest> {
  const signed = rng.chance(0.5)
  const key = `/${rng.pick(['fz-plain', 'fz-enc'])}/chunked-${rng.int(0, 20)}`
  // Signed chunks other than the last are at least 8 KiB (S3's rule, InvalidChunkSizeError
  // otherwise): a signed body is one chunk, or 8 KiB and the rest.
  const data = rng.bytes(rng.int(0, 3000) + (signed && rng.chance(0.5) ? 8192 : 0))
  const pieces = [data.subarray(0, signed ? (data.length > 8192 ? 8192 : data.length) : rng.int(0, data.length))]
  pieces.push(data.subarray(pieces[0].length))
  const payload = signed ? 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD' : 'STREAMING-UNSIGNED-PAYLOAD-TRAILER'
  const headers: Record<string, string> = {
    'content-encoding': 'aws-chunked',
    'x-amz-decoded-content-length': String(data.length),
    ...(signed ? {} : { 'x-amz-trailer': 'x-amz-checksum-crc32' }),
  }
  const signedHeaders = await signRequest(server, { method: 'PUT', path: key, headers, payloadHash: payload })
  let body = ''
  if (signed) {
    const amzDate = signedHeaders['x-amz-date']
    const scope = `${amzDate.slice(0, 8)}/us-east-1/s3/aws4_request`
    const k = signingKey(ROOT_SECRET, amzDate.slice(0, 8))
    let prev = /Signature=([0-9a-f]+)/.exec(signedHeaders.authorization)![1]
    for (const p of [...pieces, Buffer.alloc(0)]) {
      const toSign = `AWS4-HMAC-SHA256-PAYLOAD\n${amzDate}\n${scope}\n${prev}\n${EMPTY_SHA256}\n${createHash('sha256').update(p).digest('hex')}`
      prev = createHmac('sha256', k).update(toSign).digest('hex')
      body += `${p.length.toString(16)};chunk-signature=${prev}\r\n${p.toString('latin1')}\r\n`
    }
    body = body.slice(0, -2) + '\r\n'
  } else {
    for (const p of pieces) body += `${p.length.toString(16)}\r\n${p.toString('latin1')}\r\n`
    body += `0\r\nx-amz-checksum-crc32:${rng.pick(['AAAAAA==', 'not base64', ''])}\r\n\r\n`
  }
  switch (rng.int(0, 5)) {
    case 0:
      body = rng.mutate(body)
      break
    case 1:
      body = body.replace(/^[0-9a-f]+/, rng.pick(['ffffffffffffffff', 'fffffffffffffffff', '-1', 'zz', '', '0', '1'.repeat(9000)]))
      break
    case 2:
      body = body.replace(/\r\n/g, () => (rng.chance(0.3) ? '\n' : '\r\n'))
      break
    case 3:
      body = body.slice(0, rng.int(0, body.length))
      break
    case 4:
      body += rng.nasty()
      break
    default:
      break // well-formed: must store
  }
  if (rng.chance(0.2)) signedHeaders['x-amz-decoded-content-length'] = rng.nasty()
  return { what: `aws-chunked ${signed ? 'signed' : 'unsigned trailer'}`, method: 'PUT', path: key, headers: signedHeaders, body: Buffer.from(body, 'latin1') }
}

/** A POST form with a policy signed by root, then mutated in its fields, policy or framing. */
function postCase(rng: Rng): FuzzRequest {
  const amzDate = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '')
  const credential = `${ROOT_KEY}/${amzDate.slice(0, 8)}/us-east-1/s3/aws4_request`
  const conditions: unknown[] = [{ bucket: 'fz-enc' }, ['starts-with', '$key', 'up/'], { 'x-amz-algorithm': 'AWS4-HMAC-SHA256' }, { 'x-amz-credential': credential }, { 'x-amz-date': amzDate }, ['content-length-range', 0, 4096]]
  let policy = JSON.stringify({ expiration: new Date(Date.now() + 600_000).toISOString(), conditions })
  if (rng.chance(0.5)) policy = rng.mutate(policy)
  const policyB64 = Buffer.from(policy).toString('base64')
  const signature = createHmac('sha256', signingKey(ROOT_SECRET, amzDate.slice(0, 8))).update(policyB64).digest('hex')
  const fields: Array<[string | undefined, string]> = [
    ['key', rng.chance(0.8) ? 'up/${filename}' : rng.nasty()], ['x-amz-algorithm', 'AWS4-HMAC-SHA256'], ['x-amz-credential', credential],
    ['x-amz-date', amzDate], ['policy', policyB64], ['x-amz-signature', signature],
  ]
  if (rng.chance(0.3)) fields.push([rng.pick(['x-amz-meta-a', 'content-type', 'success_action_status', 'success_action_redirect', 'x-amz-server-side-encryption', undefined, '']), rng.nasty()])
  if (rng.chance(0.3)) {
    const i = rng.int(0, fields.length - 1)
    fields[i] = [fields[i][0], rng.mutate(fields[i][1])]
  }
  const boundary = rng.chance(0.9) ? 'fzBoundary' + rng.int(0, 1e6) : rng.nasty()
  let body = ''
  for (const [name, value] of fields) body += `--${boundary}\r\nContent-Disposition: form-data${name === undefined ? '' : `; name="${name}"`}\r\n\r\n${value}\r\n`
  const file = rng.bytes(rng.int(0, rng.chance(0.1) ? 9000 : 2000)).toString('latin1')
  body += `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${rng.chance(0.8) ? 'f.bin' : rng.nasty()}"\r\nContent-Type: application/octet-stream\r\n\r\n${file}\r\n--${boundary}--\r\n`
  switch (rng.int(0, 4)) {
    case 0:
      body = body.slice(0, rng.int(0, body.length))
      break
    case 1:
      body = rng.mutate(body)
      break
    case 2:
      body = body.replace(/\r\n/g, () => (rng.chance(0.2) ? '\n' : '\r\n'))
      break
    default:
      break
  }
  const contentType = rng.chance(0.9) ? `multipart/form-data; boundary=${boundary}` : rng.mutate(`multipart/form-data; boundary=${boundary}`)
  return { what: 'POST form', method: 'POST', path: rng.pick(['/fz-enc', '/fz-plain', '/fz-missing']), headers: { 'content-type': contentType }, body: Buffer.from(body, 'latin1') }
}

function rangeCase(rng: Rng): FuzzRequest {
  const n = () => rng.pick([String(rng.int(0, 300_000)), '', '-1', '18446744073709551616', '9'.repeat(30), ' 5', '0x10', '1e3'])
  const range = rng.pick([
    () => `bytes=${n()}-${n()}`, () => `bytes=-${n()}`, () => `bytes=${n()}-`, () => `bytes=${n()}-${n()},${n()}-${n()}`,
    () => `bytes ${n()}-${n()}`, () => `items=${n()}-${n()}`, () => rng.nasty(), () => `bytes=${n()}-${n()}`.repeat(rng.int(2, 200)),
  ])()
  const key = rng.pick(['/fz-enc/obj', '/fz-plain/obj', '/fz-enc/empty', '/fz-plain/empty'])
  const query = rng.chance(0.2) ? `?partNumber=${encodeURIComponent(rng.nasty())}` : ''
  const headers: Record<string, string> = { range }
  if (rng.chance(0.2)) headers[rng.pick(['if-match', 'if-none-match', 'if-modified-since', 'if-unmodified-since'])] = rng.nasty()
  return { what: 'Range', method: rng.pick(['GET', 'HEAD']), path: key + query, headers, sign: true, payload: EMPTY_SHA256 }
}

function queryCase(rng: Rng): FuzzRequest {
  const names = ['list-type', 'max-keys', 'marker', 'prefix', 'delimiter', 'continuation-token', 'start-after', 'encoding-type', 'fetch-owner',
    'uploads', 'uploadId', 'partNumber', 'max-parts', 'part-number-marker', 'key-marker', 'upload-id-marker', 'versions', 'versionId',
    'version-id-marker', 'location', 'versioning', 'encryption', 'replication', 'acl', 'tagging', 'delete', 'response-content-type',
    'response-expires', 'x-id', rng.text(rng.int(1, 12))]
  const parts: string[] = []
  for (let i = rng.int(1, 5); i > 0; i--) {
    const name = rng.pick(names)
    const value = rng.chance(0.3) ? '' : rng.nasty()
    parts.push(rng.chance(0.85) ? `${encodeURIComponent(name)}=${encodeURIComponent(value)}` : `${name}=${value.replace(/[#\s]/g, '')}`)
  }
  const path = rng.pick(['/fz-enc', '/fz-plain', '/fz-enc/obj', '/fz-enc/mp', '/'])
  return { what: 'query string', method: rng.pick(['GET', 'GET', 'HEAD', 'PUT', 'POST', 'DELETE']), path: `${path}?${parts.join('&')}`, sign: true, payload: EMPTY_SHA256 }
}

function keyCase(rng: Rng): FuzzRequest {
  let key = rng.pick([
    () => rng.nasty(), () => rng.text(rng.int(1, 300)), () => '\u2603/\ud83d\ude00/' + rng.text(5), () => 'a'.repeat(rng.int(1000, 1100)),
    () => String.fromCharCode(rng.int(0, 31)) + 'k', () => '../' + rng.text(4), () => rng.bytes(rng.int(1, 30)).toString('latin1'),
  ])()
  if (key === '') key = 'k'
  const raw = rng.chance(0.8) ? encodeURIComponent(key).replace(/%2F/g, '/') : key.replace(/[^\x21-\x7e]/g, '%').replace(/[#?]/g, '%23')
  const bucket = rng.pick(['fz-enc', 'fz-plain'])
  const method = rng.pick(['PUT', 'GET', 'HEAD', 'DELETE', 'PUT'])
  const headers: Record<string, string> = {}
  if (method === 'PUT' && rng.chance(0.4)) headers['x-amz-copy-source'] = rng.chance(0.5) ? `${rng.pick(['fz-enc', 'fz-plain', 'nope'])}/${rng.chance(0.5) ? 'obj' : raw}` : rng.nasty()
  if (method === 'PUT' && rng.chance(0.2)) headers['x-amz-copy-source-range'] = `bytes=${rng.nasty()}`
  if (rng.chance(0.2)) headers[`x-amz-meta-${rng.text(3, 'abcxyz')}`] = rng.nasty()
  if (rng.chance(0.2)) headers[rng.pick(['content-md5', 'x-amz-checksum-crc32', 'x-amz-checksum-sha256', 'x-amz-sdk-checksum-algorithm', 'x-amz-metadata-directive', 'x-amz-server-side-encryption', 'if-none-match', 'content-type'])] = rng.nasty()
  const body = method === 'PUT' && !headers['x-amz-copy-source'] ? rng.bytes(rng.int(0, 500)) : undefined
  return { what: 'keys', method, path: `/${bucket}/${raw}`, headers, body, sign: true }
}

// ------------------------------------------------------------------ the run

describe(`fuzzing the request parsers (seed ${SEED}, ${PER_CATEGORY} requests per kind)`, () => {
  const kinds: Array<[string, (rng: Rng) => FuzzRequest | Promise<FuzzRequest>]> = [
    ['XML bodies', xmlCase],
    ['SigV4 headers and presigned queries', sigV4Case],
    ['SigV2 headers and queries', sigV2Case],
    ['aws-chunked framing', chunkedCase],
    ['POST forms and policies', postCase],
    ['Range and conditional headers', rangeCase],
    ['query strings', queryCase],
    ['keys and copy sources', keyCase],
  ]
  kinds.forEach(([name, make], index) => {
    it(`${name}: no 500, no hang, no crash`, async () => {
      const rng = new Rng(SEED + index * 7919)
      const before = failures.length
      // Four in flight at a time: concurrency is part of what is being tried.
      let next = 0
      const worker = async () => {
        while (next < PER_CATEGORY) {
          next++
          await send(await make(rng))
        }
      }
      await Promise.all([worker(), worker(), worker(), worker()])
      await expectAlive(server, `during ${name} (seed ${SEED})`)
      expect(failures.slice(before), failures.slice(before).join('\n')).toEqual([])
    }, 240_000)
  })

  it('raw HTTP framing: no 500, no hang, no crash', async () => {
    const rng = new Rng(SEED + 104729)
    const before = failures.length
    for (let i = 0; i < PER_CATEGORY; i++) {
      let req = `${rng.pick(['GET', 'PUT', 'POST', 'HEAD', 'DELETE', 'PATCH', 'GE T', ''])} ${rng.pick(['/fz-enc/obj', '/', '*', 'http://x/y', '/fz-plain/' + rng.nasty(), ''])} HTTP/1.1\r\nHost: localhost\r\n`
      if (rng.chance(0.5)) req += `Content-Length: ${rng.pick(['5', '-1', '99999999999999999999', 'abc', '5, 6'])}\r\n`
      if (rng.chance(0.3)) req += `Transfer-Encoding: ${rng.pick(['chunked', 'gzip, chunked', 'identity', 'chunked, chunked'])}\r\n`
      if (rng.chance(0.3)) req += `${rng.text(rng.int(1, 20))}: ${rng.nasty()}\r\n`
      req += '\r\n' + rng.pick(['hello', '5\r\nhello\r\n0\r\n\r\n', 'zz\r\n', ''])
      await sendRaw('raw framing', Buffer.from(rng.chance(0.8) ? req : rng.mutate(req), 'latin1'))
    }
    await expectAlive(server)
    expect(failures.slice(before), failures.slice(before).join('\n')).toEqual([])
  }, 240_000)

  it('most signed requests got past authentication to the parser under test', () => {
    const summary = [...seen].map(([what, counts]) => `${what}: ${[...counts].sort((a, b) => a[0] - b[0]).map(([s, n]) => `${s}×${n}`).join(' ')}`)
    console.log(`fuzz seed ${SEED}\n  ` + summary.join('\n  '))
    for (const what of ['XML PutBucketEncryption', 'XML DeleteObjects', 'aws-chunked signed', 'aws-chunked unsigned trailer', 'POST form', 'Range', 'query string', 'keys']) {
      const counts = seen.get(what)
      expect(counts, what).toBeDefined()
      const total = [...counts!.values()].reduce((a, b) => a + b, 0)
      const denied = (counts!.get(403) ?? 0)
      expect(denied / total, `${what}: mostly refused at authentication`).toBeLessThan(0.5)
    }
  })

  it('the server let no error escape its handlers', async () => {
    const metrics = await new Promise<string>((resolve, reject) => {
      https.get({ host: '127.0.0.1', port: server.httpsPort, path: '/-/metrics', ca: server.ca, servername: 'localhost' }, (res) => {
        let t = ''
        res.on('data', (d) => (t += d))
        res.on('end', () => resolve(t))
      }).on('error', reject)
    })
    expect(metrics).toMatch(/^s3sse_escaped_errors_total 0$/m)
    expect(server.output()).not.toMatch(/uncaught exception|unhandled rejection|unhandled:/)
  })
})
