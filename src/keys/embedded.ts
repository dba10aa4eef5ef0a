import { randomBytes, randomUUID } from 'node:crypto'
import * as fs from 'node:fs'
import { fsyncDirSync, writeFileAtomic } from '../durable.js'
import { S3sseError } from '../errors.js'
import { KEY_SIZE } from '../crypto/constants.js'
import type { EncryptionContext } from './context.js'
import { parseKeyRef, type DataKey, type KeyInfo, type KmsAdmin } from './kms.js'
import {
  ROOT_KEY_ENV, kmsPaths, openKeyring, parseRootKey, readRootKeyFile, removeDeadLockTemps, sealKeyring, withFileLock,
  writeNewFile, type KeyringBody, type KmsPaths, type StoredKey,
} from './keyring.js'
import { parseWrapped, unwrapBytes, unwrapDataKey, wrapBytes, wrapDataKey } from './wrap.js'

/** An alias and the key it names (AWS KMS ListAliases). */
export interface AliasInfo {
  alias: string
  keyId: string
}

/** A key's automatic rotation (AWS KMS GetKeyRotationStatus). */
export interface RotationStatus {
  keyId: string
  enabled: boolean
  periodDays?: number
  /** When the next automatic rotation is due (ISO 8601). */
  next?: string
}

/** AWS KMS's bounds and default for RotationPeriodInDays. */
export const MIN_ROTATION_DAYS = 90
export const MAX_ROTATION_DAYS = 2560
export const DEFAULT_ROTATION_DAYS = 365
const DAY_MS = 24 * 3600 * 1000

/**
 * The embedded KMS: master keys with versions in a keyring file in the data dir
 * (`DIR/kms/keyring`), sealed under a root key. Rotation adds a version and makes it current;
 * every version keeps decrypting what it wrapped.
 *
 * One process is expected to own a data dir. Writes are serialised inside the process and,
 * through a lock file, against an `s3-sse kms` command run beside the server: each write
 * re-reads the file under the lock, applies its change and replaces the file atomically.
 * Every call first checks (one stat) whether the file changed on disk and reloads it, so
 * keys created or rotated by the command are seen by the server at once.
 */
export class EmbeddedKms implements KmsAdmin {
  private body: KeyringBody
  private materials = new Map<string, Uint8Array[]>()
  private fileId = ''
  private queue: Promise<unknown> = Promise.resolve()
  private closed = false

  /** How long a write waits for another process's lock before S3SSE_KMS_UNAVAILABLE. */
  lockTimeoutMs = 10_000

  /** @internal use openEmbeddedKms */
  constructor(readonly paths: KmsPaths, private readonly root: Uint8Array, body: KeyringBody) {
    this.body = body
    this.load(body)
    this.fileId = statId(paths.keyring)
  }

  async createKey(opts: { alias?: string; description?: string } = {}): Promise<KeyInfo> {
    const alias = opts.alias === undefined ? undefined : normaliseAlias(opts.alias)
    if (opts.description !== undefined && (typeof opts.description !== 'string' || opts.description.length > 8192)) {
      throw new S3sseError('S3SSE_BAD_ARGUMENT', 'a key description is a string of at most 8192 characters')
    }
    return this.mutate((body) => {
      if (alias !== undefined && body.keys.some((k) => hasAlias(k, alias))) {
        throw new S3sseError('S3SSE_KMS_ALIAS_EXISTS', `the alias ${alias} already names a key`)
      }
      const key = newStoredKey(alias, opts.description)
      body.keys.push(key)
      return info(key)
    })
  }

  async ensureKey(alias: string): Promise<KeyInfo> {
    const name = normaliseAlias(alias)
    this.refresh()
    const found = this.body.keys.find((k) => hasAlias(k, name))
    if (found) return info(found)
    return this.mutate((body) => {
      // Checked again under the lock: two first writes to a bucket create one key.
      const existing = body.keys.find((k) => hasAlias(k, name))
      if (existing) return info(existing)
      const key = newStoredKey(name, undefined)
      body.keys.push(key)
      return info(key)
    })
  }

