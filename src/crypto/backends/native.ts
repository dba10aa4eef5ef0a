import { createRequire } from 'node:module'
import { availableParallelism } from 'node:os'
import { fileURLToPath } from 'node:url'
import { S3sseError } from '../../errors.js'
import { KEY_SIZE, NONCE_PREFIX_SIZE, PACKAGE_SIZE, TAG_SIZE, MAX_PACKAGE_SIZE } from '../constants.js'
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

interface Addon {
  seal: Call
  open: Call
  sealAsync: AsyncCall
  openAsync: AsyncCall
  gcmSeal(key: Uint8Array, iv: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): Uint8Array
  gcmOpen(key: Uint8Array, iv: Uint8Array, aad: Uint8Array, sealed: Uint8Array): Uint8Array
  cpuFeatures(): CpuFeatures
  setErrorClass(ctor: typeof S3sseError): void
  PACKAGE_SIZE: number
  TAG_SIZE: number
  KEY_SIZE: number
  NONCE_PREFIX_SIZE: number
  MAX_PACKAGE_SIZE: number
  opensslVersion: string
}

export interface NativeBackend extends Backend {
  readonly name: 'native'
  readonly cpu: CpuFeatures
  readonly opensslVersion: string
  readonly addonPath: string
}

/** Each pool thread gets at least this many packages, or splitting costs more than it saves. */
const MIN_PACKAGES_PER_THREAD = 4

/** The package root: this file sits at {src,dist}/crypto/backends/. */
const packageRoot = fileURLToPath(new URL('../../../', import.meta.url))

function loadAddon(): { addon: Addon; path: string } {
  const require = createRequire(import.meta.url)
  const nodeGypBuild = require('node-gyp-build') as ((dir: string) => Addon) & { resolve(dir: string): string }
  const path = nodeGypBuild.resolve(packageRoot)
  return { addon: require(path) as Addon, path }
}

/**
 * The hot path: the C++ addon over Node's own OpenSSL (AES-NI, PCLMULQDQ). Throws when
 * the addon is missing, was built for another ABI, or disagrees on a size constant.
 */
export function createNativeBackend(): NativeBackend {
  const { addon, path } = loadAddon()
  const expected = { PACKAGE_SIZE, TAG_SIZE, KEY_SIZE, NONCE_PREFIX_SIZE, MAX_PACKAGE_SIZE }
  for (const [name, value] of Object.entries(expected)) {
    if (addon[name as keyof typeof expected] !== value) {
      throw new S3sseError('S3SSE_BACKEND_UNAVAILABLE', `native addon at ${path} has ${name} = ${String(addon[name as keyof typeof expected])}, expected ${value}`)
    }
  }
  addon.setErrorClass(S3sseError)
  const cpu = addon.cpuFeatures()

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
    cpu,
    opensslVersion: addon.opensslVersion,
    addonPath: path,
    gcm: { seal: addon.gcmSeal, open: addon.gcmOpen },
    seal: addon.seal,
    open: addon.open,
    sealAsync: (k, p, f, fin, i, o, ps, opt) => split('seal', addon.sealAsync, k, p, f, fin, i, o, ps, opt),
    openAsync: (k, p, f, fin, i, o, ps, opt) => split('open', addon.openAsync, k, p, f, fin, i, o, ps, opt),
  }
}
