/**
 * The KMS contract over a PKCS#11 hardware security module (tested against SoftHSM2), through
 * the `pkcs11js` binding (an optional dependency, loaded on first use).
 *
 * - Master keys are AES-256 secret-key objects in the token, generated there, sensitive and
 *   non-extractable: their material never leaves the HSM. Each key version is one object
 *   (label `s3-sse <key id> v<version>`); rotation generates the next one.
 * - What a key is (alias, description, state, current version) is a private data object in
 *   the same token (application `s3-sse`), so every gateway on the HSM sees the same keys.
 * - Data keys are generated inside the token and wrapped there by the master key version with
 *   CKM_AES_KEY_WRAP_PAD (RFC 5649), or, for a token without it, encrypted with CKM_AES_GCM.
 *   Neither binds the encryption context, so the blob ends in a check value keyed by the data
 *   key itself (docs/FORMAT.md §7.5): a wrong context is S3SSE_KMS_CONTEXT_MISMATCH, an altered
 *   wrapping S3SSE_KMS_BAD_CIPHERTEXT.
 * - Sessions are pooled (one operation per session at a time, as PKCS#11 requires), and the
 *   cryptographic calls run on libuv's pool. A token that goes away fails the call with
 *   S3SSE_KMS_UNAVAILABLE; the pool is then rebuilt on the next call, so the KMS comes back
 *   by itself when the token does.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { randomUUID } from 'node:crypto'
import { S3sseError, isS3sseError } from '../errors.js'
import { KEY_SIZE, TAG_SIZE } from '../crypto/constants.js'
import { hkdfSha256 } from '../crypto/kdf.js'
import { canonicalContext, type EncryptionContext } from './context.js'
import { normaliseAlias } from './embedded.js'
import type { DataKey, KeyInfo, KmsAdmin } from './kms.js'
import type * as Pkcs11Types from 'pkcs11js'

type Pkcs11Module = typeof Pkcs11Types
type Handle = Buffer

export type Pkcs11Mechanism = 'kwp' | 'gcm'

export interface Pkcs11KmsOptions {
  /** Path of the PKCS#11 module, e.g. /usr/lib/softhsm/libsofthsm2.so. */
  module: string
  /** Label of the token that holds the keys. */
  token: string
  /** The user PIN; or give `pinFile`. Never logged, never part of an error. */
  pin?: string
  pinFile?: string
  /** Sessions kept open (4). */
  sessions?: number
  /** How data keys are wrapped: `kwp` (CKM_AES_KEY_WRAP_PAD), `gcm`, or chosen from what the token offers (default). */
  mechanism?: Pkcs11Mechanism
  /** How long key metadata read from the token is trusted before it is read again (2 s). */
  metadataTtlMs?: number
}

export const PKCS11_BLOB_FORMAT = 0x02
const MECH_CODE: Record<Pkcs11Mechanism, number> = { kwp: 0x01, gcm: 0x02 }
const CHECK_SIZE = 16
const GCM_IV_SIZE = 12
const CHECK_INFO = Buffer.from('s3-sse v1 pkcs11 context check', 'latin1')
const APPLICATION = 's3-sse'

interface KeyMeta {
  id: string
  alias?: string
  aliases?: string[]
  description?: string
  createdAt: string
  enabled: boolean
  current: number
  versions: number
  /** Bumped by every change: a record is replaced by a newer one, never edited in place. */
  generation?: number
}

/** PKCS#11 return values that mean the token or the session is gone (PKCS#11 v2.40 §5.1). */
const GONE = new Set([0x05, 0x06, 0x30, 0x31, 0x32, 0x60, 0x82, 0xb0, 0xb3, 0xe0, 0xe1, 0x101, 0x113, 0x190])
const BAD_BLOB = new Set([0x40, 0x41, 0x110, 0x112])
const DENIED = new Set([0xa0, 0xa4, 0xa1, 0xa2])

/**
 * One initialised module per path in the process, shared by every Pkcs11Kms on it:
 * C_Initialize and C_Finalize are per process, so the last one closed finalises it (and the
 * next open initialises it again, reading e.g. SOFTHSM2_CONF anew).
 */
const modules = new Map<string, { p11: Pkcs11Types.PKCS11; refs: number }>()

function acquireModule(lib: Pkcs11Module, path: string): Pkcs11Types.PKCS11 {
  const shared = modules.get(path)
  if (shared) {
    shared.refs++
    return shared.p11
  }
  const p11 = new lib.PKCS11()
  try {
    p11.load(path)
  } catch (e) {
    throw new S3sseError('S3SSE_KMS_UNAVAILABLE', `the PKCS#11 module ${path} did not load`, { cause: e })
  }
  try {
    p11.C_Initialize({ flags: lib.CKF_OS_LOCKING_OK })
  } catch (e) {
    if ((e as { code?: number }).code !== lib.CKR_CRYPTOKI_ALREADY_INITIALIZED) throw new S3sseError('S3SSE_KMS_UNAVAILABLE', 'the PKCS#11 module failed to initialise', { cause: e })
  }
  modules.set(path, { p11, refs: 1 })
  return p11
}