  async describeKey(keyIdOrAlias: string): Promise<KeyInfo> {
    this.refresh()
    return info(this.resolve(keyIdOrAlias))
  }

  async listKeys(): Promise<KeyInfo[]> {
    this.refresh()
    return this.body.keys.map(info)
  }

  async generateDataKey(keyIdOrAlias: string, context: EncryptionContext): Promise<DataKey> {
    this.refresh()
    const key = this.usable(this.resolve(keyIdOrAlias))
    const plaintext: Uint8Array = randomBytes(KEY_SIZE)
    const wrapped = wrapDataKey(this.material(key.id, key.current), key.id, key.current, plaintext, context)
    return { plaintext, wrapped, keyId: key.id, keyVersion: key.current }
  }

  async decrypt(wrapped: Uint8Array, context: EncryptionContext): Promise<Uint8Array> {
    this.refresh()
    const { keyId, keyVersion } = parseWrapped(wrapped)
    const key = this.usable(this.byId(keyId))
    if (keyVersion > key.versions.length) {
      throw new S3sseError('S3SSE_KMS_KEY_NOT_FOUND', `key ${keyId} has no version ${keyVersion}`)
    }
    return unwrapDataKey(this.material(keyId, keyVersion), wrapped, context)
  }

  async encrypt(keyIdOrAlias: string, plaintext: Uint8Array, context: EncryptionContext): Promise<{ wrapped: Uint8Array; keyId: string; keyVersion: number }> {
    this.refresh()
    if (!(plaintext instanceof Uint8Array) || plaintext.length !== KEY_SIZE) {
      throw new S3sseError('S3SSE_BAD_ARGUMENT', `the embedded KMS encrypts data keys only: KEY_SIZE = ${KEY_SIZE} bytes`)
    }
    const key = this.usable(this.resolve(keyIdOrAlias))
    return { wrapped: wrapDataKey(this.material(key.id, key.current), key.id, key.current, plaintext, context), keyId: key.id, keyVersion: key.current }
  }

  async reEncrypt(wrapped: Uint8Array, context: EncryptionContext, newContext: EncryptionContext, newKeyId?: string): Promise<{ wrapped: Uint8Array; keyId: string; keyVersion: number }> {
    const plaintext = await this.decrypt(wrapped, context)
    try {
      return await this.encrypt(newKeyId ?? parseWrapped(wrapped).keyId, plaintext, newContext)
    } finally {
      plaintext.fill(0)
    }
  }

  async rotateKey(keyIdOrAlias: string): Promise<KeyInfo> {
    this.refresh()
    const id = this.resolve(keyIdOrAlias).id
    return this.mutate((body) => {
      const key = body.keys.find((k) => k.id === id)
      if (!key) throw new S3sseError('S3SSE_KMS_KEY_NOT_FOUND', `no key ${id}`)
      key.versions.push({ version: key.versions.length + 1, createdAt: new Date().toISOString(), material: newMaterial(), rotation: 'ON_DEMAND' })
      key.current = key.versions.length
      return info(key)
    })
  }

  /** A disabled key neither wraps nor unwraps (S3SSE_KMS_KEY_DISABLED) until enabled again. */
  async disableKey(keyIdOrAlias: string): Promise<KeyInfo> {
    return this.setEnabled(keyIdOrAlias, false)
  }

  async enableKey(keyIdOrAlias: string): Promise<KeyInfo> {
    return this.setEnabled(keyIdOrAlias, true)
  }

  /**
   * Seals 1 to MAX_WRAP_PLAINTEXT bytes of any secret under the current version of a key, in
   * the wrapped-key layout (AWS KMS Encrypt and GenerateDataKey of any size, for `kms serve`).
   */
  async encryptBytes(keyIdOrAlias: string, plaintext: Uint8Array, context: EncryptionContext): Promise<{ wrapped: Uint8Array; keyId: string; keyVersion: number }> {
    this.refresh()
    const key = this.usable(this.resolve(keyIdOrAlias))
    return { wrapped: wrapBytes(this.material(key.id, key.current), key.id, key.current, plaintext, context), keyId: key.id, keyVersion: key.current }
  }

