/**
 * Test helpers for the backend bucket on Ceph RGW: an S3 client with RGW's own credentials (what
 * an operator reads the bucket with), a fresh bucket per suite, and a small HTTP proxy in front
 * of RGW that can answer like a throttling S3 (503 SlowDown) — a failing backend for the store.
 */
import { randomBytes } from 'node:crypto'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  ListMultipartUploadsCommand,
  AbortMultipartUploadCommand,
  ListObjectsV2Command,
  S3Client,
} from '@aws-sdk/client-s3'
import { S3BlobStore, type S3StoreOptions } from '../../src/server/store/s3.js'
import { rgw } from './services.js'

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true'

export function rgwClient(): S3Client {
  const r = rgw()!
  return new S3Client({
    region: 'us-east-1',
    endpoint: r.endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: r.accessKey, secretAccessKey: r.secretKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  })
}

export interface BackendBucket {
  name: string
  client: S3Client
  /** Opens an S3BlobStore on this bucket (the options a gateway would get). */
  store(opts?: Partial<S3StoreOptions>): Promise<S3BlobStore>
  /** Every key in the bucket. */
  keys(prefix?: string): Promise<string[]>
  get(key: string): Promise<Buffer>
  /** Backend multipart uploads still open. */
  openUploads(): Promise<string[]>
  /** Empties and deletes the bucket. */
  drop(): Promise<void>
}

export async function backendBucket(tag = 'b'): Promise<BackendBucket> {
  const r = rgw()!
  const client = rgwClient()
  const name = `s3sse-${tag}-${randomBytes(5).toString('hex')}`
  await client.send(new CreateBucketCommand({ Bucket: name }))
  const keys = async (prefix = '') => {
    const out: string[] = []
    let token: string | undefined
    do {
      const page = await client.send(new ListObjectsV2Command({ Bucket: name, Prefix: prefix, ContinuationToken: token }))
      for (const o of page.Contents ?? []) out.push(o.Key!)
      token = page.IsTruncated ? page.NextContinuationToken : undefined
    } while (token)
    return out
  }
  return {
    name,
    client,
    store: (opts = {}) =>
      S3BlobStore.open({ endpoint: r.endpoint, bucket: name, credentials: { accessKeyId: r.accessKey, secretAccessKey: r.secretKey }, purgeIntervalMs: 0, ...opts }),
    keys,
    async get(key) {
      const o = await client.send(new GetObjectCommand({ Bucket: name, Key: key }))
      return Buffer.from(await o.Body!.transformToByteArray())
    },
    async openUploads() {
      const u = await client.send(new ListMultipartUploadsCommand({ Bucket: name }))
      return (u.Uploads ?? []).map((x) => x.Key!)
    },
    async drop() {
      const u = await client.send(new ListMultipartUploadsCommand({ Bucket: name }))
      for (const x of u.Uploads ?? []) await client.send(new AbortMultipartUploadCommand({ Bucket: name, Key: x.Key!, UploadId: x.UploadId! }))
      const all = await keys()
      for (let i = 0; i < all.length; i += 1000) {
        await client.send(new DeleteObjectsCommand({ Bucket: name, Delete: { Objects: all.slice(i, i + 1000).map((Key) => ({ Key })), Quiet: true } }))
      }
      await client.send(new DeleteBucketCommand({ Bucket: name }))
      client.destroy()
    },
  }
}

/**
 * An HTTP proxy in front of RGW. `throttle(n)` makes it answer the next n requests as a
 * throttling S3 does (503 SlowDown, S3 error XML), without passing them on; `down()` makes it
 * refuse everything the same way until `up()`.
 */
export async function throttlingProxy(): Promise<{ endpoint: string; throttle(n: number): void; down(): void; up(): void; seen: number; refused: number; close(): Promise<void> }> {
  const target = new URL(rgw()!.endpoint)
  let toRefuse = 0
  let always = false
  const state = { seen: 0, refused: 0 }
  const server = http.createServer((req, res) => {
    state.seen++
    if (always || toRefuse > 0) {
      if (!always) toRefuse--
      state.refused++
      req.resume()
      const body = '<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>'
      res.writeHead(503, { 'content-type': 'application/xml', 'content-length': String(body.length) })
      res.end(body)
      return
    }
    const up = http.request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers)
      r.pipe(res)
    })
    up.on('error', () => res.destroy())
    req.pipe(up)
  })
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok))
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    throttle(n) {
      toRefuse = n
    },
    down() {
      always = true
    },
    up() {
      always = false
    },
    get seen() {
      return state.seen
    },
    get refused() {
      return state.refused
    },
    async close() {
      server.closeAllConnections()
      await new Promise<void>((ok) => server.close(() => ok()))
    },
  }
}
