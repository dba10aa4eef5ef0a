/**
 * `s3-sse kms serve` as a real process, driven by the real clients of the AWS KMS JSON
 * protocol: @aws-sdk/client-kms for every operation and error, and Debian's aws CLI v2.
 */
import { execFile } from 'node:child_process'
import { existsSync, writeFileSync } from 'node:fs'
import https from 'node:https'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  CreateAliasCommand, CreateKeyCommand, DecryptCommand, DescribeKeyCommand, DisableKeyCommand, DisableKeyRotationCommand,
  EnableKeyCommand, EnableKeyRotationCommand, EncryptCommand, GenerateDataKeyCommand, GenerateDataKeyWithoutPlaintextCommand,
  GetKeyRotationStatusCommand, KMSClient, ListAliasesCommand, ListKeyRotationsCommand, ListKeysCommand, ReEncryptCommand,
  RotateKeyOnDemandCommand,
} from '@aws-sdk/client-kms'
import { UserStore } from '../../src/server/credentials.js'
import { AwsKms } from '../../src/keys/aws.js'
import { expectCode } from '../helpers/objects.js'
import { startKmsServe, type KmsServeProcess } from '../helpers/kms-server.js'
import { requireOrSkip } from '../helpers/softhsm.js'

const AWS = '/usr/bin/aws'

async function errorName(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p
    return undefined
  } catch (e) {
    return (e as Error).name
  }
}