/**
 * Finalises and initialises a module again: after a token went away many modules (SoftHSM2
 * among them) only see it again through a fresh C_Initialize. Every session of the process on
 * that module ends; their owners notice and reconnect.
 */
function reinitialiseModule(lib: Pkcs11Module, p11: Pkcs11Types.PKCS11): void {
  try { p11.C_Finalize() } catch { /* not initialised any more */ }
  try {
    p11.C_Initialize({ flags: lib.CKF_OS_LOCKING_OK })
  } catch (e) {
    if ((e as { code?: number }).code !== lib.CKR_CRYPTOKI_ALREADY_INITIALIZED) throw e
  }
}

function releaseModule(path: string): void {
  const shared = modules.get(path)
  if (!shared || --shared.refs > 0) return
  modules.delete(path)
  try { shared.p11.C_Finalize() } catch { /* already finalised */ }
  try { shared.p11.close() } catch { /* nothing to unload */ }
}

let loaded: Pkcs11Module | undefined
function loadBinding(): Pkcs11Module {
  if (loaded) return loaded
  try {
    loaded = createRequire(import.meta.url)('pkcs11js') as Pkcs11Module
    return loaded
  } catch (e) {
    throw new S3sseError('S3SSE_KMS_UNAVAILABLE', '--kms pkcs11 needs the optional dependency pkcs11js, which did not load (npm install pkcs11js)', { cause: e })
  }
}

function keyLabel(id: string, version: number): string {
  return `s3-sse ${id} v${version}`
}

function metaLabel(id: string): string {
  return `s3-sse key ${id}`
}

/** K_c = HKDF-SHA256(dataKey, "", info) and check = HMAC-SHA256(K_c, blob-so-far ‖ C)[0..16). */
function contextCheck(dataKey: Uint8Array, signed: Uint8Array, context: EncryptionContext): Buffer {
  const key = hkdfSha256(dataKey, new Uint8Array(0), CHECK_INFO, KEY_SIZE)
  try {
    return createHmac('sha256', key).update(signed).update(canonicalContext(context)).digest().subarray(0, CHECK_SIZE)
  } finally {
    key.fill(0)
  }
}

interface ParsedBlob {
  mechanism: Pkcs11Mechanism
  keyId: string
  keyVersion: number
  /** format ‖ mech ‖ L ‖ id ‖ version: the GCM AAD. */
  header: Buffer
  wrapped: Buffer
  /** Everything before the check value. */
  signed: Buffer
  check: Buffer
}

export function parsePkcs11Blob(blob: Uint8Array): ParsedBlob {
  const b = Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength)
  const bad = (why: string) => new S3sseError('S3SSE_KMS_BAD_CIPHERTEXT', `not a PKCS#11 KMS blob: ${why}`)
  if (b.length < 3 || b[0] !== PKCS11_BLOB_FORMAT) throw bad('wrong format byte')
  const mechanism = b[1] === MECH_CODE.kwp ? 'kwp' : b[1] === MECH_CODE.gcm ? 'gcm' : undefined
  if (!mechanism) throw bad('unknown mechanism')
  const l = b[2]
  const headerEnd = 3 + l + 4
  if (l === 0 || b.length < headerEnd + 2) throw bad('too short')
  const keyId = b.subarray(3, 3 + l).toString('latin1')
  const keyVersion = b.readUInt32BE(3 + l)
  const n = b.readUInt16BE(headerEnd)
  if (keyVersion === 0 || b.length !== headerEnd + 2 + n + CHECK_SIZE) throw bad('wrong length')
  return {
    mechanism, keyId, keyVersion,
    header: b.subarray(0, headerEnd),
    wrapped: b.subarray(headerEnd + 2, headerEnd + 2 + n),
    signed: b.subarray(0, headerEnd + 2 + n),
    check: b.subarray(headerEnd + 2 + n),
  }
}

function blobHeader(mechanism: Pkcs11Mechanism, keyId: string, version: number): Buffer {
  const id = Buffer.from(keyId, 'latin1')
  const h = Buffer.alloc(3 + id.length + 4)
  h[0] = PKCS11_BLOB_FORMAT
  h[1] = MECH_CODE[mechanism]
  h[2] = id.length
  id.copy(h, 3)
  h.writeUInt32BE(version, 3 + id.length)
  return h
}

