import { createRequire } from 'node:module'
import { availableParallelism } from 'node:os'
import { fileURLToPath } from 'node:url'
import { S3sseError } from '../../errors.js'
import { KEY_SIZE, MAX_PACKAGE_NUMBER, MAX_PACKAGE_SIZE, NONCE_PREFIX_SIZE, NONCE_SIZE, PACKAGE_SIZE, TAG_SIZE } from '../constants.js'
import { checkCall, type AsyncOptions, type Backend } from '../backend.js'

type Call = (key: Uint8Array, prefix: Uint8Array, first: number, final: boolean,
  input: Uint8Array, out: Uint8Array, packageSize?: number) => number
type AsyncCall = (...args: Parameters<Call>) => Promise<number>

export interface CpuFeatures {
  arch: string
  aesni?: boolean
  pclmulqdq?: boolean
  avx?: boolean
  avx2?: boolean
  avx512f?: boolean
  vaes?: boolean
  vpclmulqdq?: boolean
  aes?: boolean
  pmull?: boolean
}

/** The AES-256-GCM engines inside the addon: Intel ipsec-mb (when it loads) and OpenSSL's EVP. */
export type NativeEngineName = 'ipsec-mb' | 'evp'
/** The order the addon tries its engines in: fastest first. */
export const NATIVE_ENGINE_ORDER: readonly NativeEngineName[] = ['ipsec-mb', 'evp']

/** What loading libIPSec_MB.so.1 gave (once per process). */
export interface IpsecMbStatus {
  available: boolean
  /** The file dlopen was given (S3SSE_IPSEC_MB_PATH, or the library's soname). */
  path: string
  /** Why it is not used, when it is not. */
  reason?: string
  version?: string
  /** The architecture its manager runs: sse, avx, avx2 or avx512. */
  arch?: string
  /** Whether its AES-GCM uses VAES + VPCLMULQDQ (AVX-512 on a CPU that has them). */
  vaes: boolean
  /** Whether the architecture came from S3SSE_IPSEC_MB_ARCH rather than the CPU probe. */
  forced: boolean
}

export interface NativeEngineReport {
  name: NativeEngineName
  /** forced by S3SSE_NATIVE_ENGINE (or by the caller), or the first of NATIVE_ENGINE_ORDER that loaded. */
  reason: 'forced' | 'order'
  /** One phrase: "ipsec-mb 1.3.0, avx512 with VAES" or "OpenSSL 3.0.19". */
  detail: string
  /** The ipsec-mb library's state, loaded or not (with the reason when not). */
  ipsecMb: IpsecMbStatus
}

interface EngineFunctions {
  name: NativeEngineName
  seal: Call
  open: Call
  sealAsync: AsyncCall
  openAsync: AsyncCall
  gcmSeal(key: Uint8Array, iv: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): Uint8Array
  gcmOpen(key: Uint8Array, iv: Uint8Array, aad: Uint8Array, sealed: Uint8Array): Uint8Array
  rawSeal(key: Uint8Array, iv: Uint8Array, input: Uint8Array, out: Uint8Array): number
  rawOpen(key: Uint8Array, iv: Uint8Array, sealed: Uint8Array, out: Uint8Array): number
}

interface Addon {
  engine(name: NativeEngineName): EngineFunctions
  loadIpsecMb(path: string, arch: string): IpsecMbStatus
  packageCount(direction: 'seal' | 'open', length: number, final: boolean, packageSize?: number): { packages: number; outLength: number }
  hashCreate(name: 'md5' | 'sha1' | 'sha256'): NativeHash
  hashUpdate(h: NativeHash, chunk: Uint8Array): void
  hashUpdateAsync(h: NativeHash, chunks: Uint8Array[]): Promise<void>
  hashFinal(h: NativeHash): Buffer
  cpuFeatures(): CpuFeatures
  setErrorClass(ctor: typeof S3sseError): void
  PACKAGE_SIZE: number
  TAG_SIZE: number
  KEY_SIZE: number
  NONCE_PREFIX_SIZE: number
  NONCE_SIZE: number
  MAX_PACKAGE_SIZE: number
  MAX_PACKAGE_NUMBER: number
  opensslVersion: string
}

/** One GCM message over a whole buffer, written into `out`: the engine with no package loop (bench reference). */
export interface RawGcm {
  seal(key: Uint8Array, iv: Uint8Array, input: Uint8Array, out: Uint8Array): number
  open(key: Uint8Array, iv: Uint8Array, sealed: Uint8Array, out: Uint8Array): number
}

