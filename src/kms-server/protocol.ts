/**
 * The AWS KMS JSON 1.1 protocol over the embedded KMS (AWS KMS API reference: the actions
 * and "Common Errors"): one function per `X-Amz-Target: TrentService.<Op>`, taking the
 * parsed JSON body and answering the JSON the SDKs and the aws CLI expect. Binary fields are
 * base64, timestamps are epoch seconds.
 *
 * Ciphertext blobs are the embedded KMS's wrapped-key format (docs/FORMAT.md §7): they name
 * their key and version, so Decrypt needs no KeyId, and bind the encryption context, so a
 * wrong context fails as InvalidCiphertextException, as on AWS.
 */
import { randomBytes } from 'node:crypto'
import { isS3sseError } from '../errors.js'
import type { EncryptionContext } from '../keys/context.js'
import type { EmbeddedKms } from '../keys/embedded.js'
import type { KeyInfo } from '../keys/kms.js'
import { MAX_WRAP_PLAINTEXT } from '../keys/wrap.js'

/** An error in the protocol's shape: `{"__type": type, "message": …}` with its HTTP status. */
export class KmsApiError extends Error {
  constructor(readonly type: string, message: string, readonly status = 400) {
    super(message)
    this.name = 'KmsApiError'
  }
}

export interface Caller {
  /** Root of the data dir's users: may also disable, enable and schedule rotation of keys. */
  admin: boolean
}

export interface ProtocolContext {
  kms: EmbeddedKms
  region: string
  account: string
  caller: Caller
}

type Json = Record<string, unknown>
type Operation = (ctx: ProtocolContext, req: Json) => Promise<Json>

const ALGORITHM = 'SYMMETRIC_DEFAULT'

function validation(message: string): KmsApiError {
  return new KmsApiError('ValidationException', message)
}

/**
 * A KeyId as the request gave it. `alias/aws/<service>` names an AWS managed key, which Amazon
 * KMS creates on first use (an S3 gateway in aws mode asks for alias/aws/s3): so does this.
 */
async function keyRef(ctx: ProtocolContext, req: Json, name: string): Promise<string> {
  const ref = str(req, name, true)
  if (/^alias\/aws\/[A-Za-z0-9_-]{1,64}$/.test(ref)) await ctx.kms.ensureKey(ref)
  return ref
}

function str(req: Json, name: string, required: true): string
function str(req: Json, name: string, required?: false): string | undefined
function str(req: Json, name: string, required = false): string | undefined {
  const v = req[name]
  if (v === undefined || v === null) {
    if (required) throw validation(`1 validation error detected: Value null at '${lower(name)}' failed to satisfy constraint: Member must not be null`)
    return undefined
  }
  if (typeof v !== 'string' || v.length === 0) throw validation(`${name} must be a non-empty string`)
  return v
}

function int(req: Json, name: string, min: number, max: number): number | undefined {
  const v = req[name]
  if (v === undefined || v === null) return undefined
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw validation(`1 validation error detected: Value '${String(v)}' at '${lower(name)}' failed to satisfy constraint: Member must have value between ${min} and ${max}`)
  }
  return v
}

function lower(name: string): string {
  return name[0].toLowerCase() + name.slice(1)
}

/** A base64 blob field; strict, so a damaged blob is not silently shortened. */
function blob(req: Json, name: string, max: number): Uint8Array {
  const v = str(req, name, true)
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(v) || v.length % 4 !== 0) throw new KmsApiError('SerializationException', `${name} is not valid base64`)
  const bytes = Buffer.from(v, 'base64')
  if (bytes.length < 1 || bytes.length > max) {
    throw validation(`1 validation error detected: Value at '${lower(name)}' failed to satisfy constraint: Member must have length between 1 and ${max}`)
  }
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}

function context(req: Json, name: string): EncryptionContext {
  const v = req[name]
  if (v === undefined || v === null) return {}
  if (typeof v !== 'object' || Array.isArray(v)) throw validation(`${name} must be a map of strings`)
  for (const value of Object.values(v as Json)) {
    if (typeof value !== 'string') throw validation(`${name} must be a map of strings`)
  }
  return v as EncryptionContext
}

function algorithm(req: Json, name: string): void {
  const v = str(req, name)
  if (v !== undefined && v !== ALGORITHM) {
    throw new KmsApiError('InvalidKeyUsageException', `${name} ${v} is not supported by this key; it supports ${ALGORITHM}`)
  }
}

function b64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64')
}

function keyArn(ctx: ProtocolContext, keyId: string): string {
  return `arn:aws:kms:${ctx.region}:${ctx.account}:key/${keyId}`
}