class SessionPool {
  private idle: Handle[] = []
  private all = new Set<Handle>()
  private open = 0
  private waiting: Array<(s: Handle) => void> = []
  private slot: Handle | undefined
  private generation = 0
  /** Set when the token went away: the next connect re-initialises the module first. */
  private lost = false

  constructor(private readonly p11: Pkcs11Types.PKCS11, private readonly lib: Pkcs11Module, private readonly token: string,
    private readonly pin: string, private readonly size: number) {}

  /** Finds the token's slot and logs in, once per (re)built pool. */
  private connect(): Handle {
    if (this.slot) return this.slot
    if (this.lost) {
      reinitialiseModule(this.lib, this.p11)
      this.lost = false
    }
    let slot: Handle | undefined
    try {
      slot = this.p11.C_GetSlotList(true).find((s) => this.p11.C_GetTokenInfo(s).label.trim() === this.token)
    } catch (e) {
      this.lost = true
      throw e
    }
    if (!slot) {
      this.lost = true
      throw new S3sseError('S3SSE_KMS_UNAVAILABLE', `no PKCS#11 token labelled ${JSON.stringify(this.token)} is present`)
    }
    this.slot = slot
    return slot
  }

  private openSession(): Handle {
    const slot = this.connect()
    const s = this.p11.C_OpenSession(slot, this.lib.CKF_RW_SESSION | this.lib.CKF_SERIAL_SESSION)
    this.all.add(s)
    try {
      this.p11.C_Login(s, this.lib.CKU_USER, this.pin)
    } catch (e) {
      if ((e as { code?: number }).code !== this.lib.CKR_USER_ALREADY_LOGGED_IN) {
        this.all.delete(s)
        try { this.p11.C_CloseSession(s) } catch { /* already unusable */ }
        throw e
      }
    }
    return s
  }

  async acquire(): Promise<{ session: Handle; generation: number }> {
    const generation = this.generation
    const s = this.idle.pop()
    if (s) return { session: s, generation }
    if (this.open < this.size) {
      this.open++
      try {
        return { session: this.openSession(), generation }
      } catch (e) {
        this.open--
        throw e
      }
    }
    return new Promise((ok) => this.waiting.push((session) => ok({ session, generation: this.generation })))
  }

  release(session: Handle, generation: number): void {
    if (generation !== this.generation) return
    const next = this.waiting.shift()
    if (next) next(session)
    else this.idle.push(session)
  }

  /** The token went away (or the sessions did): drop everything, reconnect on the next call. */
  reset(lost = true): void {
    this.lost ||= lost
    this.generation++
    this.slot = undefined
    this.idle = []
    this.open = 0
    // Only our own sessions: another Pkcs11Kms of this process may share the module.
    for (const s of this.all) {
      try { this.p11.C_CloseSession(s) } catch { /* the token is gone already */ }
    }
    this.all.clear()
    // Waiters get fresh sessions as soon as they can be opened.
    for (const w of this.waiting.splice(0)) {
      this.acquire().then(({ session }) => w(session), () => this.waiting.push(w))
    }
  }

  closeAll(): void {
    this.waiting = []
    this.reset(false)
  }
}

export class Pkcs11Kms implements KmsAdmin {
  private readonly pool: SessionPool
  private metas = new Map<string, { meta: KeyMeta; handle: Handle; at: number }>()
  private keyHandles = new Map<string, Handle>()
  private listedAt = 0
  private queue: Promise<unknown> = Promise.resolve()
  private closed = false
  readonly mechanism: Pkcs11Mechanism
  private readonly ttl: number

  /** @internal use openPkcs11Kms */
  constructor(private readonly p11: Pkcs11Types.PKCS11, private readonly lib: Pkcs11Module, private readonly opts: Pkcs11KmsOptions & { pin: string }, mechanism: Pkcs11Mechanism) {
    this.pool = new SessionPool(p11, lib, opts.token, opts.pin, opts.sessions ?? 4)
    this.mechanism = mechanism
    this.ttl = opts.metadataTtlMs ?? 2000
  }

  /** Runs `fn` on a pooled session; PKCS#11 failures become typed errors, a lost token resets the pool. */
  private async withSession<T>(what: string, fn: (s: Handle) => Promise<T> | T): Promise<T> {
    if (this.closed) throw new S3sseError('S3SSE_KMS_UNAVAILABLE', 'the PKCS#11 KMS has been closed')
    let lease
    try {
      lease = await this.pool.acquire()
    } catch (e) {
      throw this.typed(e, what)
    }
    let broken = false
    try {
      return await fn(lease.session)
    } catch (e) {
      const err = this.typed(e, what)
      broken = err.code === 'S3SSE_KMS_UNAVAILABLE'
      throw err
    } finally {
      if (broken) {
        this.pool.reset()
        this.keyHandles.clear()
        this.metas.clear()
        this.listedAt = 0
      } else {
        this.pool.release(lease.session, lease.generation)
      }
    }
  }

