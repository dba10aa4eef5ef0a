/**
 * Nothing about an object — not even whether it exists or is encrypted — is told before the
 * request is authenticated and authorised, and nothing the server stores is readable by
 * other local users (issue 10, items 7, 8, 10). Against the real server process.
 */
import { mkdirSync, statSync, chmodSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CopyObjectCommand, CreateMultipartUploadCommand, GetObjectCommand, PutObjectCommand, UploadPartCommand, type S3Client } from '@aws-sdk/client-s3'
import { allFiles, rawRequest, removeDir, ROOT_KEY, runCli, startServer, stopAll, tempDir, type TestServer } from '../server/helpers.js'
import { makeBucket } from './helpers.js'

let server: TestServer
let root: S3Client
let bob: S3Client
let alice: S3Client
let aliceHttp: S3Client
let bobKeys: { accessKeyId: string; secretAccessKey: string }
const dirs: string[] = []

async function addUser(name: string): Promise<{ accessKeyId: string; secretAccessKey: string }> {
  const out = await runCli(['user', 'add', name, '--data-dir', server.dataDir])
  expect(out.code, out.stderr).toBe(0)
  return { accessKeyId: /access key: (\S+)/.exec(out.stdout)![1], secretAccessKey: /secret key: (\S+)/.exec(out.stdout)![1] }
}

beforeAll(async () => {
  server = await startServer()
  dirs.push(server.dataDir)
  root = server.client()
  bobKeys = await addUser('bob')
  const aliceKeys = await addUser('alice')
  bob = server.client(bobKeys)
  alice = server.client(aliceKeys)
  aliceHttp = server.client({ ...aliceKeys, http: true })
  await makeBucket(bob, 'bob-secret', true)
  await makeBucket(bob, 'bob-plain', false)
  await makeBucket(alice, 'alice-own', false)
  await bob.send(new PutObjectCommand({ Bucket: 'bob-secret', Key: 'enc', Body: 'encrypted' }))
  await bob.send(new PutObjectCommand({ Bucket: 'bob-plain', Key: 'plain', Body: 'plain' }))
})

afterAll(async () => {
  for (const c of [root, bob, alice, aliceHttp]) c?.destroy()
  await stopAll()
  dirs.forEach(removeDir)
})

/** What a response tells: status, code, message (request ids and resource names aside). */
async function answer(p: Promise<unknown>): Promise<string> {
  try {
    await p
    return 'success'
  } catch (err) {
    const e = err as { Code?: string; name?: string; message?: string; $metadata?: { httpStatusCode?: number } }
    return `${e.$metadata?.httpStatusCode} ${e.Code ?? e.name}: ${e.message}`
  }
}

function rawAnswer(res: { status: number; body: Buffer }): string {
  const body = res.body.toString()
  return `${res.status} ${/<Code>([^<]*)</.exec(body)?.[1]}: ${/<Message>([^<]*)</.exec(body)?.[1]}`
}

describe('an outsider learns nothing about objects', () => {
  const targets = [
    ['an encrypted object', '/bob-secret/enc'],
    ['a plain object', '/bob-plain/plain'],
    ['a missing key in an encrypted bucket', '/bob-secret/missing'],
    ['a missing key in a plain bucket', '/bob-plain/missing'],
    ['a missing bucket', '/no-such-bucket-xyz/enc'],
  ] as const

  for (const [how, headers, query] of [
    ['an unverifiable SigV2 Authorization header', { authorization: 'AWS x:y', date: new Date().toUTCString() }, ''],
    ['a SigV2 header naming a real access key', { authorization: `AWS ${ROOT_KEY}:c2lnbmF0dXJl`, date: new Date().toUTCString() }, ''],
    ['SigV2 query authentication', {}, `?AWSAccessKeyId=${ROOT_KEY}&Expires=9999999999&Signature=abc`],
  ] as const) {
    it(`${how}: the same answer for every object, over HTTPS and HTTP, GET and PUT`, async () => {
      for (const plain of [false, true]) {
        for (const method of ['GET', 'PUT']) {
          const seen = new Set<string>()
          for (const [, path] of targets) {
            const res = await rawRequest(server, { method, path: path + query, headers: { ...headers, ...(method === 'PUT' ? { 'content-length': '5' } : {}) }, body: method === 'PUT' ? 'hello' : undefined, plain })
            seen.add(rawAnswer(res))
          }
          expect([...seen], `${method} over ${plain ? 'HTTP' : 'HTTPS'}`).toHaveLength(1)
          expect([...seen][0]).toMatch(/^400 InvalidRequest: .*AWS4-HMAC-SHA256/)
        }
      }
    })
  }
})

