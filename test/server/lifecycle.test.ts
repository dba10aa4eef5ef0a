/**
 * The server as a process: first start (credentials, certificate), restart and read back,
 * graceful SIGTERM with a request in flight, and a hard kill mid-upload leaving nothing
 * half-written visible.
 */
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import https from 'node:https'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { CreateBucketCommand, GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3'
import { getSignedUrl } from '@aws-sdk/s3-request-presigner'
import { Upload } from '@aws-sdk/lib-storage'
import { errorCode, randomBuffer, removeDir, startServer, stopAll, tempDir, type TestServer } from './helpers.js'

const dirs: string[] = []
afterAll(async () => {
  await stopAll()
  dirs.forEach(removeDir)
})

function rootKeys(dataDir: string): { accessKeyId: string; secretAccessKey: string } {
  const stored = JSON.parse(readFileSync(join(dataDir, 'root-credentials.json'), 'utf8'))
  return { accessKeyId: stored.accessKey, secretAccessKey: stored.secretKey }
}

/** Starts a PUT through a presigned URL and returns a handle to feed its body slowly. */
async function slowPut(server: TestServer, key: string, size: number) {
  const s3 = server.client(rootKeys(server.dataDir))
  const url = new URL(await getSignedUrl(s3, new PutObjectCommand({ Bucket: 'life', Key: key }), { expiresIn: 300 }))
  const req = https.request({ host: url.hostname, port: url.port, method: 'PUT', path: url.pathname + url.search, ca: server.ca, headers: { 'content-length': String(size) } })
  const response = new Promise<number>((resolve, reject) => {
    req.on('response', (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode ?? 0))
    })
    req.on('error', reject)
  })
  return { req, response }
}