function aliasArn(ctx: ProtocolContext, alias: string): string {
  return `arn:aws:kms:${ctx.region}:${ctx.account}:${alias}`
}

function epochSeconds(iso: string): number {
  return Date.parse(iso) / 1000
}

function metadata(ctx: ProtocolContext, k: KeyInfo): Json {
  return {
    AWSAccountId: ctx.account,
    KeyId: k.keyId,
    Arn: keyArn(ctx, k.keyId),
    CreationDate: epochSeconds(k.createdAt),
    Enabled: k.enabled,
    Description: k.description ?? '',
    KeyUsage: 'ENCRYPT_DECRYPT',
    KeyState: k.enabled ? 'Enabled' : 'Disabled',
    Origin: 'AWS_KMS',
    KeyManager: k.alias?.startsWith('alias/aws/') ? 'AWS' : 'CUSTOMER',
    CustomerMasterKeySpec: ALGORITHM,
    KeySpec: ALGORITHM,
    EncryptionAlgorithms: [ALGORITHM],
    MultiRegion: false,
  }
}

/** Keys and aliases are paged by position; the marker is opaque to clients. */
function page<T>(items: T[], req: Json): { items: T[]; Truncated: boolean; NextMarker?: string } {
  const limit = int(req, 'Limit', 1, 1000) ?? 100
  const marker = str(req, 'Marker')
  let start = 0
  if (marker !== undefined) {
    const m = /^p([0-9]{1,9})$/.exec(Buffer.from(marker, 'base64').toString('latin1'))
    if (!m) throw new KmsApiError('InvalidMarkerException', 'The marker is not one this service returned')
    start = Number(m[1])
  }
  const slice = items.slice(start, start + limit)
  const truncated = start + limit < items.length
  return { items: slice, Truncated: truncated, ...(truncated ? { NextMarker: Buffer.from(`p${start + limit}`, 'latin1').toString('base64') } : {}) }
}

function adminOnly(ctx: ProtocolContext, op: string): void {
  if (!ctx.caller.admin) {
    throw new KmsApiError('AccessDeniedException', `User is not authorized to perform: kms:${op} (only the root credentials of this KMS may)`)
  }
}

/** How many bytes a GenerateDataKey asks for: KeySpec or NumberOfBytes, exactly one. */
function dataKeySize(req: Json): number {
  const spec = str(req, 'KeySpec')
  const bytes = int(req, 'NumberOfBytes', 1, 1024)
  if ((spec === undefined) === (bytes === undefined)) throw validation('Please specify either number of bytes or key spec.')
  if (spec === undefined) return bytes!
  if (spec === 'AES_256') return 32
  if (spec === 'AES_128') return 16
  throw validation(`1 validation error detected: Value '${spec}' at 'keySpec' failed to satisfy constraint: Member must satisfy enum value set: [AES_256, AES_128]`)
}

async function generate(ctx: ProtocolContext, req: Json, withPlaintext: boolean): Promise<Json> {
  const keyId = await keyRef(ctx, req, 'KeyId')
  const size = dataKeySize(req)
  const enc = context(req, 'EncryptionContext')
  const plaintext = new Uint8Array(randomBytes(size))
  try {
    const out = await ctx.kms.encryptBytes(keyId, plaintext, enc)
    return {
      CiphertextBlob: b64(out.wrapped),
      ...(withPlaintext ? { Plaintext: b64(plaintext) } : {}),
      KeyId: keyArn(ctx, out.keyId),
    }
  } finally {
    plaintext.fill(0)
  }
}

/** Decrypt's source key, checked against the KeyId the caller named (IncorrectKeyException). */
async function checkNamedKey(ctx: ProtocolContext, named: string | undefined, actual: string): Promise<void> {
  if (named === undefined) return
  const info = await ctx.kms.describeKey(named)
  if (info.keyId !== actual) throw new KmsApiError('IncorrectKeyException', 'The key ID in the request does not identify a KMS key that can perform this operation.')
}