  private typed(e: unknown, what: string): S3sseError {
    if (isS3sseError(e)) return e
    const code = (e as { code?: number }).code
    const name = (e as Error)?.message?.split(':')[0] ?? 'error'
    if (typeof code === 'number' && BAD_BLOB.has(code)) return new S3sseError('S3SSE_KMS_BAD_CIPHERTEXT', `${what}: the HSM refused the wrapped key (${name}): it was altered or damaged`, { cause: e })
    if (typeof code === 'number' && DENIED.has(code)) return new S3sseError('S3SSE_KMS_ACCESS_DENIED', `${what}: the token refused the PIN (${name})`)
    if (typeof code === 'number' && !GONE.has(code)) return new S3sseError('S3SSE_KMS_UNAVAILABLE', `${what}: the HSM failed (${name})`, { cause: e })
    return new S3sseError('S3SSE_KMS_UNAVAILABLE', `${what}: the HSM is unavailable (${name})`, { cause: e })
  }

  /** One writer at a time in this process, for metadata read-modify-write. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.queue.then(fn, fn)
    this.queue = p.catch(() => undefined)
    return p
  }

  private find(s: Handle, template: Pkcs11Types.Template): Handle[] {
    this.p11.C_FindObjectsInit(s, template)
    try {
      const out: Handle[] = []
      for (;;) {
        const batch = this.p11.C_FindObjects(s, 64)
        out.push(...batch)
        if (batch.length < 64) return out
      }
    } finally {
      this.p11.C_FindObjectsFinal(s)
    }
  }

  private readMeta(s: Handle, handle: Handle): KeyMeta {
    const [attr] = this.p11.C_GetAttributeValue(s, handle, [{ type: this.lib.CKA_VALUE }])
    try {
      return JSON.parse((attr.value as Buffer).toString('utf8')) as KeyMeta
    } catch (e) {
      throw new S3sseError('S3SSE_KMS_UNAVAILABLE', 'a key record in the token does not parse', { cause: e })
    }
  }

  /**
   * The newest of the records found for one key (a change writes the new record before it
   * removes the old one, so a crash between the two can leave both); older ones are removed.
   */
  private newestRecord(s: Handle, handles: Handle[]): { meta: KeyMeta; handle: Handle } | undefined {
    const records = handles.map((handle) => ({ meta: this.readMeta(s, handle), handle }))
    records.sort((a, b) => (b.meta.generation ?? 0) - (a.meta.generation ?? 0))
    for (const old of records.slice(1)) {
      try { this.p11.C_DestroyObject(s, old.handle) } catch { /* another gateway removed it */ }
    }
    return records[0]
  }

