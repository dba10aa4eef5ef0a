/**
 * A metadata row that disagrees with its object's authenticated manifest (issue 10, item 2):
 * the reader takes every size from the manifest and compares the row with it, so a tampered
 * `size`, `parts_count` or `encryption` column is an error — never a short, long or
 * unencrypted-over-HTTP answer. Against the real server process, editing meta.sqlite beside it.
 */
import Database from 'better-sqlite3'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CopyObjectCommand, GetObjectCommand, HeadObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3'
import { removeDir, startServer, stopAll, type TestServer } from '../server/helpers.js'
import { expectAlive, makeBucket } from './helpers.js'

let server: TestServer
let s3: S3Client
const BODY = Buffer.alloc(200_000, 9)

beforeAll(async () => {
  server = await startServer()
  s3 = server.client()
  await makeBucket(s3, 'tamper-enc', true)
  await makeBucket(s3, 'tamper-plain', false)
})

afterAll(async () => {
  s3?.destroy()
  await stopAll()
  if (server) removeDir(server.dataDir)
})

/** Changes one object's row as someone with write access to meta.sqlite could. */
function editRow(bucket: string, key: string, set: string, ...values: unknown[]): void {
  const db = new Database(join(server.dataDir, 'meta.sqlite'))
  try {
    const r = db.prepare(`UPDATE objects SET ${set} WHERE bucket = ? AND key = ?`).run(...values, bucket, key)
    expect(r.changes).toBe(1)
  } finally {
    db.close()
  }
}

async function outcome(p: Promise<unknown>): Promise<string> {
  try {
    const out = (await p) as { Body?: { transformToByteArray(): Promise<Uint8Array> } }
    const bytes = out.Body ? await out.Body.transformToByteArray() : new Uint8Array()
    return `ok ${bytes.length}`
  } catch (err) {
    const e = err as { name?: string; Code?: string; $metadata?: { httpStatusCode?: number } }
    return `${e.$metadata?.httpStatusCode ?? 'broken'} ${e.Code ?? e.name}`
  }
}

describe('a row that disagrees with its manifest', () => {
  for (const bucket of ['tamper-enc', 'tamper-plain']) {
    it(`a smaller or larger size column: GET, range GET, HEAD and copy answer 500, never short or padded data (${bucket})`, async () => {
      for (const size of [BODY.length - 1000, BODY.length + 5, 0]) {
        const key = `size-${size}`
        await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: BODY }))
        editRow(bucket, key, 'size = ?', size)
        expect(await outcome(s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }))), `GET, size ${size}`).toBe('500 InternalError')
        expect(await outcome(s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: 'bytes=0-9' }))), `range GET, size ${size}`).toBe('500 InternalError')
        expect(await outcome(s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }))), `HEAD, size ${size}`).toMatch(/^500 /)
        expect(await outcome(s3.send(new CopyObjectCommand({ Bucket: bucket, Key: `${key}-copy`, CopySource: `${bucket}/${key}` }))), `copy, size ${size}`).toBe('500 InternalError')
      }
      expect(server.output()).toMatch(/row .* size .* manifest/)
      await expectAlive(server)
    })
  }

  it('a parts count or encryption column that disagrees with the manifest: 500', async () => {
    await s3.send(new PutObjectCommand({ Bucket: 'tamper-enc', Key: 'parts', Body: BODY }))
    editRow('tamper-enc', 'parts', 'parts_count = ?', 3)
    expect(await outcome(s3.send(new GetObjectCommand({ Bucket: 'tamper-enc', Key: 'parts' })))).toBe('500 InternalError')
    // An encrypted object whose row says plaintext must not be served as one (over HTTP, say).
    await s3.send(new PutObjectCommand({ Bucket: 'tamper-enc', Key: 'enc', Body: BODY }))
    editRow('tamper-enc', 'enc', 'encryption = NULL')
    const overHttp = server.client({ http: true })
    expect(await outcome(overHttp.send(new GetObjectCommand({ Bucket: 'tamper-enc', Key: 'enc' })))).toBe('500 InternalError')
    overHttp.destroy()
    await expectAlive(server)
  })

  it('an untouched object still reads', async () => {
    await s3.send(new PutObjectCommand({ Bucket: 'tamper-enc', Key: 'fine', Body: BODY }))
    expect(await outcome(s3.send(new GetObjectCommand({ Bucket: 'tamper-enc', Key: 'fine' })))).toBe(`ok ${BODY.length}`)
  })
})
