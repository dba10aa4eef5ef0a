// The WebAssembly backend without any Node API: it takes the module's bytes, a compiled
// WebAssembly.Module or an instance, so the same file runs in Node, browsers, workers and
// edge runtimes. src/crypto/backends/wasm.ts is the thin Node loader that reads the file.
import { S3sseError } from '../../errors.js'
import { authFailed, checkCall, checkGcm, type Backend, type Gcm } from '../backend.js'
import { NONCE_PREFIX_SIZE, NONCE_SIZE, TAG_SIZE } from '../constants.js'

/** The interface version of wasm/s3sse.wasm this glue speaks (s3sse_abi_version). */
export const WASM_ABI_VERSION = 1

/** Input bytes copied into the arena per call into the module, when a call is larger. */
const SLICE_BYTES = 1024 * 1024

// Return codes of the module (wasm/src/lib.rs).
const ERR_ARGUMENT = -1
const ERR_NO_KEY = -2
const ERR_AUTH = -3

interface Exports {
  memory: WebAssembly.Memory
  s3sse_abi_version(): number
  s3sse_capacity(): number
  s3sse_key_ptr(): number
  s3sse_nonce_ptr(): number
  s3sse_in_ptr(): number
  s3sse_out_ptr(): number
  s3sse_failed_index(): number
  s3sse_begin(): number
  s3sse_end(): void
  s3sse_seal(first: number, packages: number, finalLast: number, inLen: number, packageSize: number): number
  s3sse_open(first: number, packages: number, finalLast: number, inLen: number, packageSize: number): number
  s3sse_gcm_seal(aadLen: number, len: number): number
  s3sse_gcm_open(aadLen: number, len: number): number
}

export interface WasmBackend extends Backend {
  readonly name: 'wasm'
  /** Bytes each arena region holds (one sealed package of MAX_PACKAGE_SIZE, and more). */
  readonly arenaBytes: number
  /** The module's memory, for tests that check what is left in it after a call. */
  readonly memory: WebAssembly.Memory
}

/** Compiles and instantiates asynchronously: the way for a browser's main thread. */
export async function instantiateWasmBackend(source: BufferSource | WebAssembly.Module): Promise<WasmBackend> {
  const module = source instanceof WebAssembly.Module ? source : await WebAssembly.compile(source)
  return createWasmBackendFromInstance(await WebAssembly.instantiate(module, {}))
}

/**
 * Compiles and instantiates synchronously (Node, workers). Browsers refuse synchronous
 * compilation of modules over 4 KB on their main thread: use instantiateWasmBackend there.
 */
export function createWasmBackendSync(source: BufferSource | WebAssembly.Module): WasmBackend {
  const module = source instanceof WebAssembly.Module ? source : new WebAssembly.Module(source)
  return createWasmBackendFromInstance(new WebAssembly.Instance(module, {}))
}