  /** Opens what encryptBytes (or generateDataKey) sealed; the blob names its key. */
  async decryptBytes(wrapped: Uint8Array, context: EncryptionContext): Promise<{ plaintext: Uint8Array; keyId: string; keyVersion: number }> {
    this.refresh()
    const { keyId, keyVersion } = parseWrapped(wrapped)
    const key = this.usable(this.byId(keyId))
    if (keyVersion > key.versions.length) {
      throw new S3sseError('S3SSE_KMS_KEY_NOT_FOUND', `key ${keyId} has no version ${keyVersion}`)
    }
    return { plaintext: unwrapBytes(this.material(keyId, keyVersion), wrapped, context), keyId, keyVersion }
  }

  /** Gives a key one more alias; an alias names one key only (S3SSE_KMS_ALIAS_EXISTS). */
  async createAlias(alias: string, keyIdOrAlias: string): Promise<KeyInfo> {
    const name = normaliseAlias(alias)
    if (name.startsWith('alias/aws/')) throw new S3sseError('S3SSE_BAD_ARGUMENT', 'aliases that begin with alias/aws/ are reserved')
    this.refresh()
    const id = this.resolve(keyIdOrAlias).id
    return this.mutate((body) => {
      if (body.keys.some((k) => hasAlias(k, name))) throw new S3sseError('S3SSE_KMS_ALIAS_EXISTS', `the alias ${name} already names a key`)
      const key = body.keys.find((k) => k.id === id)
      if (!key) throw new S3sseError('S3SSE_KMS_KEY_NOT_FOUND', `no key ${id}`)
      if (key.alias === undefined) key.alias = name
      else key.aliases = [...(key.aliases ?? []), name]
      return info(key)
    })
  }

  /** Every alias with the key it names, in key order. */
  async listAliases(): Promise<AliasInfo[]> {
    this.refresh()
    return this.body.keys.flatMap((k) => allAliases(k).map((alias) => ({ alias, keyId: k.id })))
  }

  /**
   * Turns automatic rotation on (a new version every `periodDays`, counted from now) or off.
   * The schedule lives in the keyring; `rotateDue` carries it out.
   */
  async setRotation(keyIdOrAlias: string, enabled: boolean, periodDays = DEFAULT_ROTATION_DAYS, now = Date.now()): Promise<RotationStatus> {
    if (enabled && (!Number.isInteger(periodDays) || periodDays < MIN_ROTATION_DAYS || periodDays > MAX_ROTATION_DAYS)) {
      throw new S3sseError('S3SSE_BAD_ARGUMENT', `a rotation period is ${MIN_ROTATION_DAYS} to ${MAX_ROTATION_DAYS} days`)
    }
    this.refresh()
    const id = this.usable(this.resolve(keyIdOrAlias)).id
    return this.mutate((body) => {
      const key = body.keys.find((k) => k.id === id)
      if (!key) throw new S3sseError('S3SSE_KMS_KEY_NOT_FOUND', `no key ${id}`)
      if (enabled) key.rotation = { periodDays, next: new Date(now + periodDays * DAY_MS).toISOString() }
      else delete key.rotation
      return rotationStatus(key)
    })
  }

  /** The rotations a key has had, oldest first (AWS KMS ListKeyRotations): versions 2 and up. */
  async listRotations(keyIdOrAlias: string): Promise<Array<{ version: number; createdAt: string; type: 'AUTOMATIC' | 'ON_DEMAND' }>> {
    this.refresh()
    return this.resolve(keyIdOrAlias).versions.slice(1).map((v) => ({ version: v.version, createdAt: v.createdAt, type: v.rotation ?? 'ON_DEMAND' }))
  }

  async rotationStatus(keyIdOrAlias: string): Promise<RotationStatus> {
    this.refresh()
    return rotationStatus(this.resolve(keyIdOrAlias))
  }