describe('kms serve with @aws-sdk/client-kms', () => {
  let server: KmsServeProcess
  let kms: KMSClient
  let user: { accessKey: string; secretKey: string }

  beforeAll(async () => {
    server = await startKmsServe()
    kms = server.client()
    const u = new UserStore(server.dataDir).add('gateway')
    user = { accessKey: u.accessKey, secretKey: u.secretKey }
  }, 60_000)
  afterAll(async () => {
    kms?.destroy()
    if (server) expect(await server.stop()).toBe(0)
  })

  it('creates, describes, lists and aliases keys', async () => {
    const created = await kms.send(new CreateKeyCommand({ Description: 'photos', KeyUsage: 'ENCRYPT_DECRYPT' }))
    const m = created.KeyMetadata!
    expect(m.KeyId).toMatch(/^[0-9a-f-]{36}$/)
    expect(m.Arn).toBe(`arn:aws:kms:us-east-1:000000000000:key/${m.KeyId}`)
    expect(m).toMatchObject({ Enabled: true, KeyState: 'Enabled', Description: 'photos', KeySpec: 'SYMMETRIC_DEFAULT', KeyManager: 'CUSTOMER', Origin: 'AWS_KMS' })
    expect(m.CreationDate).toBeInstanceOf(Date)
    expect(Math.abs(m.CreationDate!.getTime() - Date.now())).toBeLessThan(60_000)
    await kms.send(new CreateAliasCommand({ AliasName: 'alias/photos', TargetKeyId: m.KeyId }))
    await kms.send(new CreateAliasCommand({ AliasName: 'alias/photos-2', TargetKeyId: m.Arn }))
    expect(await errorName(kms.send(new CreateAliasCommand({ AliasName: 'alias/photos', TargetKeyId: m.KeyId })))).toBe('AlreadyExistsException')
    expect(await errorName(kms.send(new CreateAliasCommand({ AliasName: 'photos3', TargetKeyId: m.KeyId })))).toBe('ValidationException')
    expect(await errorName(kms.send(new CreateAliasCommand({ AliasName: 'alias/aws/s3', TargetKeyId: m.KeyId })))).toBe('NotAuthorizedException')
    for (const ref of ['alias/photos', 'alias/photos-2', m.Arn!, m.KeyId!, 'arn:aws:kms:us-east-1:000000000000:alias/photos']) {
      expect((await kms.send(new DescribeKeyCommand({ KeyId: ref }))).KeyMetadata!.KeyId).toBe(m.KeyId)
    }
    const keys = await kms.send(new ListKeysCommand({}))
    expect(keys.Keys).toContainEqual({ KeyId: m.KeyId, KeyArn: m.Arn })
    const aliases = await kms.send(new ListAliasesCommand({ KeyId: m.KeyId }))
    expect(aliases.Aliases!.map((a) => a.AliasName)).toEqual(['alias/photos', 'alias/photos-2'])
    expect(aliases.Aliases![0]).toMatchObject({ TargetKeyId: m.KeyId, AliasArn: 'arn:aws:kms:us-east-1:000000000000:alias/photos' })
    expect(await errorName(kms.send(new DescribeKeyCommand({ KeyId: 'alias/none' })))).toBe('NotFoundException')
    expect(await errorName(kms.send(new CreateKeyCommand({ KeyUsage: 'SIGN_VERIFY' })))).toBe('UnsupportedOperationException')
  })

  it('creates an AWS managed key (alias/aws/s3) on first use, as Amazon KMS does', async () => {
    const first = await kms.send(new DescribeKeyCommand({ KeyId: 'alias/aws/s3' }))
    expect(first.KeyMetadata!.KeyManager).toBe('AWS')
    const dk = await kms.send(new GenerateDataKeyCommand({ KeyId: 'alias/aws/s3', KeySpec: 'AES_256' }))
    expect(dk.KeyId).toBe(first.KeyMetadata!.Arn)
    const adapter = new AwsKms({ endpoint: server.url, credentials: server.credentials, ca: server.ca })
    try {
      expect((await adapter.ensureKey('aws/s3')).keyId).toBe(first.KeyMetadata!.KeyId)
    } finally {
      await adapter.close()
    }
  })

  it('the adapter can send contexts as Amazon S3 does ({"aws:s3:arn": …})', async () => {
    const adapter = new AwsKms({ endpoint: server.url, credentials: server.credentials, ca: server.ca, contextStyle: 's3-arn' })
    try {
      const key = await adapter.ensureKey('s3-style')
      const dk = await adapter.generateDataKey(key.keyId, { bucket: 'photos', key: 'cat.jpg' })
      const raw = await kms.send(new DecryptCommand({ CiphertextBlob: dk.wrapped, EncryptionContext: { 'aws:s3:arn': 'arn:aws:s3:::photos/cat.jpg' } }))
      expect(Buffer.from(raw.Plaintext!)).toEqual(Buffer.from(dk.plaintext))
      const bk = await adapter.generateDataKey(key.keyId, { bucket: 'photos' })
      expect((await kms.send(new DecryptCommand({ CiphertextBlob: bk.wrapped, EncryptionContext: { 'aws:s3:arn': 'arn:aws:s3:::photos' } }))).Plaintext).toHaveLength(32)
      await expectCode(adapter.generateDataKey(key.keyId, { bucket: 'photos', 'aws:s3:arn': 'x' }), 'S3SSE_BAD_ARGUMENT')
    } finally {
      await adapter.close()
    }
  })

  it('pages ListKeys with Limit and Marker', async () => {
    for (let i = 0; i < 3; i++) await kms.send(new CreateKeyCommand({}))
    const all = (await kms.send(new ListKeysCommand({}))).Keys!.map((k) => k.KeyId)
    const seen: string[] = []
    let marker: string | undefined
    do {
      const page = await kms.send(new ListKeysCommand({ Limit: 2, Marker: marker }))
      expect(page.Keys!.length).toBeLessThanOrEqual(2)
      seen.push(...page.Keys!.map((k) => k.KeyId!))
      marker = page.Truncated ? page.NextMarker : undefined
    } while (marker)
    expect(seen).toEqual(all)
    expect(await errorName(kms.send(new ListKeysCommand({ Marker: 'bm90LWEtbWFya2Vy' })))).toBe('InvalidMarkerException')
  })

  it('generates data keys bound to their encryption context; the blob names its key', async () => {
    const { KeyMetadata: m } = await kms.send(new CreateKeyCommand({}))
    const context = { 'aws:s3:arn': 'arn:aws:s3:::photos/cat.jpg' }
    const dk = await kms.send(new GenerateDataKeyCommand({ KeyId: m!.KeyId, KeySpec: 'AES_256', EncryptionContext: context }))
    expect(dk.Plaintext).toHaveLength(32)
    expect(dk.KeyId).toBe(m!.Arn)
    const small = await kms.send(new GenerateDataKeyCommand({ KeyId: m!.KeyId, NumberOfBytes: 7 }))
    expect(small.Plaintext).toHaveLength(7)
    expect((await kms.send(new GenerateDataKeyCommand({ KeyId: m!.KeyId, KeySpec: 'AES_128' }))).Plaintext).toHaveLength(16)
    expect(await errorName(kms.send(new GenerateDataKeyCommand({ KeyId: m!.KeyId })))).toBe('ValidationException')
    expect(await errorName(kms.send(new GenerateDataKeyCommand({ KeyId: m!.KeyId, NumberOfBytes: 2000 })))).toBe('ValidationException')
    // Decrypt needs no KeyId: the blob carries it.
    const back = await kms.send(new DecryptCommand({ CiphertextBlob: dk.CiphertextBlob, EncryptionContext: context }))
    expect(Buffer.from(back.Plaintext!)).toEqual(Buffer.from(dk.Plaintext!))
    expect(back.KeyId).toBe(m!.Arn)
    expect(Buffer.from((await kms.send(new DecryptCommand({ CiphertextBlob: small.CiphertextBlob }))).Plaintext!)).toEqual(Buffer.from(small.Plaintext!))
    // Wrong or missing context, damaged blob: InvalidCiphertextException, as on AWS.
    expect(await errorName(kms.send(new DecryptCommand({ CiphertextBlob: dk.CiphertextBlob })))).toBe('InvalidCiphertextException')
    expect(await errorName(kms.send(new DecryptCommand({ CiphertextBlob: dk.CiphertextBlob, EncryptionContext: { 'aws:s3:arn': 'arn:aws:s3:::photos/dog.jpg' } })))).toBe('InvalidCiphertextException')
    const damaged = new Uint8Array(dk.CiphertextBlob!)
    damaged[damaged.length - 3] ^= 4
    expect(await errorName(kms.send(new DecryptCommand({ CiphertextBlob: damaged, EncryptionContext: context })))).toBe('InvalidCiphertextException')
    // A KeyId that is not the blob's key.
    const other = await kms.send(new CreateKeyCommand({}))
    expect(await errorName(kms.send(new DecryptCommand({ CiphertextBlob: dk.CiphertextBlob, EncryptionContext: context, KeyId: other.KeyMetadata!.KeyId })))).toBe('IncorrectKeyException')
    const without = await kms.send(new GenerateDataKeyWithoutPlaintextCommand({ KeyId: m!.KeyId, KeySpec: 'AES_256', EncryptionContext: context }))
    expect((without as { Plaintext?: unknown }).Plaintext).toBeUndefined()
    expect((await kms.send(new DecryptCommand({ CiphertextBlob: without.CiphertextBlob, EncryptionContext: context }))).Plaintext).toHaveLength(32)
  })

  it('encrypts and re-encrypts any secret up to 4096 bytes', async () => {
    const a = (await kms.send(new CreateKeyCommand({}))).KeyMetadata!
    const b = (await kms.send(new CreateKeyCommand({}))).KeyMetadata!
    const secret = Buffer.from('correct horse battery staple')
    const enc = await kms.send(new EncryptCommand({ KeyId: a.KeyId, Plaintext: secret, EncryptionContext: { app: 'x' } }))
    expect(enc).toMatchObject({ KeyId: a.Arn, EncryptionAlgorithm: 'SYMMETRIC_DEFAULT' })
    const re = await kms.send(new ReEncryptCommand({
      CiphertextBlob: enc.CiphertextBlob, SourceEncryptionContext: { app: 'x' }, DestinationKeyId: b.KeyId, DestinationEncryptionContext: { app: 'y' },
    }))
    expect(re).toMatchObject({ SourceKeyId: a.Arn, KeyId: b.Arn })
    const back = await kms.send(new DecryptCommand({ CiphertextBlob: re.CiphertextBlob, EncryptionContext: { app: 'y' } }))
    expect(Buffer.from(back.Plaintext!)).toEqual(secret)
    expect(back.KeyId).toBe(b.Arn)
    expect((await kms.send(new EncryptCommand({ KeyId: a.KeyId, Plaintext: Buffer.alloc(4096, 1) }))).CiphertextBlob).toBeDefined()
    expect(await errorName(kms.send(new EncryptCommand({ KeyId: a.KeyId, Plaintext: Buffer.alloc(4097, 1) })))).toBe('ValidationException')
    expect(await errorName(kms.send(new ReEncryptCommand({ CiphertextBlob: enc.CiphertextBlob, DestinationKeyId: b.KeyId })))).toBe('InvalidCiphertextException')
  })

  it('disables and enables keys (root only), with DisabledException meanwhile', async () => {
    const m = (await kms.send(new CreateKeyCommand({}))).KeyMetadata!
    const enc = await kms.send(new EncryptCommand({ KeyId: m.KeyId, Plaintext: Buffer.from('x') }))
    const gateway = server.client({ accessKeyId: user.accessKey, secretAccessKey: user.secretKey })
    try {
      // Another user of the data dir may use keys but not change their state.
      expect((await gateway.send(new DecryptCommand({ CiphertextBlob: enc.CiphertextBlob }))).Plaintext).toBeDefined()
      expect(await errorName(gateway.send(new DisableKeyCommand({ KeyId: m.KeyId })))).toBe('AccessDeniedException')
      await kms.send(new DisableKeyCommand({ KeyId: m.KeyId }))
      expect((await kms.send(new DescribeKeyCommand({ KeyId: m.KeyId }))).KeyMetadata).toMatchObject({ Enabled: false, KeyState: 'Disabled' })
      expect(await errorName(gateway.send(new DecryptCommand({ CiphertextBlob: enc.CiphertextBlob })))).toBe('DisabledException')
      expect(await errorName(kms.send(new GenerateDataKeyCommand({ KeyId: m.KeyId, KeySpec: 'AES_256' })))).toBe('DisabledException')
      await kms.send(new EnableKeyCommand({ KeyId: m.KeyId }))
      expect((await gateway.send(new DecryptCommand({ CiphertextBlob: enc.CiphertextBlob }))).Plaintext).toBeDefined()
    } finally {
      gateway.destroy()
    }
  })

  it('rotates on demand and keeps a rotation schedule', async () => {
    const m = (await kms.send(new CreateKeyCommand({}))).KeyMetadata!
    const old = await kms.send(new EncryptCommand({ KeyId: m.KeyId, Plaintext: Buffer.from('before') }))
    expect(await kms.send(new GetKeyRotationStatusCommand({ KeyId: m.KeyId }))).toMatchObject({ KeyRotationEnabled: false })
    await kms.send(new EnableKeyRotationCommand({ KeyId: m.KeyId, RotationPeriodInDays: 90 }))
    const status = await kms.send(new GetKeyRotationStatusCommand({ KeyId: m.KeyId }))
    expect(status).toMatchObject({ KeyRotationEnabled: true, RotationPeriodInDays: 90, KeyId: m.Arn })
    expect(Math.round((status.NextRotationDate!.getTime() - Date.now()) / 86400_000)).toBe(90)
    expect(await errorName(kms.send(new EnableKeyRotationCommand({ KeyId: m.KeyId, RotationPeriodInDays: 10 })))).toBe('ValidationException')
    await kms.send(new DisableKeyRotationCommand({ KeyId: m.KeyId }))
    expect((await kms.send(new GetKeyRotationStatusCommand({ KeyId: m.KeyId }))).KeyRotationEnabled).toBe(false)
    expect((await kms.send(new RotateKeyOnDemandCommand({ KeyId: m.KeyId }))).KeyId).toBe(m.Arn)
    const rotations = await kms.send(new ListKeyRotationsCommand({ KeyId: m.KeyId }))
    expect(rotations.Rotations).toHaveLength(1)
    expect(rotations.Rotations![0].RotationType).toBe('ON_DEMAND')
    const fresh = await kms.send(new EncryptCommand({ KeyId: m.KeyId, Plaintext: Buffer.from('after') }))
    expect(Buffer.from(fresh.CiphertextBlob!).equals(Buffer.from(old.CiphertextBlob!))).toBe(false)
    expect(Buffer.from((await kms.send(new DecryptCommand({ CiphertextBlob: old.CiphertextBlob }))).Plaintext!).toString()).toBe('before')
    expect(Buffer.from((await kms.send(new DecryptCommand({ CiphertextBlob: fresh.CiphertextBlob }))).Plaintext!).toString()).toBe('after')
  })

  it('refuses bad signatures, unknown keys, another region and unsigned requests', async () => {
    const wrongSecret = server.client({ secretAccessKey: 'not-the-secret-at-all' })
    const unknown = server.client({ accessKeyId: 'AKIDONTEXIST', secretAccessKey: 'whatever-secret' })
    const otherRegion = server.client({ region: 'eu-west-1' })
    try {
      expect(await errorName(wrongSecret.send(new ListKeysCommand({})))).toBe('InvalidSignatureException')
      expect(await errorName(unknown.send(new ListKeysCommand({})))).toBe('UnrecognizedClientException')
      expect(await errorName(otherRegion.send(new ListKeysCommand({})))).toBe('IncompleteSignatureException')
    } finally {
      for (const c of [wrongSecret, unknown, otherRegion]) c.destroy()
    }
    const raw = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const u = new URL(server.url)
      const req = https.request({ host: u.hostname, port: u.port, method: 'POST', path: '/', ca: server.ca, headers: { 'x-amz-target': 'TrentService.ListKeys', 'content-type': 'application/x-amz-json-1.1' } }, (res) => {
        let body = ''
        res.on('data', (d) => (body += d))
        res.on('end', () => resolve({ status: res.statusCode!, body }))
      })
      req.on('error', reject)
      req.end('{}')
    })
    expect(raw.status).toBe(400)
    expect(JSON.parse(raw.body)).toMatchObject({ __type: 'MissingAuthenticationTokenException' })
    const health = await new Promise<number>((resolve, reject) => {
      https.get(`${server.url}/-/health`, { ca: server.ca }, (res) => { res.resume(); resolve(res.statusCode!) }).on('error', reject)
    })
    expect(health).toBe(200)
  })

  it('keeps its keys across a restart of the same data dir', async () => {
    const m = (await kms.send(new CreateKeyCommand({ Description: 'durable' }))).KeyMetadata!
    const enc = await kms.send(new EncryptCommand({ KeyId: m.KeyId, Plaintext: Buffer.from('kept') }))
    kms.destroy()
    expect(await server.stop()).toBe(0)
    expect(server.output()).toMatch(/SIGTERM: finishing in-flight requests[\s\S]*stopped/)
    server = await startKmsServe({ dataDir: server.dataDir })
    kms = server.client()
    expect(Buffer.from((await kms.send(new DecryptCommand({ CiphertextBlob: enc.CiphertextBlob }))).Plaintext!).toString()).toBe('kept')
    expect((await kms.send(new DescribeKeyCommand({ KeyId: m.KeyId }))).KeyMetadata!.Description).toBe('durable')
  }, 60_000)
})