export const OPERATIONS: Record<string, Operation> = {
  async CreateKey(ctx, req) {
    const usage = str(req, 'KeyUsage')
    if (usage !== undefined && usage !== 'ENCRYPT_DECRYPT') throw new KmsApiError('UnsupportedOperationException', `KeyUsage ${usage} is not supported: this KMS has symmetric keys only`)
    for (const name of ['KeySpec', 'CustomerMasterKeySpec']) {
      const spec = str(req, name)
      if (spec !== undefined && spec !== ALGORITHM) throw new KmsApiError('UnsupportedOperationException', `${name} ${spec} is not supported: this KMS has ${ALGORITHM} keys only`)
    }
    const origin = str(req, 'Origin')
    if (origin !== undefined && origin !== 'AWS_KMS') throw new KmsApiError('UnsupportedOperationException', `Origin ${origin} is not supported`)
    if (req.MultiRegion === true) throw new KmsApiError('UnsupportedOperationException', 'Multi-Region keys are not supported')
    const description = req.Description === undefined ? undefined : typeof req.Description === 'string' ? req.Description : undefined
    if (req.Description !== undefined && description === undefined) throw validation('Description must be a string')
    return { KeyMetadata: metadata(ctx, await ctx.kms.createKey({ ...(description ? { description } : {}) })) }
  },

  async DescribeKey(ctx, req) {
    return { KeyMetadata: metadata(ctx, await ctx.kms.describeKey(await keyRef(ctx, req, 'KeyId'))) }
  },

  async ListKeys(ctx, req) {
    const p = page(await ctx.kms.listKeys(), req)
    return { Keys: p.items.map((k) => ({ KeyId: k.keyId, KeyArn: keyArn(ctx, k.keyId) })), Truncated: p.Truncated, ...(p.NextMarker ? { NextMarker: p.NextMarker } : {}) }
  },

  async CreateAlias(ctx, req) {
    const alias = str(req, 'AliasName', true)
    const target = str(req, 'TargetKeyId', true)
    if (!/^alias\/[A-Za-z0-9/_-]{1,250}$/.test(alias)) {
      throw validation(`1 validation error detected: Value '${alias}' at 'aliasName' failed to satisfy constraint: Member must satisfy regular expression pattern: ^alias/[a-zA-Z0-9/_-]+$`)
    }
    if (alias.startsWith('alias/aws/')) throw new KmsApiError('NotAuthorizedException', 'Aliases that begin with alias/aws/ are reserved for AWS managed keys')
    if (target.startsWith('alias/') || target.includes(':alias/')) throw validation('TargetKeyId must be a key ID or key ARN, not an alias')
    await ctx.kms.createAlias(alias, target)
    return {}
  },

  async ListAliases(ctx, req) {
    const keyId = str(req, 'KeyId')
    let aliases = await ctx.kms.listAliases()
    if (keyId !== undefined) {
      const id = (await ctx.kms.describeKey(keyId)).keyId
      aliases = aliases.filter((a) => a.keyId === id)
    }
    const p = page(aliases, req)
    return {
      Aliases: p.items.map((a) => ({ AliasName: a.alias, AliasArn: aliasArn(ctx, a.alias), TargetKeyId: a.keyId })),
      Truncated: p.Truncated,
      ...(p.NextMarker ? { NextMarker: p.NextMarker } : {}),
    }
  },

  GenerateDataKey: (ctx, req) => generate(ctx, req, true),
  GenerateDataKeyWithoutPlaintext: (ctx, req) => generate(ctx, req, false),

  async Encrypt(ctx, req) {
    const keyId = await keyRef(ctx, req, 'KeyId')
    const plaintext = blob(req, 'Plaintext', MAX_WRAP_PLAINTEXT)
    algorithm(req, 'EncryptionAlgorithm')
    try {
      const out = await ctx.kms.encryptBytes(keyId, plaintext, context(req, 'EncryptionContext'))
      return { CiphertextBlob: b64(out.wrapped), KeyId: keyArn(ctx, out.keyId), EncryptionAlgorithm: ALGORITHM }
    } finally {
      plaintext.fill(0)
    }
  },

  async Decrypt(ctx, req) {
    const wrapped = blob(req, 'CiphertextBlob', 6144)
    algorithm(req, 'EncryptionAlgorithm')
    const out = await ctx.kms.decryptBytes(wrapped, context(req, 'EncryptionContext'))
    try {
      await checkNamedKey(ctx, str(req, 'KeyId'), out.keyId)
      return { KeyId: keyArn(ctx, out.keyId), Plaintext: b64(out.plaintext), EncryptionAlgorithm: ALGORITHM }
    } finally {
      out.plaintext.fill(0)
    }
  },

  async ReEncrypt(ctx, req) {
    const wrapped = blob(req, 'CiphertextBlob', 6144)
    const destination = await keyRef(ctx, req, 'DestinationKeyId')
    algorithm(req, 'SourceEncryptionAlgorithm')
    algorithm(req, 'DestinationEncryptionAlgorithm')
    const source = await ctx.kms.decryptBytes(wrapped, context(req, 'SourceEncryptionContext'))
    try {
      await checkNamedKey(ctx, str(req, 'SourceKeyId'), source.keyId)
      const out = await ctx.kms.encryptBytes(destination, source.plaintext, context(req, 'DestinationEncryptionContext'))
      return {
        CiphertextBlob: b64(out.wrapped),
        SourceKeyId: keyArn(ctx, source.keyId),
        KeyId: keyArn(ctx, out.keyId),
        SourceEncryptionAlgorithm: ALGORITHM,
        DestinationEncryptionAlgorithm: ALGORITHM,
      }
    } finally {
      source.plaintext.fill(0)
    }
  },

  async EnableKey(ctx, req) {
    adminOnly(ctx, 'EnableKey')
    await ctx.kms.enableKey(str(req, 'KeyId', true))
    return {}
  },

  async DisableKey(ctx, req) {
    adminOnly(ctx, 'DisableKey')
    await ctx.kms.disableKey(str(req, 'KeyId', true))
    return {}
  },

  async EnableKeyRotation(ctx, req) {
    adminOnly(ctx, 'EnableKeyRotation')
    const keyId = str(req, 'KeyId', true)
    const days = int(req, 'RotationPeriodInDays', 90, 2560)
    await ctx.kms.setRotation(keyId, true, days)
    return {}
  },

  async DisableKeyRotation(ctx, req) {
    adminOnly(ctx, 'DisableKeyRotation')
    await ctx.kms.setRotation(str(req, 'KeyId', true), false)
    return {}
  },

  async RotateKeyOnDemand(ctx, req) {
    adminOnly(ctx, 'RotateKeyOnDemand')
    const keyId = str(req, 'KeyId', true)
    const info = await ctx.kms.describeKey(keyId)
    if (!info.enabled) throw new KmsApiError('DisabledException', `${keyArn(ctx, info.keyId)} is disabled.`)
    const rotated = await ctx.kms.rotateKey(info.keyId)
    return { KeyId: keyArn(ctx, rotated.keyId) }
  },

  async GetKeyRotationStatus(ctx, req) {
    const status = await ctx.kms.rotationStatus(str(req, 'KeyId', true))
    return {
      KeyId: keyArn(ctx, status.keyId),
      KeyRotationEnabled: status.enabled,
      ...(status.enabled ? { RotationPeriodInDays: status.periodDays, NextRotationDate: epochSeconds(status.next!) } : {}),
    }
  },

  async ListKeyRotations(ctx, req) {
    const keyId = str(req, 'KeyId', true)
    const info = await ctx.kms.describeKey(keyId)
    const p = page(await ctx.kms.listRotations(info.keyId), req)
    return {
      Rotations: p.items.map((r) => ({ KeyId: keyArn(ctx, info.keyId), RotationDate: epochSeconds(r.createdAt), RotationType: r.type })),
      Truncated: p.Truncated,
      ...(p.NextMarker ? { NextMarker: p.NextMarker } : {}),
    }
  },
}