  /** Every key record in the token (refreshing the cache). */
  private async allMetas(): Promise<KeyMeta[]> {
    return this.withSession('ListKeys', (s) => {
      const handles = this.find(s, [
        { type: this.lib.CKA_CLASS, value: this.lib.CKO_DATA },
        { type: this.lib.CKA_APPLICATION, value: APPLICATION },
      ])
      const now = Date.now()
      const byId = new Map<string, { meta: KeyMeta; handle: Handle }>()
      for (const handle of handles) {
        const meta = this.readMeta(s, handle)
        const seen = byId.get(meta.id)
        if (!seen || (meta.generation ?? 0) > (seen.meta.generation ?? 0)) byId.set(meta.id, { meta, handle })
      }
      const metas = [...byId.values()].map(({ meta, handle }) => {
        this.metas.set(meta.id, { meta, handle, at: now })
        return meta
      })
      this.listedAt = now
      // When gateways raced to give one alias to two keys, the oldest wins everywhere.
      return metas.sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id))
    })
  }

  private async metaById(id: string, fresh = false): Promise<{ meta: KeyMeta; handle: Handle }> {
    const cached = this.metas.get(id)
    if (cached && !fresh && Date.now() - cached.at < this.ttl) return cached
    const found = await this.withSession('DescribeKey', (s) => this.newestRecord(s, this.find(s, [
      { type: this.lib.CKA_CLASS, value: this.lib.CKO_DATA },
      { type: this.lib.CKA_APPLICATION, value: APPLICATION },
      { type: this.lib.CKA_LABEL, value: metaLabel(id) },
    ])))
    if (!found) {
      this.metas.delete(id)
      throw new S3sseError('S3SSE_KMS_KEY_NOT_FOUND', `no key ${id} in the token`)
    }
    this.metas.set(id, { ...found, at: Date.now() })
    return found
  }

  /** Key id, `alias/NAME`, bare NAME, or an ARN ending in key/ID or alias/NAME. */
  private async resolve(keyIdOrAlias: string, fresh = false): Promise<{ meta: KeyMeta; handle: Handle }> {
    if (typeof keyIdOrAlias !== 'string' || keyIdOrAlias === '') throw new S3sseError('S3SSE_KMS_KEY_NOT_FOUND', 'no key id or alias given')
    let name = keyIdOrAlias
    const arn = /^arn:[^:]+:kms:[^:]*:[^:]*:((?:key|alias)\/.+)$/.exec(name)
    if (arn) name = arn[1].startsWith('key/') ? arn[1].slice(4) : arn[1]
    if (!name.startsWith('alias/') && /^[0-9a-f-]{36}$/.test(name)) return this.metaById(name, fresh)
    const alias = name.startsWith('alias/') ? name : `alias/${name}`
    const byAlias = (metas: KeyMeta[]) => metas.find((m) => m.alias === alias || m.aliases?.includes(alias))
    let hit = !fresh && Date.now() - this.listedAt < this.ttl ? byAlias([...this.metas.values()].map((e) => e.meta).sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id))) : undefined
    if (!hit) hit = byAlias(await this.allMetas())
    if (!hit) throw new S3sseError('S3SSE_KMS_KEY_NOT_FOUND', `no key ${JSON.stringify(keyIdOrAlias)} in the token`)
    return this.metaById(hit.id, fresh)
  }

  private usable(meta: KeyMeta): KeyMeta {
    if (!meta.enabled) throw new S3sseError('S3SSE_KMS_KEY_DISABLED', `key ${meta.id} is disabled`)
    return meta
  }

  private masterTemplate(id: string, version: number): Pkcs11Types.Template {
    const l = this.lib
    return [
      { type: l.CKA_CLASS, value: l.CKO_SECRET_KEY },
      { type: l.CKA_KEY_TYPE, value: l.CKK_AES },
      { type: l.CKA_LABEL, value: keyLabel(id, version) },
      { type: l.CKA_ID, value: Buffer.from(`${id}/${version}`, 'latin1') },
    ]
  }

  private async masterKey(s: Handle, id: string, version: number): Promise<Handle> {
    const k = `${id}/${version}`
    const cached = this.keyHandles.get(k)
    if (cached) return cached
    const [h] = this.find(s, this.masterTemplate(id, version))
    if (!h) throw new S3sseError('S3SSE_KMS_KEY_NOT_FOUND', `key ${id} has no version ${version} in the token`)
    this.keyHandles.set(k, h)
    return h
  }

  /** A new non-extractable AES-256 master key version, generated inside the token. */
  private generateMaster(s: Handle, id: string, version: number): void {
    const l = this.lib
    this.p11.C_GenerateKey(s, { mechanism: l.CKM_AES_KEY_GEN }, [
      ...this.masterTemplate(id, version),
      { type: l.CKA_VALUE_LEN, value: KEY_SIZE },
      { type: l.CKA_TOKEN, value: true },
      { type: l.CKA_PRIVATE, value: true },
      { type: l.CKA_SENSITIVE, value: true },
      { type: l.CKA_EXTRACTABLE, value: false },
      { type: l.CKA_ENCRYPT, value: true },
      { type: l.CKA_DECRYPT, value: true },
      { type: l.CKA_WRAP, value: true },
      { type: l.CKA_UNWRAP, value: true },
      { type: l.CKA_MODIFIABLE, value: false },
    ])
  }

  /** A session-only AES key object the host may read: a data key on its way in or out. */
  private dataKeyTemplate(): Pkcs11Types.Template {
    const l = this.lib
    return [
      { type: l.CKA_CLASS, value: l.CKO_SECRET_KEY },
      { type: l.CKA_KEY_TYPE, value: l.CKK_AES },
      { type: l.CKA_TOKEN, value: false },
      { type: l.CKA_SENSITIVE, value: false },
      { type: l.CKA_EXTRACTABLE, value: true },
    ]
  }

  private readValue(s: Handle, h: Handle): Uint8Array {
    const [attr] = this.p11.C_GetAttributeValue(s, h, [{ type: this.lib.CKA_VALUE }])
    const v = attr.value as Buffer
    const out = new Uint8Array(v)
    v.fill(0)
    return out
  }

  /** Wraps `dataKey` (given) or a key generated in the token; returns blob and plaintext. */
  private async wrap(meta: KeyMeta, context: EncryptionContext, given?: Uint8Array): Promise<{ wrapped: Uint8Array; plaintext: Uint8Array }> {
    const version = meta.current
    const header = blobHeader(this.mechanism, meta.id, version)
    return this.withSession('GenerateDataKey', async (s) => {
      const master = await this.masterKey(s, meta.id, version)
      let plaintext: Uint8Array
      let wrapped: Buffer
      if (this.mechanism === 'kwp') {
        const l = this.lib
        const dk = given
          ? this.p11.C_CreateObject(s, [...this.dataKeyTemplate(), { type: l.CKA_VALUE, value: Buffer.from(given) }])
          : await this.p11.C_GenerateKeyAsync(s, { mechanism: l.CKM_AES_KEY_GEN }, [...this.dataKeyTemplate(), { type: l.CKA_VALUE_LEN, value: KEY_SIZE }])
        try {
          wrapped = await this.p11.C_WrapKeyAsync(s, { mechanism: l.CKM_AES_KEY_WRAP_PAD }, master, dk, Buffer.alloc(KEY_SIZE + 16))
          plaintext = given ? new Uint8Array(given) : this.readValue(s, dk)
        } finally {
          this.p11.C_DestroyObject(s, dk)
        }
      } else {
        plaintext = given ? new Uint8Array(given) : new Uint8Array(this.p11.C_GenerateRandom(s, Buffer.alloc(KEY_SIZE)))
        const iv = randomBytes(GCM_IV_SIZE)
        this.p11.C_EncryptInit(s, this.gcm(iv, header), master)
        const sealed = await this.p11.C_EncryptAsync(s, Buffer.from(plaintext), Buffer.alloc(KEY_SIZE + TAG_SIZE))
        wrapped = Buffer.concat([iv, sealed])
      }
      const n = Buffer.alloc(2)
      n.writeUInt16BE(wrapped.length)
      const signed = Buffer.concat([header, n, wrapped])
      return { wrapped: new Uint8Array(Buffer.concat([signed, contextCheck(plaintext, signed, context)])), plaintext }
    })
  }

  private gcm(iv: Buffer, aad: Buffer): Pkcs11Types.Mechanism {
    return { mechanism: this.lib.CKM_AES_GCM, parameter: { type: this.lib.CK_PARAMS_GCM, iv, ivBits: GCM_IV_SIZE * 8, aad, tagBits: TAG_SIZE * 8 } as Pkcs11Types.GcmParams }
  }

  private async unwrap(blob: Uint8Array, context: EncryptionContext): Promise<{ plaintext: Uint8Array; meta: KeyMeta }> {
    const p = parsePkcs11Blob(blob)
    const { meta } = await this.metaById(p.keyId)
    this.usable(meta)
    if (p.keyVersion > meta.versions) throw new S3sseError('S3SSE_KMS_KEY_NOT_FOUND', `key ${p.keyId} has no version ${p.keyVersion}`)
    const plaintext = await this.withSession('Decrypt', async (s) => {
      const master = await this.masterKey(s, p.keyId, p.keyVersion)
      try {
        if (p.mechanism === 'kwp') {
          const l = this.lib
          const dk = await this.p11.C_UnwrapKeyAsync(s, { mechanism: l.CKM_AES_KEY_WRAP_PAD }, master, p.wrapped, this.dataKeyTemplate())
          try {
            return this.readValue(s, dk)
          } finally {
            this.p11.C_DestroyObject(s, dk)
          }
        }
        if (p.wrapped.length !== GCM_IV_SIZE + KEY_SIZE + TAG_SIZE) throw new S3sseError('S3SSE_KMS_BAD_CIPHERTEXT', 'the GCM-wrapped key has the wrong length')
        this.p11.C_DecryptInit(s, this.gcm(p.wrapped.subarray(0, GCM_IV_SIZE), p.header), master)
        const out = await this.p11.C_DecryptAsync(s, p.wrapped.subarray(GCM_IV_SIZE), Buffer.alloc(KEY_SIZE + TAG_SIZE))
        const key = new Uint8Array(out)
        out.fill(0)
        return key
      } catch (e) {
        throw this.unwrapFailure(s, e)
      }
    })
    if (plaintext.length !== KEY_SIZE || !timingSafeEqual(contextCheck(plaintext, p.signed, context), p.check)) {
      plaintext.fill(0)
      throw new S3sseError('S3SSE_KMS_CONTEXT_MISMATCH', 'the wrapped key was not made for this encryption context')
    }
    return { plaintext, meta }
  }

  /**
   * Some tokens (SoftHSM2) answer a wrapped key that fails its integrity check with
   * CKR_GENERAL_ERROR or CKR_FUNCTION_FAILED rather than CKR_WRAPPED_KEY_INVALID. When the
   * session still answers afterwards, the token is fine and it was the blob.
   */
  private unwrapFailure(s: Handle, e: unknown): unknown {
    const code = (e as { code?: number }).code
    if (code !== 0x05 && code !== 0x06) return e
    try {
      this.p11.C_GetSessionInfo(s)
    } catch {
      return e
    }
    return new S3sseError('S3SSE_KMS_BAD_CIPHERTEXT', 'the HSM could not unwrap the key: it was altered or damaged')
  }

  async generateDataKey(keyIdOrAlias: string, context: EncryptionContext): Promise<DataKey> {
    const meta = this.usable((await this.resolve(keyIdOrAlias)).meta)
    const { wrapped, plaintext } = await this.wrap(meta, context)
    return { plaintext, wrapped, keyId: meta.id, keyVersion: meta.current }
  }

  async decrypt(wrapped: Uint8Array, context: EncryptionContext): Promise<Uint8Array> {
    return (await this.unwrap(wrapped, context)).plaintext
  }

  async encrypt(keyIdOrAlias: string, plaintext: Uint8Array, context: EncryptionContext): Promise<{ wrapped: Uint8Array; keyId: string; keyVersion: number }> {
    if (!(plaintext instanceof Uint8Array) || plaintext.length !== KEY_SIZE) {
      throw new S3sseError('S3SSE_BAD_ARGUMENT', `the PKCS#11 KMS encrypts data keys only: KEY_SIZE = ${KEY_SIZE} bytes`)
    }
    const meta = this.usable((await this.resolve(keyIdOrAlias)).meta)
    const out = await this.wrap(meta, context, plaintext)
    out.plaintext.fill(0)
    return { wrapped: out.wrapped, keyId: meta.id, keyVersion: meta.current }
  }

  async reEncrypt(wrapped: Uint8Array, context: EncryptionContext, newContext: EncryptionContext, newKeyId?: string): Promise<{ wrapped: Uint8Array; keyId: string; keyVersion: number }> {
    const { plaintext, meta } = await this.unwrap(wrapped, context)
    try {
      return await this.encrypt(newKeyId ?? meta.id, plaintext, newContext)
    } finally {
      plaintext.fill(0)
    }
  }

  async describeKey(keyIdOrAlias: string): Promise<KeyInfo> {
    return info((await this.resolve(keyIdOrAlias, true)).meta)
  }

  async listKeys(): Promise<KeyInfo[]> {
    return (await this.allMetas()).map(info)
  }

  async createKey(opts: { alias?: string; description?: string } = {}): Promise<KeyInfo> {
    const alias = opts.alias === undefined ? undefined : normaliseAlias(opts.alias)
    return this.serial(async () => {
      if (alias !== undefined && (await this.allMetas()).some((m) => m.alias === alias || m.aliases?.includes(alias))) {
        throw new S3sseError('S3SSE_KMS_ALIAS_EXISTS', `the alias ${alias} already names a key`)
      }
      return info(await this.newKey(alias, opts.description))
    })
  }

  async ensureKey(alias: string): Promise<KeyInfo> {
    const name = normaliseAlias(alias)
    try {
      return await this.describeKey(name)
    } catch (e) {
      if (!isS3sseError(e, 'S3SSE_KMS_KEY_NOT_FOUND')) throw e
    }
    return this.serial(async () => {
      // Checked again in turn: two first writes to a bucket create one key in this process.
      const existing = (await this.allMetas()).find((m) => m.alias === name || m.aliases?.includes(name))
      if (existing) return info(existing)
      await this.newKey(name, undefined)
      // Another gateway on the same HSM may have raced us: the oldest key with the alias wins.
      return this.describeKey(name)
    })
  }

  async rotateKey(keyIdOrAlias: string): Promise<KeyInfo> {
    const id = (await this.resolve(keyIdOrAlias, true)).meta.id
    return this.serial(async () => info(await this.updateMeta(id, (m, s) => {
      this.generateMaster(s, m.id, m.versions + 1)
      m.versions += 1
      m.current = m.versions
    })))
  }

  async disableKey(keyIdOrAlias: string): Promise<KeyInfo> {
    const id = (await this.resolve(keyIdOrAlias, true)).meta.id
    return this.serial(async () => info(await this.updateMeta(id, (m) => { m.enabled = false })))
  }

  async enableKey(keyIdOrAlias: string): Promise<KeyInfo> {
    const id = (await this.resolve(keyIdOrAlias, true)).meta.id
    return this.serial(async () => info(await this.updateMeta(id, (m) => { m.enabled = true })))
  }

  async createAlias(alias: string, keyIdOrAlias: string): Promise<KeyInfo> {
    const name = normaliseAlias(alias)
    const id = (await this.resolve(keyIdOrAlias, true)).meta.id
    return this.serial(async () => {
      if ((await this.allMetas()).some((m) => m.alias === name || m.aliases?.includes(name))) {
        throw new S3sseError('S3SSE_KMS_ALIAS_EXISTS', `the alias ${name} already names a key`)
      }
      return info(await this.updateMeta(id, (m) => {
        if (m.alias === undefined) m.alias = name
        else m.aliases = [...(m.aliases ?? []), name]
      }))
    })
  }

  /** Releases every session and the module. */
  async close(): Promise<void> {
    if (this.closed) return
    await this.queue.catch(() => undefined)
    this.closed = true
    this.pool.closeAll()
    releaseModule(this.opts.module)
  }

  private async newKey(alias: string | undefined, description: string | undefined): Promise<KeyMeta> {
    const meta: KeyMeta = {
      id: randomUUID(),
      ...(alias !== undefined ? { alias } : {}),
      ...(description !== undefined ? { description } : {}),
      createdAt: new Date().toISOString(),
      enabled: true,
      current: 1,
      versions: 1,
    }
    await this.withSession('CreateKey', (s) => {
      this.generateMaster(s, meta.id, 1)
      this.metas.set(meta.id, { meta, handle: this.writeRecord(s, meta), at: Date.now() })
    })
    this.listedAt = 0
    return meta
  }

  private writeRecord(s: Handle, meta: KeyMeta): Handle {
    const l = this.lib
    return this.p11.C_CreateObject(s, [
      { type: l.CKA_CLASS, value: l.CKO_DATA },
      { type: l.CKA_TOKEN, value: true },
      { type: l.CKA_PRIVATE, value: true },
      { type: l.CKA_APPLICATION, value: APPLICATION },
      { type: l.CKA_LABEL, value: metaLabel(meta.id) },
      { type: l.CKA_VALUE, value: Buffer.from(JSON.stringify(meta)) },
    ])
  }

  /** Read-modify-write of a key record, re-read from the token first. */
  private async updateMeta(id: string, change: (m: KeyMeta, s: Handle) => void): Promise<KeyMeta> {
    const { meta, handle } = await this.metaById(id, true)
    const next = structuredClone(meta)
    next.generation = (meta.generation ?? 0) + 1
    // Tokens may keep a data object's value read-only (SoftHSM2 does): write a new record,
    // then remove the old one.
    const written = await this.withSession('UpdateKey', (s) => {
      change(next, s)
      const h = this.writeRecord(s, next)
      this.p11.C_DestroyObject(s, handle)
      return h
    })
    this.metas.set(id, { meta: next, handle: written, at: Date.now() })
    return next
  }
}

