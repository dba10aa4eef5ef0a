/**
 * The keyring across restarts and faults (issue 10, items 1, 15, 16), against the real
 * server process: a data dir holding encrypted data never gets a new keyring, a lock left by
 * a dead or unrelated process never blocks a start, and an object whose KMS key is gone is a
 * server-side KMS error that the log names, not the client's fault.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { copyFileSync, existsSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { randomBytes } from 'node:crypto'
import { afterAll, describe, expect, it } from 'vitest'
import { CopyObjectCommand, CreateMultipartUploadCommand, GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3'
import { openEmbeddedKms } from '../../src/keys/embedded.js'
import { kmsPaths } from '../../src/keys/keyring.js'
import { removeDir, ROOT, startServer, stopAll, tempDir, type TestServer } from '../server/helpers.js'
import { makeBucket, waitFor } from './helpers.js'

const dirs: string[] = []
const children: ChildProcess[] = []
afterAll(async () => {
  for (const c of children) c.kill('SIGKILL')
  await stopAll()
  dirs.forEach(removeDir)
})

function dataDir(): string {
  const d = tempDir()
  dirs.push(d)
  return d
}

/** Starts the server and expects it to refuse; returns what it printed. */
async function refusedStart(opts: Parameters<typeof startServer>[0]): Promise<string> {
  try {
    const s = await startServer(opts)
    await s.stop()
  } catch (err) {
    return (err as Error).message
  }
  throw new Error('the server started')
}

async function read(server: TestServer, Bucket: string, Key: string): Promise<string> {
  const s3 = server.client()
  try {
    const out = await s3.send(new GetObjectCommand({ Bucket, Key }))
    return Buffer.from(await out.Body!.transformToByteArray()).toString()
  } finally {
    s3.destroy()
  }
}

describe('a data dir with encrypted data never gets a new keyring', () => {
  it('keyring moved away, root key from S3SSE_KMS_ROOT_KEY: refuses to start, says what to restore; starts again once restored', async () => {
    const dir = dataDir()
    const env = { S3SSE_KMS_ROOT_KEY: randomBytes(32).toString('base64') }
    const first = await startServer({ dataDir: dir, env })
    const s3 = first.client()
    await makeBucket(s3, 'enc', true)
    await s3.send(new PutObjectCommand({ Bucket: 'enc', Key: 'k', Body: 'kept' }))
    s3.destroy()
    await first.stop()

    const { keyring } = kmsPaths(dir)
    renameSync(keyring, keyring + '.away')
    const out = await refusedStart({ dataDir: dir, env })
    expect(out).toContain('S3SSE_KMS_KEYRING_MISSING')
    expect(out).toMatch(/restore .*kms\/keyring/)
    expect(existsSync(keyring), 'no new keyring was written').toBe(false)

    renameSync(keyring + '.away', keyring)
    const again = await startServer({ dataDir: dir, env })
    expect(await read(again, 'enc', 'k')).toBe('kept')
    await again.stop()
  })

  it('the whole kms/ directory gone (root key was in its file): refuses to start', async () => {
    const dir = dataDir()
    const first = await startServer({ dataDir: dir })
    const s3 = first.client()
    await makeBucket(s3, 'enc', true)
    await s3.send(new PutObjectCommand({ Bucket: 'enc', Key: 'k', Body: 'kept' }))
    s3.destroy()
    await first.stop()
    renameSync(join(dir, 'kms'), join(dir, 'kms.away'))
    const out = await refusedStart({ dataDir: dir })
    expect(out).toContain('S3SSE_KMS_KEYRING_MISSING')
    expect(existsSync(join(dir, 'kms', 'keyring'))).toBe(false)
    expect(existsSync(join(dir, 'kms', 'root.key'))).toBe(false)
  })

  it('an encrypted multipart upload in progress is encrypted data too', async () => {
    const dir = dataDir()
    const first = await startServer({ dataDir: dir })
    const s3 = first.client()
    await makeBucket(s3, 'enc', true)
    await s3.send(new CreateMultipartUploadCommand({ Bucket: 'enc', Key: 'mp' }))
    s3.destroy()
    await first.stop()
    rmSync(join(dir, 'kms'), { recursive: true })
    expect(await refusedStart({ dataDir: dir })).toContain('S3SSE_KMS_KEYRING_MISSING')
  })

  it('a data dir with only plaintext objects starts with a new keyring', async () => {
    const dir = dataDir()
    const first = await startServer({ dataDir: dir })
    const s3 = first.client()
    await makeBucket(s3, 'plain', false)
    await s3.send(new PutObjectCommand({ Bucket: 'plain', Key: 'k', Body: 'plain' }))
    s3.destroy()
    await first.stop()
    rmSync(join(dir, 'kms'), { recursive: true })
    const again = await startServer({ dataDir: dir })
    expect(await read(again, 'plain', 'k')).toBe('plain')
    expect(existsSync(join(dir, 'kms', 'keyring'))).toBe(true)
    await again.stop()
  })
})