export interface NativeBackend extends Backend {
  readonly name: 'native'
  readonly engine: NativeEngineName
  readonly engineReport: NativeEngineReport
  readonly cpu: CpuFeatures
  readonly opensslVersion: string
  readonly addonPath: string
  readonly raw: RawGcm
}

/** Each pool thread gets at least this many packages, or splitting costs more than it saves. */
const MIN_PACKAGES_PER_THREAD = 4

/** The package root: this file sits at {src,dist}/crypto/backends/. */
const packageRoot = fileURLToPath(new URL('../../../', import.meta.url))

let addonCache: { addon: Addon; path: string } | undefined

/** The addon, loaded and checked once: its size constants must be ours. */
function loadAddon(): { addon: Addon; path: string } {
  if (addonCache) return addonCache
  const require = createRequire(import.meta.url)
  const nodeGypBuild = require('node-gyp-build') as ((dir: string) => Addon) & { resolve(dir: string): string }
  const path = nodeGypBuild.resolve(packageRoot)
  const addon = require(path) as Addon
  const expected = { PACKAGE_SIZE, TAG_SIZE, KEY_SIZE, NONCE_PREFIX_SIZE, NONCE_SIZE, MAX_PACKAGE_SIZE, MAX_PACKAGE_NUMBER }
  for (const [name, value] of Object.entries(expected)) {
    if (addon[name as keyof typeof expected] !== value) {
      throw new S3sseError('S3SSE_BACKEND_UNAVAILABLE', `native addon at ${path} has ${name} = ${String(addon[name as keyof typeof expected])}, expected ${value}`)
    }
  }
  addon.setErrorClass(S3sseError)
  addonCache = { addon, path }
  return addonCache
}

/** An incremental digest inside the addon (opaque). */
export type NativeHash = { readonly __nativeHash: unique symbol }

/** The addon's digest functions (MD5, SHA-1, SHA-256 over Node's OpenSSL, updates on the libuv pool), or the reason they are not there. */
export function nativeHashes(): Pick<Addon, 'hashCreate' | 'hashUpdate' | 'hashUpdateAsync' | 'hashFinal'> | Error {
  try {
    return loadAddon().addon
  } catch (e) {
    return e instanceof Error ? e : new Error(String(e))
  }
}

/** The addon's own package count (native/packages.h), for the test that holds it against TypeScript's. */
export function nativePackageCount(direction: 'seal' | 'open', length: number, final: boolean, packageSize?: number): { packages: number; outLength: number } {
  return loadAddon().addon.packageCount(direction, length, final, packageSize)
}

function isEngineName(s: string): s is NativeEngineName {
  return (NATIVE_ENGINE_ORDER as readonly string[]).includes(s)
}

/**
 * S3SSE_NATIVE_ENGINE, checked: undefined when unset, else the engine it forces. A value that
 * is no engine is an error, never quietly ignored.
 */
export function forcedNativeEngine(env: NodeJS.ProcessEnv = process.env): NativeEngineName | undefined {
  const v = env.S3SSE_NATIVE_ENGINE
  if (!v) return undefined
  if (!isEngineName(v)) throw new S3sseError('S3SSE_BAD_ARGUMENT', `S3SSE_NATIVE_ENGINE="${v}" is not one of ${NATIVE_ENGINE_ORDER.join(', ')}`)
  return v
}

/**
 * libIPSec_MB.so.1 (or S3SSE_IPSEC_MB_PATH), with its manager for the best architecture the
 * CPU has (or S3SSE_IPSEC_MB_ARCH = sse | avx | avx2 | avx512). Loaded at most once per process.
 */
export function ipsecMbStatus(): IpsecMbStatus {
  const { addon } = loadAddon()
  return addon.loadIpsecMb(process.env.S3SSE_IPSEC_MB_PATH || 'libIPSec_MB.so.1', process.env.S3SSE_IPSEC_MB_ARCH || '')
}

function describeEngine(name: NativeEngineName, imb: IpsecMbStatus, openssl: string): string {
  if (name === 'evp') return openssl
  return `ipsec-mb ${imb.version}, ${imb.arch}${imb.vaes ? ' with VAES' : ' without VAES'}${imb.forced ? ' (forced by S3SSE_IPSEC_MB_ARCH)' : ''}`
}