/**
 * The protocol error for anything an operation threw. Typed KMS errors get their AWS
 * exception names; anything else is a KMSInternalException whose message says nothing of
 * the cause (it is logged by the caller instead).
 */
export function protocolError(e: unknown, ctx: Pick<ProtocolContext, 'region' | 'account'>): KmsApiError & { internal?: boolean } {
  if (e instanceof KmsApiError) return e
  if (isS3sseError(e)) {
    switch (e.code) {
      case 'S3SSE_KMS_KEY_NOT_FOUND': return new KmsApiError('NotFoundException', e.message)
      case 'S3SSE_KMS_KEY_DISABLED': return new KmsApiError('DisabledException', e.message.replace(/^key (\S+)/, (_, id: string) => keyArn(ctx as ProtocolContext, id)))
      // Like AWS, a wrong context and a damaged blob look the same from outside.
      case 'S3SSE_KMS_BAD_CIPHERTEXT':
      case 'S3SSE_KMS_CONTEXT_MISMATCH': return new KmsApiError('InvalidCiphertextException', 'The ciphertext is invalid, was altered, or was not made for this encryption context.')
      case 'S3SSE_KMS_ALIAS_EXISTS': return new KmsApiError('AlreadyExistsException', e.message)
      case 'S3SSE_BAD_ARGUMENT': return new KmsApiError('ValidationException', e.message)
    }
  }
  const err = new KmsApiError('KMSInternalException', 'The request could not be completed because of an internal error in the key management service.', 500) as KmsApiError & { internal?: boolean }
  err.internal = true
  return err
}