describe('the keyring lock', () => {
  for (const [what, content] of [
    ['empty', () => ''],
    ['naming a live, unrelated process (its pid, another start time)', () => `${process.pid} 1\n`],
    ['of an older version naming a live, unrelated process (a bare pid)', () => String(process.pid)],
    ['naming a process that is gone', () => '999999999 1234\n'],
    ['holding garbage', () => 'not a lock'],
  ] as const) {
    it(`a stale lock file ${what} does not block a start`, async () => {
      const dir = dataDir()
      const first = await startServer({ dataDir: dir })
      await first.stop()
      writeFileSync(kmsPaths(dir).lock, content(), { mode: 0o600 })
      const again = await startServer({ dataDir: dir })
      await again.stop()
    })
  }

  it('a lock held by a live process is respected, and released by the OS when that process dies', async () => {
    const dir = dataDir()
    const first = await startServer({ dataDir: dir })
    await first.stop()
    const holder = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./fixtures/lock-holder.ts', import.meta.url)), dir], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] })
    children.push(holder)
    let said = ''
    holder.stdout!.on('data', (d) => (said += d))
    await waitFor('the holder to take the lock', () => (said.includes('locked') ? true : undefined), 30_000)
    await expect(openEmbeddedKms(dir, { lockTimeoutMs: 300 })).rejects.toMatchObject({ code: 'S3SSE_KMS_UNAVAILABLE' })
    holder.kill('SIGKILL')
    await new Promise((r) => holder.once('exit', r))
    const kms = await openEmbeddedKms(dir, { lockTimeoutMs: 2000 })
    await kms.close()
  })
})

describe('an object whose KMS key is gone', () => {
  it('GET answers 500 KMS.NotFoundException (not the client\'s fault) and the log names the key', async () => {
    const dir = dataDir()
    const env = { S3SSE_KMS_ROOT_KEY: randomBytes(32).toString('base64') }
    const first = await startServer({ dataDir: dir, env })
    let s3 = first.client()
    await makeBucket(s3, 'before', true)
    await s3.send(new PutObjectCommand({ Bucket: 'before', Key: 'k', Body: 'x' }))
    s3.destroy()
    await first.stop()
    const { keyring } = kmsPaths(dir)
    copyFileSync(keyring, keyring + '.old')

    const second = await startServer({ dataDir: dir, env })
    s3 = second.client()
    await makeBucket(s3, 'after', true)
    await s3.send(new PutObjectCommand({ Bucket: 'after', Key: 'k', Body: 'y' }))
    s3.destroy()
    await second.stop()
    const kms = await openEmbeddedKms(dir, { rootKey: Buffer.from(env.S3SSE_KMS_ROOT_KEY, 'base64') })
    const lost = (await kms.listKeys()).find((k) => k.alias === 'alias/s3-sse/bucket/after')!
    await kms.close()
    // An older keyring comes back from a backup: the key of bucket `after` is not in it.
    renameSync(keyring + '.old', keyring)

    const third = await startServer({ dataDir: dir, env })
    s3 = third.client()
    expect(await read(third, 'before', 'k')).toBe('x')
    const err = await s3.send(new GetObjectCommand({ Bucket: 'after', Key: 'k' })).then(() => undefined, (e) => e as { Code?: string; $metadata: { httpStatusCode?: number } })
    expect([err?.$metadata.httpStatusCode, err?.Code]).toEqual([500, 'KMS.NotFoundException'])
    s3.destroy()
    await waitFor('the log line', () => (third.output().includes(lost.keyId) ? true : undefined))
    expect(third.output()).toMatch(new RegExp(`GET /after/k: .*${lost.keyId}`))
    await third.stop()
  })

  it('aws mode: a write naming a key that does not exist is the client\'s mistake, 400 KMS.NotFoundException', async () => {
    const server = await startServer({ dataDir: dataDir(), args: ['--mode', 'aws'] })
    const s3 = server.client()
    await makeBucket(s3, 'named', false)
    const put = await s3.send(new PutObjectCommand({ Bucket: 'named', Key: 'k', Body: 'x', ServerSideEncryption: 'aws:kms', SSEKMSKeyId: 'alias/no-such-key' })).then(() => undefined, (e) => e as { Code?: string; $metadata: { httpStatusCode?: number } })
    expect([put?.$metadata.httpStatusCode, put?.Code]).toEqual([400, 'KMS.NotFoundException'])
    await s3.send(new PutObjectCommand({ Bucket: 'named', Key: 'src', Body: 'x' }))
    for (const call of [
      () => s3.send(new CreateMultipartUploadCommand({ Bucket: 'named', Key: 'm', ServerSideEncryption: 'aws:kms', SSEKMSKeyId: '1234abcd-12ab-34cd-56ef-1234567890ab' })),
      () => s3.send(new CopyObjectCommand({ Bucket: 'named', Key: 'copy', CopySource: 'named/src', ServerSideEncryption: 'aws:kms', SSEKMSKeyId: 'alias/no-such-key' })),
    ]) {
      const e = await call().then(() => undefined, (e) => e as { Code?: string; $metadata: { httpStatusCode?: number } })
      expect([e?.$metadata.httpStatusCode, e?.Code]).toEqual([400, 'KMS.NotFoundException'])
    }
    s3.destroy()
    await server.stop()
  })
})