/**
 * The hot path: the C++ addon with the ipsec-mb engine when libIPSec_MB.so.1 loads, else
 * OpenSSL's EVP inside Node. `engine` (or S3SSE_NATIVE_ENGINE) forces one. Throws when the
 * addon is missing, was built for another ABI, disagrees on a size constant, or the forced
 * engine does not load (with the reason).
 */
export function createNativeBackend(opts: { engine?: NativeEngineName } = {}): NativeBackend {
  const { addon, path } = loadAddon()
  const forced = opts.engine ?? forcedNativeEngine()
  if (forced !== undefined && !isEngineName(forced)) {
    throw new S3sseError('S3SSE_BAD_ARGUMENT', `unknown native engine "${String(forced)}"; one of ${NATIVE_ENGINE_ORDER.join(', ')}`)
  }
  const imb = ipsecMbStatus()
  let name: NativeEngineName
  if (forced === 'ipsec-mb' && !imb.available) {
    throw new S3sseError('S3SSE_BACKEND_UNAVAILABLE', `the ipsec-mb engine did not load: ${imb.reason}`)
  }
  if (forced) name = forced
  else name = imb.available ? 'ipsec-mb' : 'evp'
  const fns = addon.engine(name)
  const cpu = addon.cpuFeatures()
  const engineReport: NativeEngineReport = {
    name,
    reason: forced ? 'forced' : 'order',
    detail: describeEngine(name, imb, addon.opensslVersion),
    ipsecMb: imb,
  }

  function split(direction: 'seal' | 'open', call: AsyncCall, key: Uint8Array, prefix: Uint8Array,
    first: number, final: boolean, input: Uint8Array, out: Uint8Array, packageSize = PACKAGE_SIZE,
    options?: AsyncOptions): Promise<number> {
    let c
    try {
      c = checkCall(direction, key, prefix, first, final, input, out, packageSize)
    } catch (e) {
      return Promise.reject(e)
    }
    const threads = Math.max(1, Math.min(options?.threads ?? availableParallelism(),
      Math.floor(c.packages / MIN_PACKAGES_PER_THREAD)))
    if (threads <= 1) return call(key, prefix, first, final, input, out, packageSize)
    return splitAcross(direction, call, threads, c.packages, c.outLength, key, prefix, first, final, input, out, packageSize)
  }

  async function splitAcross(direction: 'seal' | 'open', call: AsyncCall, threads: number, packages: number,
    outLength: number,
    key: Uint8Array, prefix: Uint8Array, first: number, final: boolean, input: Uint8Array, out: Uint8Array,
    packageSize: number): Promise<number> {
    const inStep = direction === 'seal' ? packageSize : packageSize + TAG_SIZE
    const outStep = direction === 'seal' ? packageSize + TAG_SIZE : packageSize
    const per = Math.ceil(packages / threads)
    const runs: Promise<number>[] = []
    const outStarts: number[] = []
    for (let p = 0; p < packages; p += per) {
      const count = Math.min(per, packages - p)
      const last = p + count === packages
      const inEnd = last ? input.length : (p + count) * inStep
      outStarts.push(p * outStep)
      runs.push(call(key, prefix, first + p, final && last,
        input.subarray(p * inStep, inEnd), out.subarray(p * outStep), packageSize))
    }
    const results = await Promise.allSettled(runs)
    let written = 0
    for (let i = 0; i < results.length; i++) {
      const r = results[i]
      if (r.status === 'rejected') {
        // The failing package was wiped by the addon; a later run may have verified its
        // packages, but nothing after the first failure is released.
        out.fill(0, outStarts[i], outLength)
        throw r.reason
      }
      written += r.value
    }
    return written
  }

  return {
    name: 'native',
    engine: name,
    engineReport,
    cpu,
    opensslVersion: addon.opensslVersion,
    addonPath: path,
    gcm: { seal: fns.gcmSeal, open: fns.gcmOpen },
    raw: { seal: fns.rawSeal, open: fns.rawOpen },
    seal: fns.seal,
    open: fns.open,
    sealAsync: (k, p, f, fin, i, o, ps, opt) => split('seal', fns.sealAsync, k, p, f, fin, i, o, ps, opt),
    openAsync: (k, p, f, fin, i, o, ps, opt) => split('open', fns.openAsync, k, p, f, fin, i, o, ps, opt),
  }
}