  /** Rotates every enabled key whose automatic rotation is due at `now`; returns them. */
  async rotateDue(now = Date.now()): Promise<KeyInfo[]> {
    this.refresh()
    const due = (k: StoredKey) => k.enabled && k.rotation !== undefined && Date.parse(k.rotation.next) <= now
    if (!this.body.keys.some(due)) return []
    return this.mutate((body) => body.keys.filter(due).map((key) => {
      key.versions.push({ version: key.versions.length + 1, createdAt: new Date(now).toISOString(), material: newMaterial(), rotation: 'AUTOMATIC' })
      key.current = key.versions.length
      key.rotation = { periodDays: key.rotation!.periodDays, next: new Date(now + key.rotation!.periodDays * DAY_MS).toISOString() }
      return info(key)
    }))
  }

  /** Zeroes the key material in memory; later calls fail with S3SSE_KMS_UNAVAILABLE. */
  async close(): Promise<void> {
    await this.queue.catch(() => {})
    this.closed = true
    this.wipe()
    this.root.fill(0)
  }

  private async setEnabled(keyIdOrAlias: string, enabled: boolean): Promise<KeyInfo> {
    this.refresh()
    const id = this.resolve(keyIdOrAlias).id
    return this.mutate((body) => {
      const key = body.keys.find((k) => k.id === id)
      if (!key) throw new S3sseError('S3SSE_KMS_KEY_NOT_FOUND', `no key ${id}`)
      key.enabled = enabled
      return info(key)
    })
  }

  /**
   * Applies `change` to the keyring on disk: one at a time in this process, under the file
   * lock across processes, starting from the newest file. Memory is updated only after the
   * new file is safely in place, so a failed write changes nothing.
   */
  private mutate<T>(change: (body: KeyringBody) => T): Promise<T> {
    this.assertOpen()
    const run = async () => withFileLock(this.paths.lock, () => {
      this.assertOpen()
      this.refresh()
      const body = structuredClone(this.body)
      const result = change(body)
      body.generation += 1
      writeFileAtomic(this.paths.keyring, sealKeyring(this.root, body))
      this.load(body)
      this.fileId = statId(this.paths.keyring)
      return result
    }, this.lockTimeoutMs)
    const p = this.queue.then(run, run)
    this.queue = p.catch(() => {})
    return p
  }

  /** Reloads the keyring when the file on disk is not the one loaded (another process wrote it). */
  private refresh(): void {
    this.assertOpen()
    const id = statId(this.paths.keyring)
    if (id === this.fileId || id === '') return
    const body = openKeyring(this.root, fs.readFileSync(this.paths.keyring), this.paths.keyring)
    if (body.generation < this.body.generation) return
    this.load(body)
    this.fileId = id
  }

  private load(body: KeyringBody): void {
    this.wipe()
    for (const k of body.keys) {
      this.materials.set(k.id, k.versions.map((v) => {
        // Small Buffer.from() results live in Node's shared pool: copy out, then wipe the pool slice.
        const pooled = Buffer.from(v.material, 'base64')
        const material = new Uint8Array(pooled)
        pooled.fill(0)
        return material
      }))
    }
    this.body = body
  }

  private wipe(): void {
    for (const versions of this.materials.values()) for (const m of versions) m.fill(0)
    this.materials.clear()
  }

  private material(id: string, version: number): Uint8Array {
    const m = this.materials.get(id)?.[version - 1]
    if (!m) throw new S3sseError('S3SSE_KMS_KEY_NOT_FOUND', `key ${id} has no version ${version}`)
    return m
  }

  private byId(id: string): StoredKey {
    const key = this.body.keys.find((k) => k.id === id)
    if (!key) throw new S3sseError('S3SSE_KMS_KEY_NOT_FOUND', `no key ${id} in this keyring`)
    return key
  }

  private usable(key: StoredKey): StoredKey {
    if (!key.enabled) throw new S3sseError('S3SSE_KMS_KEY_DISABLED', `key ${key.id} is disabled`)
    return key
  }

