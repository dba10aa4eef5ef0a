import { createCipheriv, createDecipheriv, createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { S3sseError } from '../errors.js'
import { KEY_SIZE, TAG_SIZE } from '../crypto/constants.js'
import { hkdfSha256 } from '../crypto/kdf.js'

/**
 * The keyring file of the embedded KMS and its root key (docs/FORMAT.md, "Keyring file").
 *
 *   "S3KR" ‖ 0x01 ‖ root check (16) ‖ salt (32) ‖ AES-256-GCM(body) ‖ tag (16)
 *
 * Each write draws a fresh salt and derives key ‖ IV = HKDF-SHA256(root, salt,
 * "s3-sse v1 keyring", 44); the 55-byte header is the AAD. The root check
 * (HMAC-SHA256(root, "s3-sse v1 keyring root check")[0..16)) lets open tell a wrong root key
 * from a damaged file. Neither ever leads to a new, empty keyring.
 */

export const KEYRING_MAGIC = Buffer.from('S3KR', 'latin1')
export const KEYRING_FORMAT = 1
const SALT_SIZE = 32
const CHECK_SIZE = 16
const IV_SIZE = 12
const HEADER_SIZE = 4 + 1 + CHECK_SIZE + SALT_SIZE
const KEYRING_INFO = Buffer.from('s3-sse v1 keyring', 'latin1')
const CHECK_LABEL = Buffer.from('s3-sse v1 keyring root check', 'latin1')

export const ROOT_KEY_ENV = 'S3SSE_KMS_ROOT_KEY'

/** Files of the embedded KMS, all in `DIR/kms/`. */
export interface KmsPaths {
  dir: string
  keyring: string
  rootKey: string
  /** A root key written on first start but not yet committed (see firstStart). */
  rootKeyPending: string
  lock: string
}

export function kmsPaths(dataDir: string): KmsPaths {
  const dir = path.join(dataDir, 'kms')
  return {
    dir,
    keyring: path.join(dir, 'keyring'),
    rootKey: path.join(dir, 'root.key'),
    rootKeyPending: path.join(dir, 'root.key.pending'),
    lock: path.join(dir, 'keyring.lock'),
  }
}

/** The keyring body (JSON inside the sealed file). Material is base64. */
export interface KeyringBody {
  format: 1
  /** Increases with every write, so a reader can tell an older file from a newer one. */
  generation: number
  keys: StoredKey[]
}

export interface StoredKey {
  id: string
  /** The key's first alias (`alias/NAME`); what KeyInfo.alias reports. */
  alias?: string
  /** Further aliases given with `createAlias` (AWS KMS allows several per key). */
  aliases?: string[]
  description?: string
  /** Automatic rotation is on: a new version every `periodDays`, the next one at `next`. */
  rotation?: { periodDays: number; next: string }
  createdAt: string
  enabled: boolean
  current: number
  /** `rotation`: how the version came (versions after the first); absent in older keyrings. */
  versions: Array<{ version: number; createdAt: string; material: string; rotation?: 'AUTOMATIC' | 'ON_DEMAND' }>
}

function rootCheck(root: Uint8Array): Buffer {
  return createHmac('sha256', root).update(CHECK_LABEL).digest().subarray(0, CHECK_SIZE)
}

export function sealKeyring(root: Uint8Array, body: KeyringBody, salt: Uint8Array = randomBytes(SALT_SIZE)): Buffer {
  const header = Buffer.alloc(HEADER_SIZE)
  KEYRING_MAGIC.copy(header, 0)
  header[4] = KEYRING_FORMAT
  rootCheck(root).copy(header, 5)
  header.set(salt, 5 + CHECK_SIZE)
  const okm = hkdfSha256(root, salt, KEYRING_INFO, KEY_SIZE + IV_SIZE)
  try {
    const cipher = createCipheriv('aes-256-gcm', okm.subarray(0, KEY_SIZE), okm.subarray(KEY_SIZE))
    cipher.setAAD(header)
    const plain = Buffer.from(JSON.stringify(body), 'utf8')
    const ct = Buffer.concat([cipher.update(plain), cipher.final()])
    plain.fill(0)
    return Buffer.concat([header, ct, cipher.getAuthTag()])
  } finally {
    okm.fill(0)
  }
}

export function openKeyring(root: Uint8Array, file: Uint8Array, where: string): KeyringBody {
  const bytes = Buffer.from(file.buffer, file.byteOffset, file.byteLength)
  if (bytes.length < HEADER_SIZE + TAG_SIZE || !bytes.subarray(0, 4).equals(KEYRING_MAGIC)) {
    throw new S3sseError('S3SSE_KMS_KEYRING_DAMAGED', `${where} is not an s3-sse keyring (bad magic or too short); restore it from a backup`)
  }
  if (bytes[4] !== KEYRING_FORMAT) {
    throw new S3sseError('S3SSE_KMS_KEYRING_DAMAGED', `${where} has keyring format ${bytes[4]}; this version reads format ${KEYRING_FORMAT}`)
  }
  if (!timingSafeEqual(bytes.subarray(5, 5 + CHECK_SIZE), rootCheck(root))) {
    throw new S3sseError('S3SSE_KMS_KEYRING_WRONG_ROOT_KEY',
      `${where} was sealed under a different root key (check ${ROOT_KEY_ENV} or kms/root.key)`)
  }
  const salt = bytes.subarray(5 + CHECK_SIZE, HEADER_SIZE)
  const okm = hkdfSha256(root, salt, KEYRING_INFO, KEY_SIZE + IV_SIZE)
  let plain: Buffer
  try {
    const decipher = createDecipheriv('aes-256-gcm', okm.subarray(0, KEY_SIZE), okm.subarray(KEY_SIZE))
    decipher.setAAD(bytes.subarray(0, HEADER_SIZE))
    decipher.setAuthTag(bytes.subarray(bytes.length - TAG_SIZE))
    plain = decipher.update(bytes.subarray(HEADER_SIZE, bytes.length - TAG_SIZE))
    try {
      decipher.final()
    } catch {
      plain.fill(0)
      throw new S3sseError('S3SSE_KMS_KEYRING_DAMAGED', `${where} is damaged: it fails authentication under the right root key; restore it from a backup`)
    }
  } finally {
    okm.fill(0)
  }
  try {
    return checkBody(JSON.parse(plain.toString('utf8')), where)
  } catch (e) {
    if (e instanceof S3sseError) throw e
    throw new S3sseError('S3SSE_KMS_KEYRING_DAMAGED', `${where} authenticates but its body is not a keyring`)
  } finally {
    plain.fill(0)
  }
}

function checkBody(b: unknown, where: string): KeyringBody {
  const bad = (why: string) => new S3sseError('S3SSE_KMS_KEYRING_DAMAGED', `${where}: ${why}`)
  const body = b as KeyringBody
  if (!body || body.format !== 1 || !Number.isInteger(body.generation) || !Array.isArray(body.keys)) throw bad('not a keyring body')
  for (const k of body.keys) {
    if (typeof k.id !== 'string' || typeof k.createdAt !== 'string' || typeof k.enabled !== 'boolean' || !Array.isArray(k.versions)) throw bad('a key entry is malformed')
    k.versions.forEach((v, i) => {
      if (v.version !== i + 1 || typeof v.material !== 'string' || Buffer.from(v.material, 'base64').length !== KEY_SIZE) throw bad(`key ${k.id} has a malformed version`)
    })
    if (!Number.isInteger(k.current) || k.current < 1 || k.current > k.versions.length) throw bad(`key ${k.id} has no current version`)
    if (k.aliases !== undefined && (!Array.isArray(k.aliases) || k.aliases.some((a) => typeof a !== 'string'))) throw bad(`key ${k.id} has malformed aliases`)
    if (k.rotation !== undefined && (!Number.isInteger(k.rotation.periodDays) || Number.isNaN(Date.parse(k.rotation.next)))) throw bad(`key ${k.id} has a malformed rotation schedule`)
  }
  return body
}

/** Decodes S3SSE_KMS_ROOT_KEY-style text: strict base64 of exactly KEY_SIZE bytes. */
export function parseRootKey(text: string, source: string): Uint8Array {
  const t = text.trim()
  const bytes = Buffer.from(t, 'base64')
  try {
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(t) || bytes.length !== KEY_SIZE || bytes.toString('base64') !== t) {
      throw new S3sseError('S3SSE_KMS_ROOT_KEY_INVALID', `${source} must be the base64 of exactly KEY_SIZE = ${KEY_SIZE} bytes`)
    }
    return new Uint8Array(bytes)
  } finally {
    bytes.fill(0) // a small Buffer.from() lives in Node's shared pool
  }
}

