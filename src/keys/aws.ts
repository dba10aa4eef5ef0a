/**
 * The KMS contract over the AWS KMS API (Amazon KMS, or `s3-sse kms serve`) through
 * @aws-sdk/client-kms. Credentials come from the SDK's standard chain (environment, shared
 * config and credentials files, profiles, container and instance roles) unless given.
 *
 * - Data keys: GenerateDataKey (AES_256) with the encryption context; Decrypt with the same
 *   context; Encrypt / ReEncrypt for rewrap and rotation. The blob is the service's own; the
 *   key version is tracked inside it by the service, so `keyVersion` is 0 here.
 * - A bucket's service key is created on first use: CreateKey, then CreateAlias. Two gateways
 *   racing to create it end with one alias; the loser's key is scheduled for deletion.
 * - Throttling, 5xx and network failures are retried by the SDK's standard retry strategy
 *   (exponential backoff with jitter, `maxAttempts` in all), then S3SSE_KMS_UNAVAILABLE.
 * - AWS answers InvalidCiphertextException both for an altered blob and for a wrong
 *   encryption context, so here both are S3SSE_KMS_BAD_CIPHERTEXT: S3SSE_KMS_CONTEXT_MISMATCH
 *   is never reported by this kind.
 */
import https from 'node:https'
import { readFileSync } from 'node:fs'
import {
  CreateAliasCommand, CreateKeyCommand, DecryptCommand, DescribeKeyCommand, DisableKeyCommand,
  DisableKeyRotationCommand, EnableKeyCommand, EnableKeyRotationCommand, EncryptCommand, GenerateDataKeyCommand,
  GetKeyRotationStatusCommand, KMSClient, ListAliasesCommand, ListKeyRotationsCommand, ListKeysCommand,
  ReEncryptCommand, RotateKeyOnDemandCommand, ScheduleKeyDeletionCommand, type KeyMetadata,
} from '@aws-sdk/client-kms'
import { NodeHttpHandler } from '@smithy/node-http-handler'
import { S3sseError, isS3sseError, type S3sseErrorCode } from '../errors.js'
import { KEY_SIZE } from '../crypto/constants.js'
import type { EncryptionContext } from './context.js'
import type { DataKey, KeyInfo, KmsAdmin } from './kms.js'
import type { RotationStatus } from './embedded.js'

export interface AwsKmsOptions {
  /** The service's URL (default: the SDK's regional endpoint of Amazon KMS). */
  endpoint?: string
  /** Default: the SDK's chain (AWS_REGION, the profile), else us-east-1. */
  region?: string
  /** Default: the SDK's standard credential chain. */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string }
  /** PEM certificates to trust for the endpoint (a self-signed `kms serve`); default AWS_CA_BUNDLE. */
  ca?: string | Buffer
  /** Tries per call, the first included (4). */
  maxAttempts?: number
  /** Milliseconds one try may take before it counts as failed (10 s). */
  requestTimeoutMs?: number
  /** Parallel connections to the service (64). */
  maxSockets?: number
  /**
   * How an object's context reaches the service: `plain` sends s3-sse's pairs as they are
   * (`{bucket, key}`); `s3-arn` sends what Amazon S3 sends, `{"aws:s3:arn":
   * "arn:aws:s3:::bucket/key"}` (the bucket's ARN for a bucket key), so key policies and audit
   * logs written for S3 apply. Extra pairs are sent as they are either way.
   */
  contextStyle?: 'plain' | 's3-arn'
}

export const S3_ARN_CONTEXT_KEY = 'aws:s3:arn'

/** s3-sse's context in Amazon S3's form (AWS KMS developer guide, "Encryption context" for S3). */
export function s3ArnContext(context: EncryptionContext): EncryptionContext {
  const { bucket, key, ...rest } = context
  if (bucket === undefined || Object.prototype.hasOwnProperty.call(rest, S3_ARN_CONTEXT_KEY)) {
    throw new S3sseError('S3SSE_BAD_ARGUMENT', `an S3-style encryption context needs "bucket" and may not also set "${S3_ARN_CONTEXT_KEY}"`)
  }
  return { ...rest, [S3_ARN_CONTEXT_KEY]: key === undefined ? `arn:aws:s3:::${bucket}` : `arn:aws:s3:::${bucket}/${key}` }
}