describe('the AWS KMS adapter against kms serve: errors, retries and outages', () => {
  let server: KmsServeProcess

  beforeAll(async () => {
    server = await startKmsServe({ args: ['--max-rps', '2'] })
  }, 60_000)
  afterAll(async () => {
    await server?.stop()
  })

  it('retries throttling with backoff, then reports S3SSE_KMS_UNAVAILABLE', async () => {
    const patient = new AwsKms({ endpoint: server.url, credentials: server.credentials, ca: server.ca, maxAttempts: 8 })
    const hasty = new AwsKms({ endpoint: server.url, credentials: server.credentials, ca: server.ca, maxAttempts: 1 })
    try {
      const key = await patient.ensureKey('throttled')
      // Six calls at once against two a second: without retries some are throttled; with them all succeed.
      const results = await Promise.allSettled(Array.from({ length: 6 }, () => hasty.generateDataKey(key.keyId, { bucket: 'b' })))
      const refused = results.filter((r) => r.status === 'rejected') as PromiseRejectedResult[]
      expect(refused.length).toBeGreaterThan(0)
      for (const r of refused) {
        expect(r.reason.code).toBe('S3SSE_KMS_UNAVAILABLE')
        expect(r.reason.message).toMatch(/ThrottlingException/)
      }
      const retried = await Promise.all(Array.from({ length: 6 }, () => patient.generateDataKey(key.keyId, { bucket: 'b' })))
      expect(retried.every((dk) => dk.plaintext.length === 32)).toBe(true)
    } finally {
      await patient.close()
      await hasty.close()
    }
  }, 60_000)

  it('maps refused credentials to S3SSE_KMS_ACCESS_DENIED without echoing them', async () => {
    const secret = 'this-secret-must-not-appear'
    const bad = new AwsKms({ endpoint: server.url, credentials: { accessKeyId: 'AKIDNOPE', secretAccessKey: secret }, ca: server.ca, maxAttempts: 1 })
    try {
      const e = await expectCode(bad.describeKey('alias/x'), 'S3SSE_KMS_ACCESS_DENIED')
      expect(e.message).toMatch(/UnrecognizedClientException/)
      expect(e.message).not.toContain(secret)
    } finally {
      await bad.close()
    }
  })

  it('an endpoint that does not answer is S3SSE_KMS_UNAVAILABLE after retries', async () => {
    const dead = new AwsKms({ endpoint: 'https://127.0.0.1:1', credentials: server.credentials, ca: server.ca, maxAttempts: 2 })
    try {
      await expectCode(dead.generateDataKey('alias/x', { bucket: 'b' }), 'S3SSE_KMS_UNAVAILABLE')
    } finally {
      await dead.close()
    }
  })
})