  /** Key id, `alias/NAME`, bare NAME, or the ARN of a key or an alias (parseKeyRef). */
  private resolve(keyIdOrAlias: string): StoredKey {
    if (typeof keyIdOrAlias !== 'string' || keyIdOrAlias.length === 0) {
      throw new S3sseError('S3SSE_KMS_KEY_NOT_FOUND', 'no key id or alias given')
    }
    const ref = parseKeyRef(keyIdOrAlias)
    const key = 'alias' in ref
      ? this.body.keys.find((k) => hasAlias(k, ref.alias))
      : 'keyId' in ref
        ? this.body.keys.find((k) => k.id === ref.keyId)
        : this.body.keys.find((k) => k.id === ref.name) ?? this.body.keys.find((k) => hasAlias(k, `alias/${ref.name}`))
    if (!key) throw new S3sseError('S3SSE_KMS_KEY_NOT_FOUND', `no key ${JSON.stringify(keyIdOrAlias)} in this keyring`)
    return key
  }

  private assertOpen(): void {
    if (this.closed) throw new S3sseError('S3SSE_KMS_UNAVAILABLE', 'the embedded KMS has been closed')
  }
}

/** Aliases are stored as `alias/NAME`; NAME is letters, digits and / _ . : - (AWS allows a subset). */
export function normaliseAlias(alias: string): string {
  const name = typeof alias === 'string' && alias.startsWith('alias/') ? alias : `alias/${alias}`
  if (typeof alias !== 'string' || !/^alias\/[A-Za-z0-9/_.:-]{1,250}$/.test(name)) {
    throw new S3sseError('S3SSE_BAD_ARGUMENT', 'an alias is 1 to 250 of A-Z a-z 0-9 / _ . : - (optionally after "alias/")')
  }
  return name
}

function allAliases(k: StoredKey): string[] {
  return [...(k.alias !== undefined ? [k.alias] : []), ...(k.aliases ?? [])]
}

function hasAlias(k: StoredKey, name: string): boolean {
  return k.alias === name || (k.aliases?.includes(name) ?? false)
}

function rotationStatus(k: StoredKey): RotationStatus {
  return k.rotation ? { keyId: k.id, enabled: true, periodDays: k.rotation.periodDays, next: k.rotation.next } : { keyId: k.id, enabled: false }
}

/** Fresh master key material as base64 (the keyring body is JSON); the bytes are wiped. */
function newMaterial(): string {
  const bytes = randomBytes(KEY_SIZE)
  const text = bytes.toString('base64')
  bytes.fill(0)
  return text
}

function newStoredKey(alias: string | undefined, description: string | undefined): StoredKey {
  const now = new Date().toISOString()
  return {
    id: randomUUID(),
    ...(alias !== undefined ? { alias } : {}),
    ...(description !== undefined ? { description } : {}),
    createdAt: now,
    enabled: true,
    current: 1,
    versions: [{ version: 1, createdAt: now, material: newMaterial() }],
  }
}

function info(k: StoredKey): KeyInfo {
  return {
    keyId: k.id,
    ...(k.alias !== undefined ? { alias: k.alias } : {}),
    ...(k.aliases?.length ? { aliases: allAliases(k) } : {}),
    ...(k.description !== undefined ? { description: k.description } : {}),
    createdAt: k.createdAt,
    enabled: k.enabled,
    versions: k.versions.length,
    current: k.current,
  }
}