/** AWS KMS exception names → s3-sse codes (AWS KMS API reference, each action's "Errors"). */
const EXCEPTIONS: Record<string, S3sseErrorCode> = {
  NotFoundException: 'S3SSE_KMS_KEY_NOT_FOUND',
  DisabledException: 'S3SSE_KMS_KEY_DISABLED',
  KMSInvalidStateException: 'S3SSE_KMS_INVALID_STATE',
  KeyUnavailableException: 'S3SSE_KMS_UNAVAILABLE',
  InvalidCiphertextException: 'S3SSE_KMS_BAD_CIPHERTEXT',
  IncorrectKeyException: 'S3SSE_KMS_BAD_CIPHERTEXT',
  AlreadyExistsException: 'S3SSE_KMS_ALIAS_EXISTS',
  AccessDeniedException: 'S3SSE_KMS_ACCESS_DENIED',
  NotAuthorizedException: 'S3SSE_KMS_ACCESS_DENIED',
  UnrecognizedClientException: 'S3SSE_KMS_ACCESS_DENIED',
  InvalidSignatureException: 'S3SSE_KMS_ACCESS_DENIED',
  IncompleteSignatureException: 'S3SSE_KMS_ACCESS_DENIED',
  MissingAuthenticationTokenException: 'S3SSE_KMS_ACCESS_DENIED',
  ExpiredTokenException: 'S3SSE_KMS_ACCESS_DENIED',
  InvalidGrantTokenException: 'S3SSE_KMS_ACCESS_DENIED',
  ValidationException: 'S3SSE_BAD_ARGUMENT',
  InvalidAliasNameException: 'S3SSE_BAD_ARGUMENT',
  InvalidKeyUsageException: 'S3SSE_BAD_ARGUMENT',
  UnsupportedOperationException: 'S3SSE_BAD_ARGUMENT',
  InvalidArnException: 'S3SSE_BAD_ARGUMENT',
}

/** The typed error for whatever a KMS call threw; the service's message is kept, nothing sent is. */
export function awsKmsError(e: unknown, what: string): S3sseError {
  if (isS3sseError(e)) return e
  const err = e as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } }
  const name = err?.name ?? 'Error'
  const code = EXCEPTIONS[name]
  if (code) return new S3sseError(code, `${what}: ${name}: ${err.message ?? ''}`.trimEnd(), { cause: e })
  if (name === 'CredentialsProviderError') {
    return new S3sseError('S3SSE_KMS_UNAVAILABLE', `${what}: no AWS credentials found (environment, shared config files or an instance role)`, { cause: e })
  }
  const status = err?.$metadata?.httpStatusCode
  const why = status !== undefined ? `${name} (HTTP ${status})` : `${name}: ${err?.message ?? 'no answer'}`
  return new S3sseError('S3SSE_KMS_UNAVAILABLE', `${what}: the KMS did not answer usefully after retries: ${why}`, { cause: e })
}