function info(m: KeyMeta): KeyInfo {
  return {
    keyId: m.id,
    ...(m.alias !== undefined ? { alias: m.alias } : {}),
    ...(m.aliases?.length ? { aliases: [m.alias!, ...m.aliases] } : {}),
    ...(m.description !== undefined ? { description: m.description } : {}),
    createdAt: m.createdAt,
    enabled: m.enabled,
    versions: m.versions,
    current: m.current,
  }
}

/**
 * Opens the token `opts.token` through the PKCS#11 module `opts.module` and logs in. The
 * wrapping mechanism is CKM_AES_KEY_WRAP_PAD when the token offers it for wrapping, else
 * CKM_AES_GCM (or what `opts.mechanism` forces).
 */
export async function openPkcs11Kms(opts: Pkcs11KmsOptions): Promise<Pkcs11Kms> {
  const lib = loadBinding()
  let pin = opts.pin
  if (pin === undefined && opts.pinFile !== undefined) {
    try {
      pin = readFileSync(opts.pinFile, 'utf8').replace(/\r?\n$/, '')
    } catch (e) {
      throw new S3sseError('S3SSE_BAD_ARGUMENT', `cannot read the PIN file ${opts.pinFile}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`)
    }
  }
  if (!pin) throw new S3sseError('S3SSE_BAD_ARGUMENT', 'a PKCS#11 KMS needs the user PIN (--pkcs11-pin-file)')
  if (!opts.token) throw new S3sseError('S3SSE_BAD_ARGUMENT', 'a PKCS#11 KMS needs the token label (--pkcs11-token)')
  const p11 = acquireModule(lib, opts.module)
  let mechanism = opts.mechanism
  let kms: Pkcs11Kms | undefined
  try {
    const slot = p11.C_GetSlotList(true).find((s) => p11.C_GetTokenInfo(s).label.trim() === opts.token)
    if (!slot) throw new S3sseError('S3SSE_KMS_UNAVAILABLE', `no PKCS#11 token labelled ${JSON.stringify(opts.token)} is present`)
    if (mechanism === undefined) {
      let kwp = false
      try {
        kwp = (p11.C_GetMechanismInfo(slot, lib.CKM_AES_KEY_WRAP_PAD).flags & lib.CKF_WRAP) !== 0
      } catch {
        kwp = false
      }
      mechanism = kwp ? 'kwp' : 'gcm'
    }
    kms = new Pkcs11Kms(p11, lib, { ...opts, pin }, mechanism)
    await kms.listKeys() // logs in now, so a wrong PIN or a missing token fails at start
    return kms
  } catch (e) {
    if (kms) await kms.close()
    else releaseModule(opts.module)
    throw e
  }
}
