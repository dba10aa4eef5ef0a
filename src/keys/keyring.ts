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

/**
 * When a process started, as the kernel counts it (field 22 of /proc/PID/stat, clock ticks
 * since boot): with the pid it names one process for good, since a pid is reused only by a
 * process that starts later. undefined where /proc is not there (the pid alone is used).
 */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
    // The command name (field 2) is in parentheses and may hold spaces and parentheses.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]
  } catch {
    return undefined
  }
}

function processAlive(pid: number): boolean {
  if (pid === process.pid) return true
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** What a lock file says: `pid start-time`, written whole before the file gets its name. */
function lockRecord(): string {
  return `${process.pid} ${processStartTime(process.pid) ?? '-'}\n`
}

/**
 * Whether the holder a lock file names is gone: its pid is dead, or now belongs to a process
 * that started at another time (the holder died and the pid was reused), or the file holds
 * no record at all (a crash of a version that wrote the file in two steps). A lock of a
 * live holder is never broken.
 */
function holderGone(text: string, lockFile: string, ageMs: number): boolean {
  const m = /^(\d+)(?: (\d+|-))?\s*$/.exec(text)
  if (!m) return true
  const pid = Number(m[1])
  if (pid === process.pid) return !heldLocks.has(lockFile)
  if (!processAlive(pid)) return true
  const start = m[2]
  // A bare pid: a lock left by an older version, whose pid may now be anyone's. No s3-sse
  // holds the lock longer than one keyring write, so past a few seconds it is stale.
  if (start === undefined) return ageMs > LEGACY_LOCK_STALE_MS
  if (start === '-') return false
  const now = processStartTime(pid)
  return now !== undefined && now !== start
}

/** A lock file holding only a pid (older versions) is stale once this old. */
const LEGACY_LOCK_STALE_MS = 5_000

/**
 * Takes the keyring's write lock, so the server and an `s3-sse kms` command on the same data
 * dir never overwrite each other's changes. The lock is a file holding its holder's pid and
 * process start time; it is created complete (a temp file hard-linked into place, which
 * fails if the lock exists), so a reader never sees it half-written. A lock whose holder
 * died is released as the OS would release an flock: the next taker sees that the pid is
 * gone or belongs to another process, and breaks it. Gives up after `timeoutMs` with
 * S3SSE_KMS_UNAVAILABLE.
 */
export async function withFileLock<T>(lockFile: string, fn: () => T | Promise<T>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  const record = lockRecord()
  const tmp = `${lockFile}.${process.pid}-${randomBytes(6).toString('hex')}`
  let holder = '?'
  writeNewFile(tmp, record)
  try {
    for (;;) {
      try {
        fs.linkSync(tmp, lockFile)
        break
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e
      }
      let text: string
      let st: fs.Stats
      try {
        st = fs.statSync(lockFile)
        text = fs.readFileSync(lockFile, 'utf8')
      } catch {
        continue // released between our link and read: try again
      }
      const ino = st.ino
      holder = text.trim().split(' ')[0] || '?'
      if (holderGone(text, lockFile, Date.now() - st.mtimeMs)) {
        breakLock(lockFile, ino)
        continue
      }
      if (Date.now() > deadline) {
        throw new S3sseError('S3SSE_KMS_UNAVAILABLE', `the keyring is locked by process ${holder} (${lockFile})`)
      }
      await new Promise((r) => setTimeout(r, 10))
    }
  } finally {
    fs.rmSync(tmp, { force: true })
  }
  heldLocks.add(lockFile)
  try {
    return await fn()
  } finally {
    heldLocks.delete(lockFile)
    releaseLock(lockFile, record)
  }
}

/**
 * Removes a stale lock, but only the file that was judged: moved aside first, and put back
 * if it turns out to be another one (a new holder took the lock in between).
 */
function breakLock(lockFile: string, ino: number): void {
  const aside = `${lockFile}.stale-${process.pid}-${randomBytes(6).toString('hex')}`
  try {
    fs.renameSync(lockFile, aside)
  } catch {
    return
  }
  if (fs.statSync(aside).ino !== ino) {
    // Not the file judged stale: a new holder's lock. Put it back (this fails only if yet
    // another process took the lock in the instant between: three racing takers).
    try {
      fs.linkSync(aside, lockFile)
    } catch {
      // left to the holders' own release, which removes only their own record
    }
  }
  fs.rmSync(aside, { force: true })
}

/** Removes our lock file, and only ours (a breaker may have replaced a lock it thought stale). */
function releaseLock(lockFile: string, record: string): void {
  try {
    if (fs.readFileSync(lockFile, 'utf8') === record) fs.rmSync(lockFile, { force: true })
  } catch {
    // already gone
  }
}

/** Temp files of lock takers that died between writing their record and linking it. */
export function removeDeadLockTemps(dir: string, lockName: string): void {
  for (const name of fs.readdirSync(dir)) {
    const m = new RegExp(`^${lockName.replace(/\./g, '\\.')}\\.(?:stale-)?(\\d+)-[0-9a-f]+$`).exec(name)
    if (m && !processAlive(Number(m[1]))) fs.rmSync(path.join(dir, name), { force: true })
  }
}