/** AWS names keys by id, ARN or `alias/NAME`; s3-sse also allows a bare alias NAME. */
export function awsKeyRef(keyIdOrAlias: string): string {
  if (typeof keyIdOrAlias !== 'string' || keyIdOrAlias === '') throw new S3sseError('S3SSE_KMS_KEY_NOT_FOUND', 'no key id or alias given')
  if (keyIdOrAlias.startsWith('arn:') || keyIdOrAlias.startsWith('alias/')) return keyIdOrAlias
  if (/^(mrk-)?[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i.test(keyIdOrAlias) || /^mrk-[0-9a-f]{32}$/.test(keyIdOrAlias)) return keyIdOrAlias
  return `alias/${keyIdOrAlias}`
}

function bytes(v: Uint8Array | undefined, what: string): Uint8Array {
  if (!(v instanceof Uint8Array) || v.length === 0) throw new S3sseError('S3SSE_KMS_UNAVAILABLE', `${what}: the KMS answered without the expected blob`)
  return v
}

export class AwsKms implements KmsAdmin {
  readonly client: KMSClient
  private closed = false
  private readonly ctx: (c: EncryptionContext) => EncryptionContext

  constructor(opts: AwsKmsOptions = {}) {
    const caFile = process.env.AWS_CA_BUNDLE
    const ca = opts.ca ?? (caFile ? readFileSync(caFile) : undefined)
    this.ctx = opts.contextStyle === 's3-arn' ? s3ArnContext : (c) => c
    const agent = new https.Agent({ keepAlive: true, maxSockets: opts.maxSockets ?? 64, ...(ca ? { ca } : {}) })
    this.client = new KMSClient({
      ...(opts.endpoint ? { endpoint: opts.endpoint } : {}),
      region: opts.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1',
      ...(opts.credentials ? { credentials: opts.credentials } : {}),
      maxAttempts: opts.maxAttempts ?? 4,
      retryMode: 'standard',
      requestHandler: new NodeHttpHandler({ httpsAgent: agent, requestTimeout: opts.requestTimeoutMs ?? 10_000, connectionTimeout: 5_000 }),
    })
  }

  private async call<T>(what: string, run: () => Promise<T>): Promise<T> {
    if (this.closed) throw new S3sseError('S3SSE_KMS_UNAVAILABLE', 'the AWS KMS client has been closed')
    try {
      return await run()
    } catch (e) {
      throw awsKmsError(e, what)
    }
  }

  async generateDataKey(keyIdOrAlias: string, context: EncryptionContext): Promise<DataKey> {
    const out = await this.call('GenerateDataKey', () => this.client.send(new GenerateDataKeyCommand({ KeyId: awsKeyRef(keyIdOrAlias), KeySpec: 'AES_256', EncryptionContext: this.ctx(context) })))
    const plaintext = bytes(out.Plaintext, 'GenerateDataKey')
    if (plaintext.length !== KEY_SIZE) throw new S3sseError('S3SSE_KMS_UNAVAILABLE', `GenerateDataKey returned ${plaintext.length} bytes, not KEY_SIZE = ${KEY_SIZE}`)
    return { plaintext, wrapped: bytes(out.CiphertextBlob, 'GenerateDataKey'), keyId: out.KeyId ?? keyIdOrAlias, keyVersion: 0 }
  }

  async decrypt(wrapped: Uint8Array, context: EncryptionContext): Promise<Uint8Array> {
    const out = await this.call('Decrypt', () => this.client.send(new DecryptCommand({ CiphertextBlob: wrapped, EncryptionContext: this.ctx(context) })))
    const plaintext = bytes(out.Plaintext, 'Decrypt')
    if (plaintext.length !== KEY_SIZE) {
      plaintext.fill(0)
      throw new S3sseError('S3SSE_KMS_BAD_CIPHERTEXT', `the blob does not hold a data key of KEY_SIZE = ${KEY_SIZE} bytes`)
    }
    return plaintext
  }

  async encrypt(keyIdOrAlias: string, plaintext: Uint8Array, context: EncryptionContext): Promise<{ wrapped: Uint8Array; keyId: string; keyVersion: number }> {
    const out = await this.call('Encrypt', () => this.client.send(new EncryptCommand({ KeyId: awsKeyRef(keyIdOrAlias), Plaintext: plaintext, EncryptionContext: this.ctx(context) })))
    return { wrapped: bytes(out.CiphertextBlob, 'Encrypt'), keyId: out.KeyId ?? keyIdOrAlias, keyVersion: 0 }
  }

  async reEncrypt(wrapped: Uint8Array, context: EncryptionContext, newContext: EncryptionContext, newKeyId?: string): Promise<{ wrapped: Uint8Array; keyId: string; keyVersion: number }> {
    // ReEncrypt needs a destination; "its own key" is only known from the blob, by the service.
    let destination = newKeyId === undefined ? undefined : awsKeyRef(newKeyId)
    if (destination === undefined) {
      const source = await this.call('Decrypt', () => this.client.send(new DecryptCommand({ CiphertextBlob: wrapped, EncryptionContext: this.ctx(context) })))
      source.Plaintext?.fill(0)
      destination = source.KeyId
      if (!destination) throw new S3sseError('S3SSE_KMS_UNAVAILABLE', 'Decrypt did not name the key of the blob')
    }
    const out = await this.call('ReEncrypt', () => this.client.send(new ReEncryptCommand({
      CiphertextBlob: wrapped, SourceEncryptionContext: this.ctx(context), DestinationKeyId: destination, DestinationEncryptionContext: this.ctx(newContext),
    })))
    return { wrapped: bytes(out.CiphertextBlob, 'ReEncrypt'), keyId: out.KeyId ?? destination!, keyVersion: 0 }
  }

  async ensureKey(alias: string): Promise<KeyInfo> {
    const ref = awsKeyRef(alias)
    try {
      return await this.describeKey(ref)
    } catch (e) {
      if (!isS3sseError(e, 'S3SSE_KMS_KEY_NOT_FOUND')) throw e
    }
    const created = await this.call('CreateKey', () => this.client.send(new CreateKeyCommand({ Description: `s3-sse service key ${ref}` })))
    const keyId = created.KeyMetadata!.KeyId!
    try {
      await this.call('CreateAlias', () => this.client.send(new CreateAliasCommand({ AliasName: ref, TargetKeyId: keyId })))
    } catch (e) {
      if (!isS3sseError(e, 'S3SSE_KMS_ALIAS_EXISTS')) throw e
      // Another gateway created the bucket's key first: use theirs, retire ours (best effort).
      await this.client.send(new ScheduleKeyDeletionCommand({ KeyId: keyId, PendingWindowInDays: 7 })).catch(() => undefined)
      return this.describeKey(ref)
    }
    return this.info(created.KeyMetadata!, ref)
  }

  async describeKey(keyIdOrAlias: string): Promise<KeyInfo> {
    const ref = awsKeyRef(keyIdOrAlias)
    const out = await this.call('DescribeKey', () => this.client.send(new DescribeKeyCommand({ KeyId: ref })))
    return this.info(out.KeyMetadata!, ref.startsWith('alias/') ? ref : undefined)
  }

  // The admin surface (s3-sse kms … --kms aws).

  async createKey(opts: { alias?: string; description?: string } = {}): Promise<KeyInfo> {
    const created = await this.call('CreateKey', () => this.client.send(new CreateKeyCommand({ ...(opts.description ? { Description: opts.description } : {}) })))
    const keyId = created.KeyMetadata!.KeyId!
    if (opts.alias === undefined) return this.info(created.KeyMetadata!)
    const alias = awsKeyRef(opts.alias.startsWith('alias/') ? opts.alias : `alias/${opts.alias}`)
    await this.call('CreateAlias', () => this.client.send(new CreateAliasCommand({ AliasName: alias, TargetKeyId: keyId })))
    return this.info(created.KeyMetadata!, alias)
  }

  async createAlias(alias: string, keyIdOrAlias: string): Promise<KeyInfo> {
    const name = alias.startsWith('alias/') ? alias : `alias/${alias}`
    const target = (await this.describeKey(keyIdOrAlias)).keyId
    await this.call('CreateAlias', () => this.client.send(new CreateAliasCommand({ AliasName: name, TargetKeyId: target })))
    return this.describeKey(target)
  }

  async listKeys(): Promise<KeyInfo[]> {
    const ids: string[] = []
    let marker: string | undefined
    do {
      const page = await this.call('ListKeys', () => this.client.send(new ListKeysCommand({ Marker: marker })))
      for (const k of page.Keys ?? []) if (k.KeyId) ids.push(k.KeyId)
      marker = page.Truncated ? page.NextMarker : undefined
    } while (marker)
    const aliases = new Map<string, string[]>()
    marker = undefined
    do {
      const page = await this.call('ListAliases', () => this.client.send(new ListAliasesCommand({ Marker: marker })))
      for (const a of page.Aliases ?? []) {
        if (a.TargetKeyId && a.AliasName) aliases.set(a.TargetKeyId, [...(aliases.get(a.TargetKeyId) ?? []), a.AliasName])
      }
      marker = page.Truncated ? page.NextMarker : undefined
    } while (marker)
    const out: KeyInfo[] = []
    for (const id of ids) {
      const info = await this.describeKey(id)
      const names = aliases.get(info.keyId)
      out.push({ ...info, ...(names ? { alias: names[0], ...(names.length > 1 ? { aliases: names } : {}) } : {}) })
    }
    return out
  }

  async rotateKey(keyIdOrAlias: string): Promise<KeyInfo> {
    const keyId = (await this.describeKey(keyIdOrAlias)).keyId
    await this.call('RotateKeyOnDemand', () => this.client.send(new RotateKeyOnDemandCommand({ KeyId: keyId })))
    return this.describeKey(keyIdOrAlias)
  }

  async disableKey(keyIdOrAlias: string): Promise<KeyInfo> {
    const keyId = (await this.describeKey(keyIdOrAlias)).keyId
    await this.call('DisableKey', () => this.client.send(new DisableKeyCommand({ KeyId: keyId })))
    return this.describeKey(keyId)
  }

  async enableKey(keyIdOrAlias: string): Promise<KeyInfo> {
    const keyId = (await this.describeKey(keyIdOrAlias)).keyId
    await this.call('EnableKey', () => this.client.send(new EnableKeyCommand({ KeyId: keyId })))
    return this.describeKey(keyId)
  }

  async setRotation(keyIdOrAlias: string, enabled: boolean, periodDays?: number): Promise<RotationStatus> {
    const keyId = (await this.describeKey(keyIdOrAlias)).keyId
    await this.call(enabled ? 'EnableKeyRotation' : 'DisableKeyRotation', () => this.client.send(enabled
      ? new EnableKeyRotationCommand({ KeyId: keyId, ...(periodDays ? { RotationPeriodInDays: periodDays } : {}) })
      : new DisableKeyRotationCommand({ KeyId: keyId })))
    return this.rotationStatus(keyId)
  }

  async rotationStatus(keyIdOrAlias: string): Promise<RotationStatus> {
    const keyId = (await this.describeKey(keyIdOrAlias)).keyId
    const out = await this.call('GetKeyRotationStatus', () => this.client.send(new GetKeyRotationStatusCommand({ KeyId: keyId })))
    return {
      keyId,
      enabled: out.KeyRotationEnabled === true,
      ...(out.RotationPeriodInDays ? { periodDays: out.RotationPeriodInDays } : {}),
      ...(out.NextRotationDate ? { next: out.NextRotationDate.toISOString() } : {}),
    }
  }

  async close(): Promise<void> {
    this.closed = true
    this.client.destroy()
  }

  /** KeyInfo of a key; versions from ListKeyRotations where the service allows it. */
  private async info(m: KeyMetadata, alias?: string): Promise<KeyInfo> {
    let versions = 1
    try {
      let marker: string | undefined
      do {
        const page = await this.client.send(new ListKeyRotationsCommand({ KeyId: m.KeyId, Marker: marker }))
        versions += page.Rotations?.length ?? 0
        marker = page.Truncated ? page.NextMarker : undefined
      } while (marker)
    } catch {
      // Not every service or policy allows ListKeyRotations; the count is then unknown (1).
    }
    return {
      keyId: m.KeyId!,
      ...(alias ? { alias } : {}),
      ...(m.Description ? { description: m.Description } : {}),
      createdAt: (m.CreationDate ?? new Date(0)).toISOString(),
      enabled: m.KeyState === 'Enabled',
      versions,
      current: versions,
    }
  }
}

export function awsKms(opts?: AwsKmsOptions): AwsKms {
  return new AwsKms(opts)
}