export function createWasmBackendFromInstance(instance: WebAssembly.Instance): WasmBackend {
  const ex = instance.exports as unknown as Exports
  if (!(ex.memory instanceof WebAssembly.Memory) || typeof ex.s3sse_abi_version !== 'function') {
    throw new Error('not the s3-sse WebAssembly module (no s3sse_abi_version export)')
  }
  const abi = ex.s3sse_abi_version()
  if (abi !== WASM_ABI_VERSION) {
    throw new Error(`wasm/s3sse.wasm speaks interface ${abi}; this glue needs ${WASM_ABI_VERSION} (rebuild with npm run build:wasm)`)
  }
  const capacity = ex.s3sse_capacity()
  const keyPtr = ex.s3sse_key_ptr()
  const noncePtr = ex.s3sse_nonce_ptr()
  const inPtr = ex.s3sse_in_ptr()
  const outPtr = ex.s3sse_out_ptr()

  // The module never grows its memory, but a view made before a growth would be detached
  // (length 0), so every use goes through mem(), which makes a new one when that happens.
  let view = new Uint8Array(ex.memory.buffer)
  const mem = (): Uint8Array => {
    if (view.buffer !== ex.memory.buffer) view = new Uint8Array(ex.memory.buffer)
    return view
  }

  /** Loads the key (and nonce bytes) into the module; the module wipes its key slot. */
  function begin(key: Uint8Array, nonce: Uint8Array): void {
    const m = mem()
    m.set(key, keyPtr)
    m.set(nonce, noncePtr)
    const r = ex.s3sse_begin()
    if (r !== 0) failure('begin', r)
  }

  /** A refusal by the module; the caller's `finally` ends the session (wipes). */
  function failure(what: string, code: number): never {
    const why = code === ERR_ARGUMENT ? 'refused its arguments' : code === ERR_NO_KEY ? 'had no key loaded' : `returned ${code}`
    throw new S3sseError('S3SSE_CRYPTO_FAILURE', `the wasm module ${why} in ${what}`)
  }

  function run(direction: 'seal' | 'open', key: Uint8Array, noncePrefix: Uint8Array, firstPackage: number,
    final: boolean, input: Uint8Array, out: Uint8Array, packageSize?: number): number {
    const c = checkCall(direction, key, noncePrefix, firstPackage, final, input, out, packageSize)
    if (c.packages === 0) return 0
    const p = c.packageSize
    const inUnit = direction === 'seal' ? p : p + TAG_SIZE
    const outUnit = direction === 'seal' ? p + TAG_SIZE : p
    // Whole packages per slice: about SLICE_BYTES of input (stays in cache), at least one,
    // and never more than the arena holds.
    const perSlice = Math.max(1, Math.min(Math.floor(SLICE_BYTES / inUnit), Math.floor(capacity / Math.max(inUnit, outUnit))))
    const call = direction === 'seal' ? ex.s3sse_seal : ex.s3sse_open
    try {
      begin(key, noncePrefix.subarray(0, NONCE_PREFIX_SIZE))
      let done = 0
      let inPos = 0
      let outPos = 0
      while (done < c.packages) {
        const k = Math.min(perSlice, c.packages - done)
        const inLen = Math.min(k * inUnit, input.length - inPos)
        const last = done + k === c.packages
        mem().set(input.subarray(inPos, inPos + inLen), inPtr)
        // Package numbers above 2^31 pass as negative i32s and arrive as the same u32.
        const r = call(firstPackage + done, k, final && last ? 1 : 0, inLen, p)
        if (r === ERR_AUTH) {
          // The packages before the bad one verified and are released, as by the other
          // backends; nothing of the bad one left the module (it wrote none of it).
          const good = ex.s3sse_failed_index()
          out.set(mem().subarray(outPtr, outPtr + good * p), outPos)
          throw authFailed(firstPackage + done + good)
        }
        if (r < 0) failure(direction, r)
        out.set(mem().subarray(outPtr, outPtr + r), outPos)
        done += k
        inPos += inLen
        outPos += r
      }
      return outPos
    } finally {
      ex.s3sse_end()
    }
  }

  function message(direction: 'seal' | 'open', key: Uint8Array, iv: Uint8Array, aad: Uint8Array, input: Uint8Array): Uint8Array {
    checkGcm(key, iv, aad, input, direction)
    const outLen = direction === 'seal' ? input.length + TAG_SIZE : input.length - TAG_SIZE
    if (aad.length + input.length > capacity || outLen > capacity) {
      throw new S3sseError('S3SSE_BAD_ARGUMENT', `a single wasm GCM message (AAD and data) is limited to ${capacity} bytes; use the package API for more`)
    }
    try {
      begin(key, iv.subarray(0, NONCE_SIZE))
      const m = mem()
      m.set(aad, inPtr)
      m.set(input, inPtr + aad.length)
      const r = direction === 'seal' ? ex.s3sse_gcm_seal(aad.length, input.length) : ex.s3sse_gcm_open(aad.length, input.length)
      if (r === ERR_AUTH) throw new S3sseError('S3SSE_AUTH_FAILED', 'message failed authentication')
      if (r < 0) failure(`gcm ${direction}`, r)
      return mem().slice(outPtr, outPtr + r)
    } finally {
      ex.s3sse_end()
    }
  }

  const gcm: Gcm = {
    seal: (key, iv, aad, plaintext) => message('seal', key, iv, aad, plaintext),
    open: (key, iv, aad, sealed) => message('open', key, iv, aad, sealed),
  }

  const seal: Backend['seal'] = (key, prefix, first, final, input, out, packageSize) =>
    run('seal', key, prefix, first, final, input, out, packageSize)
  const open: Backend['open'] = (key, prefix, first, final, input, out, packageSize) =>
    run('open', key, prefix, first, final, input, out, packageSize)

  return {
    name: 'wasm',
    arenaBytes: capacity,
    memory: ex.memory,
    gcm,
    seal,
    open,
    // On the calling thread: the promise form keeps one interface.
    sealAsync: async (key, prefix, first, final, input, out, packageSize) => seal(key, prefix, first, final, input, out, packageSize),
    openAsync: async (key, prefix, first, final, input, out, packageSize) => open(key, prefix, first, final, input, out, packageSize),
  }
}