describe('kms serve with the aws CLI v2', () => {
  const runs = requireOrSkip(existsSync(AWS) ? undefined : `${AWS} is not installed (apt-get install awscli)`, 'aws CLI kms tests')
  let server: KmsServeProcess

  beforeAll(async () => {
    if (runs) server = await startKmsServe()
  }, 60_000)
  afterAll(async () => {
    await server?.stop()
  })

  function aws(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      execFile(AWS, ['--endpoint-url', server.url, '--region', 'us-east-1', '--output', 'json', 'kms', ...args], {
        env: {
          PATH: process.env.PATH, HOME: server.dataDir, AWS_CA_BUNDLE: server.caFile,
          AWS_ACCESS_KEY_ID: server.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: server.credentials.secretAccessKey,
          AWS_CONFIG_FILE: '/dev/null', AWS_SHARED_CREDENTIALS_FILE: '/dev/null', AWS_PAGER: '',
        },
      }, (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }))
    })
  }

  async function ok(...args: string[]): Promise<Record<string, unknown>> {
    const r = await aws(...args)
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    return r.stdout.trim() ? JSON.parse(r.stdout) as Record<string, unknown> : {}
  }

  const test = runs ? it : it.skip

  test('create-key, create-alias, list-keys, describe-key, generate-data-key, encrypt, decrypt, re-encrypt, disable-key', async () => {
    const created = await ok('create-key', '--description', 'cli key')
    const keyId = (created.KeyMetadata as { KeyId: string }).KeyId
    await ok('create-alias', '--alias-name', 'alias/cli', '--target-key-id', keyId)
    const listed = await ok('list-keys')
    expect((listed.Keys as Array<{ KeyId: string }>).map((k) => k.KeyId)).toContain(keyId)
    const described = await ok('describe-key', '--key-id', 'alias/cli')
    expect(described.KeyMetadata).toMatchObject({ KeyId: keyId, Description: 'cli key', KeyState: 'Enabled' })

    const dk = await ok('generate-data-key', '--key-id', 'alias/cli', '--key-spec', 'AES_256', '--encryption-context', 'bucket=photos,key=cat.jpg')
    const blob = join(server.dataDir, 'blob.bin')
    writeFileSync(blob, Buffer.from(dk.CiphertextBlob as string, 'base64'))
    const dec = await ok('decrypt', '--ciphertext-blob', `fileb://${blob}`, '--encryption-context', 'bucket=photos,key=cat.jpg')
    expect(dec.Plaintext).toBe(dk.Plaintext)
    const wrong = await aws('decrypt', '--ciphertext-blob', `fileb://${blob}`, '--encryption-context', 'bucket=photos,key=dog.jpg')
    expect(wrong.code).not.toBe(0)
    expect(wrong.stderr).toContain('InvalidCiphertextException')

    const secretFile = join(server.dataDir, 'secret.txt')
    writeFileSync(secretFile, 'attack at dawn')
    const enc = await ok('encrypt', '--key-id', keyId, '--plaintext', `fileb://${secretFile}`)
    const encFile = join(server.dataDir, 'enc.bin')
    writeFileSync(encFile, Buffer.from(enc.CiphertextBlob as string, 'base64'))
    const other = (await ok('create-key')).KeyMetadata as { KeyId: string; Arn: string }
    const re = await ok('re-encrypt', '--ciphertext-blob', `fileb://${encFile}`, '--destination-key-id', other.KeyId)
    expect(re.KeyId).toBe(other.Arn)
    const reFile = join(server.dataDir, 're.bin')
    writeFileSync(reFile, Buffer.from(re.CiphertextBlob as string, 'base64'))
    const back = await ok('decrypt', '--ciphertext-blob', `fileb://${reFile}`)
    expect(Buffer.from(back.Plaintext as string, 'base64').toString()).toBe('attack at dawn')

    await ok('disable-key', '--key-id', keyId)
    const disabled = await aws('generate-data-key', '--key-id', 'alias/cli', '--key-spec', 'AES_256')
    expect(disabled.code).not.toBe(0)
    expect(disabled.stderr).toContain('DisabledException')
    expect(((await ok('describe-key', '--key-id', keyId)).KeyMetadata as { KeyState: string }).KeyState).toBe('Disabled')
  }, 60_000)
})
