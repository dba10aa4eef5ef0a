/**
 * Acknowledged = durable, across kill -9 (issue 10, the reliability suite): the real server
 * process under a mixed load (PUTs of plain and encrypted objects, overwrites, copies,
 * deletes, multipart uploads) is killed with SIGKILL at a random moment, restarted on the
 * same data dir, and every acknowledged write and delete is checked: each key holds exactly
 * the bytes of its last acknowledged write (or, if a write to it was in flight at the kill,
 * possibly that one), no key appears that was never written, every file a row references
 * exists and no file is left that none references.
 *
 * Bounded for npm test (4 kills, a seeded schedule); S3SSE_SOAK=1 runs 20 times as many.
 */
import { createHash } from 'node:crypto'
import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterAll, describe, expect, it } from 'vitest'
import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutBucketEncryptionCommand,
  PutObjectCommand,
  UploadPartCommand,
  type S3Client,
} from '@aws-sdk/client-s3'
import { allFiles, removeDir, startServer, stopAll, tempDir, type TestServer } from '../server/helpers.js'
import { KMS_RULE, makeBucket } from './helpers.js'
import { Rng, seedFromEnv, soakFactor } from './random.js'

const SEED = seedFromEnv(20261211)
const KILLS = 4 * soakFactor()
const WORKERS = 6
const BUCKETS = ['crash-plain', 'crash-enc', 'crash-bk'] as const
const MiB = 1024 * 1024

/** What a key may hold: the sha256 of its bytes, or ABSENT. */
const ABSENT = 'absent'

interface KeyState {
  /** The state after the last acknowledged operation. */
  acked: string
  /** The state an operation in flight would leave (at most one operation per key at a time). */
  pending?: string
}

const dirs: string[] = []
afterAll(async () => {
  await stopAll()
  dirs.forEach(removeDir)
})

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex')

async function readKey(s3: S3Client, bucket: string, key: string): Promise<string> {
  try {
    const out = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }))
    return sha(await out.Body!.transformToByteArray())
  } catch (err) {
    if ((err as { name?: string }).name === 'NoSuchKey') return ABSENT
    throw err
  }
}

/** Files under objects/ against the rows that reference them (read beside the running server). */
function fileCheck(dataDir: string): { dangling: string[]; orphans: string[] } {
  const db = new Database(join(dataDir, 'meta.sqlite'), { readonly: true, fileMustExist: true })
  try {
    const referenced = new Set<string>()
    for (const r of db.prepare('SELECT files FROM objects').all() as Array<{ files: string }>) for (const f of JSON.parse(r.files) as string[]) referenced.add(f)
    for (const r of db.prepare('SELECT file FROM parts').all() as Array<{ file: string }>) referenced.add(r.file)
    const onDisk = new Set(allFiles(join(dataDir, 'objects')).map((p) => p.slice(p.lastIndexOf('/') + 1)))
    return { dangling: [...referenced].filter((f) => !onDisk.has(f)), orphans: [...onDisk].filter((f) => !referenced.has(f)) }
  } finally {
    db.close()
  }
}