/** Identity of the file now on disk ('' when absent): a rename gives a new inode. */
function statId(file: string): string {
  try {
    const st = fs.statSync(file, { bigint: true })
    return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}`
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return ''
    throw e
  }
}

/**
 * Opens (or, on first start, creates) the embedded KMS of `dataDir`.
 *
 * The root key is, in this order: `opts.rootKey`; S3SSE_KMS_ROOT_KEY (base64 of 32 bytes);
 * the file `DIR/kms/root.key` (mode 0600). With none of them and no keyring, a root key is
 * generated and saved to that file. A keyring that does not open under the root key
 * (S3SSE_KMS_KEYRING_WRONG_ROOT_KEY), is damaged (S3SSE_KMS_KEYRING_DAMAGED) or is gone while
 * its root key file is still there (S3SSE_KMS_KEYRING_MISSING) is an error: a fresh keyring
 * would silently make every stored object unreadable. With `create: false` a data dir without
 * a keyring is an error too (S3SSE_KMS_KEYRING_MISSING), for tools that must not create one.
 */
export async function openEmbeddedKms(dataDir: string, opts: { rootKey?: Uint8Array; create?: boolean; lockTimeoutMs?: number } = {}): Promise<EmbeddedKms> {
  const paths = kmsPaths(dataDir)
  if (opts.create === false && !fs.existsSync(paths.keyring)) {
    throw new S3sseError('S3SSE_KMS_KEYRING_MISSING', `there is no keyring at ${paths.keyring}`)
  }
  fs.mkdirSync(paths.dir, { recursive: true, mode: 0o700 })
  const kms = await withFileLock(paths.lock, () => openLocked(paths, opts), opts.lockTimeoutMs)
  if (opts.lockTimeoutMs !== undefined) kms.lockTimeoutMs = opts.lockTimeoutMs
  return kms
}

function openLocked(paths: KmsPaths, opts: { rootKey?: Uint8Array }): EmbeddedKms {
  removeStaleTemps(paths)
  let root: Uint8Array | null = null
  let rootFromFile = false
  if (opts.rootKey !== undefined) {
    if (!(opts.rootKey instanceof Uint8Array) || opts.rootKey.length !== KEY_SIZE) {
      throw new S3sseError('S3SSE_KMS_ROOT_KEY_INVALID', `the root key must be KEY_SIZE = ${KEY_SIZE} bytes`)
    }
    root = new Uint8Array(opts.rootKey)
  } else if (process.env[ROOT_KEY_ENV]) {
    root = parseRootKey(process.env[ROOT_KEY_ENV]!, ROOT_KEY_ENV)
  } else if (fs.existsSync(paths.rootKey)) {
    root = readRootKeyFile(paths.rootKey)
    rootFromFile = true
  }

  if (fs.existsSync(paths.keyring)) {
    if (root === null && fs.existsSync(paths.rootKeyPending)) {
      // A first start that crashed after writing the keyring but before committing its
      // root key: finish it, but only if the pending key really opens the keyring.
      const pending = readRootKeyFile(paths.rootKeyPending)
      const body = openKeyring(pending, fs.readFileSync(paths.keyring), paths.keyring)
      fs.renameSync(paths.rootKeyPending, paths.rootKey)
      fsyncDirSync(paths.dir)
      return new EmbeddedKms(paths, pending, body)
    }
    if (root === null) {
      throw new S3sseError('S3SSE_KMS_ROOT_KEY_MISSING',
        `${paths.keyring} exists but there is no root key: set ${ROOT_KEY_ENV} or restore ${paths.rootKey}`)
    }
    return new EmbeddedKms(paths, root, openKeyring(root, fs.readFileSync(paths.keyring), paths.keyring))
  }

  if (rootFromFile) {
    throw new S3sseError('S3SSE_KMS_KEYRING_MISSING',
      `${paths.rootKey} exists but ${paths.keyring} does not: restore the keyring from a backup, or remove the root key file to start an empty keyring`)
  }
  const empty: KeyringBody = { format: 1, generation: 1, keys: [] }
  if (root !== null) {
    writeFileAtomic(paths.keyring, sealKeyring(root, empty))
    return new EmbeddedKms(paths, root, empty)
  }
  // First start: the root key is written as pending, the keyring after it, and only then is
  // the key committed by a rename. A crash at any point leaves a state open() recovers from.
  const fresh: Uint8Array = randomBytes(KEY_SIZE)
  fs.rmSync(paths.rootKeyPending, { force: true })
  writeNewFile(paths.rootKeyPending, Buffer.from(fresh).toString('base64') + '\n')
  writeFileAtomic(paths.keyring, sealKeyring(fresh, empty))
  fs.renameSync(paths.rootKeyPending, paths.rootKey)
  fsyncDirSync(paths.dir)
  return new EmbeddedKms(paths, fresh, empty)
}

function removeStaleTemps(paths: KmsPaths): void {
  for (const name of fs.readdirSync(paths.dir)) {
    if (name.startsWith('keyring.tmp-')) fs.rmSync(`${paths.dir}/${name}`, { force: true })
  }
  removeDeadLockTemps(paths.dir, 'keyring.lock')
}