/** Reads a root key file; it must be readable by its owner only (like ssh's private keys). */
export function readRootKeyFile(file: string): Uint8Array {
  const st = fs.statSync(file)
  if ((st.mode & 0o077) !== 0) {
    throw new S3sseError('S3SSE_KMS_ROOT_KEY_INVALID',
      `${file} is readable by group or others (mode ${(st.mode & 0o777).toString(8)}); chmod 600 it`)
  }
  return parseRootKey(fs.readFileSync(file, 'utf8'), file)
}

/** Writes a new file with O_EXCL and mode 0600, fsynced. */
export function writeNewFile(file: string, data: Uint8Array | string): void {
  const fd = fs.openSync(file, 'wx', 0o600)
  try {
    fs.writeFileSync(fd, data)
    fs.fsyncSync(fd)
  } finally {
    fs.closeSync(fd)
  }
}

/** Locks held by this process, so a lock file left with our own (reused) pid is seen as stale. */
const heldLocks = new Set<string>()

function processAlive(pid: number): boolean {
  if (pid === process.pid) return true
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/**
 * Takes the keyring's write lock (a file made with O_EXCL holding our pid), so the server and
 * an `s3-sse kms` command on the same data dir never overwrite each other's changes. A lock
 * whose process is gone is taken over. Gives up after `timeoutMs` with S3SSE_KMS_UNAVAILABLE.
 */
export async function withFileLock<T>(lockFile: string, fn: () => T | Promise<T>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      const fd = fs.openSync(lockFile, 'wx', 0o600)
      fs.writeSync(fd, String(process.pid))
      fs.closeSync(fd)
      break
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e
    }
    let holder = NaN
    try {
      holder = Number.parseInt(fs.readFileSync(lockFile, 'utf8'), 10)
    } catch {
      // Removed between our open and read, or still being written: try again.
    }
    const stale = Number.isInteger(holder) && (holder === process.pid ? !heldLocks.has(lockFile) : !processAlive(holder))
    if (stale) {
      fs.rmSync(lockFile, { force: true })
      continue
    }
    if (Date.now() > deadline) {
      throw new S3sseError('S3SSE_KMS_UNAVAILABLE', `the keyring is locked by process ${Number.isNaN(holder) ? '?' : holder} (${lockFile})`)
    }
    await new Promise((r) => setTimeout(r, 10))
  }
  heldLocks.add(lockFile)
  try {
    return await fn()
  } finally {
    heldLocks.delete(lockFile)
    fs.rmSync(lockFile, { force: true })
  }
}
