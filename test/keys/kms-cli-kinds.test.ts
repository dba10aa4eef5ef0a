/**
 * `s3-sse kms …` admin commands against each external kind: the AWS KMS API (a real
 * `kms serve`, credentials from the standard chain's environment variables) and PKCS#11
 * (SoftHSM2). The embedded kind's commands are in embedded.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { kmsCommand } from '../../src/keys/cli.js'
import { startKmsServe, type KmsServeProcess } from '../helpers/kms-server.js'
import { createSoftHsmToken, requireOrSkip, softhsmMissing, type SoftHsmToken } from '../helpers/softhsm.js'

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = ''
  let err = ''
  const code = await kmsCommand(args, { out: (t) => { out += t }, err: (t) => { err += t } })
  return { code, out, err }
}

async function lifecycle(flags: string[]): Promise<void> {
  const created = await run(['create', '--alias', 'cli-key', '--description', 'made by the CLI', '--json', ...flags])
  expect(created.err).toBe('')
  expect(created.code).toBe(0)
  const key = JSON.parse(created.out) as { keyId: string; alias: string }
  expect(key.alias).toBe('alias/cli-key')
  const listed = await run(['list', ...flags])
  expect(listed.code).toBe(0)
  expect(listed.out).toMatch(new RegExp(`${key.keyId}\\s+alias/cli-key\\s+1/1\\s+enabled`))
  expect((await run(['rotate', 'alias/cli-key', ...flags])).out).toMatch(/version:\s+2 of 2/)
  expect((await run(['disable', key.keyId, ...flags])).out).toMatch(/state:\s+disabled/)
  expect((await run(['enable', key.keyId, ...flags])).out).toMatch(/state:\s+enabled/)
  expect((await run(['alias', 'second-name', key.keyId, ...flags])).code).toBe(0)
  expect((await run(['describe', 'alias/second-name', ...flags])).out).toContain(key.keyId)
  const missing = await run(['describe', 'alias/nothing-here', ...flags])
  expect(missing.code).toBe(1)
  expect(missing.err).toContain('S3SSE_KMS_KEY_NOT_FOUND')
}

describe('s3-sse kms --kms aws (against kms serve)', () => {
  let server: KmsServeProcess
  const saved = { id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY }
  beforeAll(async () => {
    server = await startKmsServe()
    process.env.AWS_ACCESS_KEY_ID = server.credentials.accessKeyId
    process.env.AWS_SECRET_ACCESS_KEY = server.credentials.secretAccessKey
  }, 60_000)
  afterAll(async () => {
    // Put back key by key: assigning process.env a plain object would cut it off the real environment.
    if (saved.id === undefined) delete process.env.AWS_ACCESS_KEY_ID
    else process.env.AWS_ACCESS_KEY_ID = saved.id
    if (saved.secret === undefined) delete process.env.AWS_SECRET_ACCESS_KEY
    else process.env.AWS_SECRET_ACCESS_KEY = saved.secret
    await server?.stop()
  })

  it('creates, lists, rotates, disables, enables, aliases and describes keys', async () => {
    await lifecycle(['--kms', 'aws', '--kms-endpoint', server.url, '--kms-region', 'us-east-1', '--kms-ca-file', server.caFile])
  })

  it('refuses flags of another kind and says why a call failed', async () => {
    const mixed = await run(['list', '--kms', 'aws', '--pkcs11-token', 'x'])
    expect(mixed.code).toBe(2)
    expect(mixed.err).toContain('--pkcs11-token goes with --kms pkcs11')
    process.env.AWS_SECRET_ACCESS_KEY = 'wrong-secret-value'
    const denied = await run(['list', '--kms', 'aws', '--kms-endpoint', server.url, '--kms-ca-file', server.caFile])
    process.env.AWS_SECRET_ACCESS_KEY = server.credentials.secretAccessKey
    expect(denied.code).toBe(1)
    expect(denied.err).toContain('S3SSE_KMS_ACCESS_DENIED')
    expect(denied.err).not.toContain('wrong-secret-value')
  })
})

describe('s3-sse kms --kms pkcs11 (SoftHSM2)', () => {
  const runs = requireOrSkip(softhsmMissing(), 's3-sse kms --kms pkcs11')
  let token: SoftHsmToken
  beforeAll(() => {
    if (runs) token = createSoftHsmToken()
  })
  afterAll(() => token?.cleanup())

  ;(runs ? it : it.skip)('creates, lists, rotates, disables, enables, aliases and describes keys', async () => {
    await lifecycle(['--kms', 'pkcs11', '--pkcs11-module', token.module, '--pkcs11-token', token.label, '--pkcs11-pin-file', token.pinFile])
    const noPin = await run(['list', '--kms', 'pkcs11', '--pkcs11-module', token.module, '--pkcs11-token', token.label])
    expect(noPin.code).toBe(2)
    expect(noPin.err).toContain('--kms pkcs11 needs --pkcs11-pin-file')
  })
})