describe('server lifecycle', () => {
  it('generates root credentials and a certificate once, and reads everything back after a restart', async () => {
    const dataDir = tempDir()
    dirs.push(dataDir)
    const first = await startServer({ dataDir, rootFromEnv: false })
    const keys = rootKeys(dataDir)
    expect(statSync(join(dataDir, 'root-credentials.json')).mode & 0o777).toBe(0o600)
    expect(statSync(join(dataDir, 'tls-key.pem')).mode & 0o777).toBe(0o600)
    expect(first.output()).toContain(keys.secretAccessKey) // printed once, on the start that made it
    expect(first.output()).toContain('self-signed, created now')
    const cert = readFileSync(join(dataDir, 'tls-cert.pem'), 'utf8')

    const s3 = first.client(keys)
    await s3.send(new CreateBucketCommand({ Bucket: 'life' }))
    const small = randomBuffer(1234)
    const big = randomBuffer(11 * 1024 * 1024)
    await s3.send(new PutObjectCommand({ Bucket: 'life', Key: 'small', Body: small, Metadata: { kept: 'yes' } }))
    await new Upload({ client: s3, params: { Bucket: 'life', Key: 'big', Body: big }, partSize: 5 * 1024 * 1024, queueSize: 3 }).done()
    s3.destroy()
    expect(await first.stop()).toBe(0)

    const second = await startServer({ dataDir, rootFromEnv: false })
    expect(second.output()).not.toContain(keys.secretAccessKey)
    expect(second.output()).not.toContain('created now')
    expect(readFileSync(join(dataDir, 'tls-cert.pem'), 'utf8')).toBe(cert)
    const again = second.client(keys)
    const got = await again.send(new GetObjectCommand({ Bucket: 'life', Key: 'small' }))
    expect(Buffer.from(await got.Body!.transformToByteArray()).equals(small)).toBe(true)
    expect(got.Metadata).toEqual({ kept: 'yes' })
    const gotBig = await again.send(new GetObjectCommand({ Bucket: 'life', Key: 'big' }))
    const bigBack = Buffer.from(await gotBig.Body!.transformToByteArray())
    expect(createHash('sha256').update(bigBack).digest('hex')).toBe(createHash('sha256').update(big).digest('hex'))
    again.destroy()
    expect(await second.stop()).toBe(0)
  })

  it('serves a certificate given with --tls-cert / --tls-key instead of making one', async () => {
    const certDir = tempDir()
    const dataDir = tempDir()
    dirs.push(certDir, dataDir)
    const maker = await startServer({ dataDir: certDir })
    expect(await maker.stop()).toBe(0)
    const server = await startServer({
      dataDir,
      args: ['--tls-cert', join(certDir, 'tls-cert.pem'), '--tls-key', join(certDir, 'tls-key.pem')],
      caFile: join(certDir, 'tls-cert.pem'),
    })
    expect(existsSync(join(dataDir, 'tls-cert.pem'))).toBe(false)
    expect(server.output()).toContain(`TLS certificate: ${join(certDir, 'tls-cert.pem')}`)
    const s3 = server.client()
    await s3.send(new CreateBucketCommand({ Bucket: 'given-cert' }))
    s3.destroy()
    expect(await server.stop()).toBe(0)
  })

  it('finishes an in-flight upload on SIGTERM before exiting', async () => {
    const dataDir = tempDir()
    dirs.push(dataDir)
    const server = await startServer({ dataDir, rootFromEnv: false })
    const s3 = server.client(rootKeys(dataDir))
    await s3.send(new CreateBucketCommand({ Bucket: 'life' }))
    const data = randomBuffer(2 * 1024 * 1024)
    const put = await slowPut(server, 'in-flight', data.length)
    put.req.write(data.subarray(0, 1024 * 1024))
    await new Promise((r) => setTimeout(r, 300))
    const stopped = server.stop()
    await new Promise((r) => setTimeout(r, 300))
    expect(server.proc.exitCode).toBeNull() // still serving the upload
    put.req.end(data.subarray(1024 * 1024))
    expect(await put.response).toBe(200)
    expect(await stopped).toBe(0)
    expect(server.output()).toContain('SIGTERM')

    const back = await startServer({ dataDir, rootFromEnv: false })
    const again = back.client(rootKeys(dataDir))
    const got = await again.send(new GetObjectCommand({ Bucket: 'life', Key: 'in-flight' }))
    expect(Buffer.from(await got.Body!.transformToByteArray()).equals(data)).toBe(true)
    again.destroy()
    s3.destroy()
    expect(await back.stop()).toBe(0)
  })

  it('shows nothing half-written after a hard kill mid-upload, and sweeps orphan files', async () => {
    const dataDir = tempDir()
    dirs.push(dataDir)
    const server = await startServer({ dataDir, rootFromEnv: false })
    const s3 = server.client(rootKeys(dataDir))
    await s3.send(new CreateBucketCommand({ Bucket: 'life' }))
    await s3.send(new PutObjectCommand({ Bucket: 'life', Key: 'committed', Body: 'safe' }))
    const put = await slowPut(server, 'torn', 4 * 1024 * 1024)
    put.response.catch(() => undefined)
    put.req.write(randomBuffer(1024 * 1024))
    await new Promise((r) => setTimeout(r, 300))
    expect(readdirSync(join(dataDir, 'tmp')).length).toBe(1) // the upload in progress
    server.proc.kill('SIGKILL')
    await server.stop()
    put.req.destroy()
    s3.destroy()
    // An orphan as left by a crash between a file's rename and its metadata commit.
    mkdirSync(join(dataDir, 'objects', 'ff'), { recursive: true })
    writeFileSync(join(dataDir, 'objects', 'ff', 'ff'.repeat(16)), 'orphan')

    const back = await startServer({ dataDir, rootFromEnv: false })
    expect(back.output()).toContain('removed 1 unreferenced object files')
    expect(existsSync(join(dataDir, 'objects', 'ff', 'ff'.repeat(16)))).toBe(false)
    expect(readdirSync(join(dataDir, 'tmp'))).toEqual([])
    const again = back.client(rootKeys(dataDir))
    expect(await errorCode(again.send(new HeadObjectCommand({ Bucket: 'life', Key: 'torn' })))).toBe('NotFound')
    const list = await again.send(new ListObjectsV2Command({ Bucket: 'life' }))
    expect(list.Contents?.map((c) => c.Key)).toEqual(['committed'])
    const got = await again.send(new GetObjectCommand({ Bucket: 'life', Key: 'committed' }))
    expect(await got.Body!.transformToString()).toBe('safe')
    again.destroy()
    expect(await back.stop()).toBe(0)
  })
})