describe('an authenticated non-owner learns nothing about another user\'s objects', () => {
  it('GET over plain HTTP: AccessDenied for an encrypted object, a plain one and a missing one alike', async () => {
    const answers = new Set<string>()
    for (const [Bucket, Key] of [['bob-secret', 'enc'], ['bob-secret', 'missing'], ['bob-plain', 'plain'], ['bob-plain', 'missing']]) {
      answers.add(await answer(aliceHttp.send(new GetObjectCommand({ Bucket, Key }))))
    }
    expect([...answers]).toEqual(['403 AccessDenied: Access Denied'])
  })

  it('CopyObject out of, and PutObject into, another user\'s bucket over HTTP: AccessDenied whatever its encryption', async () => {
    const copies = new Set<string>()
    for (const src of ['bob-secret/enc', 'bob-secret/missing', 'bob-plain/plain']) {
      copies.add(await answer(aliceHttp.send(new CopyObjectCommand({ Bucket: 'alice-own', Key: 'stolen', CopySource: src }))))
    }
    expect([...copies]).toEqual(['403 AccessDenied: Access Denied'])
    const puts = new Set<string>()
    for (const Bucket of ['bob-secret', 'bob-plain']) puts.add(await answer(aliceHttp.send(new PutObjectCommand({ Bucket, Key: 'x', Body: 'x' }))))
    expect([...puts]).toEqual(['403 AccessDenied: Access Denied'])
  })

  it('UploadPart into another user\'s encrypted upload over HTTP: AccessDenied, as for one that does not exist', async () => {
    const upload = await bob.send(new CreateMultipartUploadCommand({ Bucket: 'bob-secret', Key: 'mp' }))
    const real = await answer(aliceHttp.send(new UploadPartCommand({ Bucket: 'bob-secret', Key: 'mp', UploadId: upload.UploadId, PartNumber: 1, Body: 'x' })))
    const fake = await answer(aliceHttp.send(new UploadPartCommand({ Bucket: 'bob-secret', Key: 'mp', UploadId: 'no-such-upload', PartNumber: 1, Body: 'x' })))
    expect([real, fake]).toEqual(['403 AccessDenied: Access Denied', '403 AccessDenied: Access Denied'])
  })

  it('the owner still hears the transport rule, in S3\'s words', async () => {
    for (const keys of [bobKeys, {}]) {
      // bob owns the bucket; root administers every bucket.
      const ownerHttp = server.client({ ...keys, http: true })
      expect(await answer(ownerHttp.send(new GetObjectCommand({ Bucket: 'bob-secret', Key: 'enc' })))).toMatch(/^400 InvalidArgument: .*must be made over a secure connection/)
      expect(await answer(ownerHttp.send(new GetObjectCommand({ Bucket: 'bob-secret', Key: 'missing' })))).toMatch(/^404 NoSuchKey/)
      ownerHttp.destroy()
    }
  })
})

describe('files are private to the server\'s user', () => {
  it('every file it writes is 0600 and every directory 0700', async () => {
    await bob.send(new PutObjectCommand({ Bucket: 'bob-plain', Key: 'more', Body: 'x'.repeat(1000) }))
    const loose = allFiles(server.dataDir).filter((f) => (statSync(f).mode & 0o077) !== 0)
    expect(loose.map((f) => `${f} ${(statSync(f).mode & 0o777).toString(8)}`)).toEqual([])
    for (const d of [server.dataDir, join(server.dataDir, 'objects'), join(server.dataDir, 'tmp'), join(server.dataDir, 'kms')]) {
      expect((statSync(d).mode & 0o777).toString(8), d).toBe('700')
    }
  })

  it('a data dir that others can read is made private at start, with a warning', async () => {
    const dataDir = tempDir()
    dirs.push(dataDir)
    mkdirSync(dataDir, { recursive: true })
    chmodSync(dataDir, 0o755)
    const s = await startServer({ dataDir })
    expect((statSync(dataDir).mode & 0o777).toString(8)).toBe('700')
    expect(s.output()).toMatch(/warning: .*data dir .* mode 755.*700/i)
    await s.stop()
  })
})