describe(`kill -9 under mixed load (seed ${SEED}, ${KILLS} kills)`, () => {
  it('every acknowledged write and delete survives every kill', async () => {
    const rng = new Rng(SEED)
    const dataDir = tempDir()
    dirs.push(dataDir)
    const keys = new Map<string, KeyState>() // "bucket/key"
    let acknowledged = 0
    let serial = 0

    let server: TestServer = await startServer({ dataDir })
    let s3 = server.client()
    for (const b of BUCKETS) await makeBucket(s3, b, b !== 'crash-plain')
    await s3.send(new PutBucketEncryptionCommand({ Bucket: 'crash-bk', ServerSideEncryptionConfiguration: { Rules: [{ ...KMS_RULE.Rules[0], BucketKeyEnabled: true }] } }))

    const verify = async (round: number) => {
      // Nothing half-written is visible, and every acknowledged state is there.
      for (const [name, state] of keys) {
        const [bucket, key] = [name.slice(0, name.indexOf('/')), name.slice(name.indexOf('/') + 1)]
        const got = await readKey(s3, bucket, key)
        const allowed = state.pending === undefined ? [state.acked] : [state.acked, state.pending]
        expect(allowed, `after kill ${round}: ${name} holds ${got}`).toContain(got)
        keys.set(name, { acked: got })
      }
      for (const bucket of BUCKETS) {
        let token: string | undefined
        do {
          const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }))
          for (const o of page.Contents ?? []) expect(keys.has(`${bucket}/${o.Key}`), `after kill ${round}: ${bucket}/${o.Key} was never written`).toBe(true)
          token = page.NextContinuationToken
        } while (token)
      }
      expect(readdirSync(join(dataDir, 'tmp')), 'tmp/ after restart').toEqual([])
      const files = fileCheck(dataDir)
      expect(files.dangling, 'rows whose files are gone').toEqual([])
      expect(files.orphans, 'files no row references').toEqual([])
    }

    /** One operation on a key no other operation is using; returns when it is answered (or the server died). */
    const busy = new Set<string>()
    let killed = false
    const operate = async (wr: Rng) => {
      const bucket = wr.pick(BUCKETS)
      const existing = [...keys.keys()].filter((k) => k.startsWith(bucket + '/') && !busy.has(k) && keys.get(k)!.acked !== ABSENT)
      const op = existing.length === 0 ? 'put' : wr.pick(['put', 'put', 'put', 'overwrite', 'copy', 'delete', 'multipart'] as const)
      const fresh = `${bucket}/k${++serial}-${wr.text(4, 'abcdef')}`
      const target = op === 'overwrite' || op === 'delete' ? wr.pick(existing) : fresh
      if (busy.has(target)) return
      busy.add(target)
      const key = target.slice(bucket.length + 1)
      const state = keys.get(target) ?? { acked: ABSENT }
      keys.set(target, state)
      try {
        if (op === 'delete') {
          state.pending = ABSENT
          await s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }))
          state.acked = ABSENT
        } else if (op === 'copy') {
          const source = wr.pick(existing)
          const from = keys.get(source)!
          if (busy.has(source)) return
          busy.add(source)
          try {
            state.pending = from.acked
            await s3.send(new CopyObjectCommand({ Bucket: bucket, Key: key, CopySource: encodeURI(source) }))
            state.acked = from.acked
          } finally {
            busy.delete(source)
          }
        } else if (op === 'multipart') {
          const parts = [wr.bytes(5 * MiB), wr.bytes(wr.int(0, 100_000))]
          state.pending = sha(Buffer.concat(parts))
          const up = await s3.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }))
          const done = []
          for (let i = 0; i < parts.length; i++) {
            const r = await s3.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId: up.UploadId, PartNumber: i + 1, Body: parts[i] }))
            done.push({ PartNumber: i + 1, ETag: r.ETag })
          }
          await s3.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: up.UploadId, MultipartUpload: { Parts: done } }))
          state.acked = state.pending
        } else {
          const body = wr.bytes(wr.pick([0, 1, 100, 65535, 65536, 65537, wr.int(0, 300_000)]))
          state.pending = sha(body)
          await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }))
          state.acked = state.pending
        }
        state.pending = undefined
        acknowledged++
      } catch (err) {
        // Only the kill may fail a request: anything else is a bug the test reports.
        if (!killed) throw err
      } finally {
        busy.delete(target)
      }
    }

    for (let round = 1; round <= KILLS; round++) {
      let stop = false
      const workers = Array.from({ length: WORKERS }, (_, i) => {
        const wr = new Rng(SEED * 31 + round * 1009 + i)
        return (async () => {
          while (!stop && !killed) await operate(wr)
        })()
      })
      await new Promise((r) => setTimeout(r, rng.int(400, 2500)))
      killed = true
      server.proc.kill('SIGKILL')
      await new Promise<void>((r) => (server.proc.exitCode !== null || server.proc.signalCode !== null ? r() : server.proc.once('exit', () => r())))
      stop = true
      await Promise.all(workers)
      s3.destroy()
      server = await startServer({ dataDir })
      s3 = server.client()
      killed = false
      await verify(round)
    }
    console.log(`kill -9 test (seed ${SEED}): ${KILLS} kills, ${acknowledged} acknowledged writes and deletes, ${keys.size} keys checked after each`)
    expect(acknowledged).toBeGreaterThan(KILLS * 10)
    s3.destroy()
    await server.stop()
  }, 600_000)
})
