// The WebAssembly backend without any Node API: it takes the module's bytes, a compiled
// WebAssembly.Module or an instance, so the same file runs in Node, browsers, workers and
// edge runtimes. src/crypto/backends/wasm.ts is the thin Node loader that reads the file.
import { S3sseError } from '../../errors.js'
import { authFailed, checkCall, checkGcm, type Backend, type Gcm } from '../backend.js'
import { NONCE_PREFIX_SIZE, NONCE_SIZE, TAG_SIZE } from '../constants.js'

/** The interface version of wasm/s3sse.wasm this glue speaks (s3sse_abi_version). */
export const WASM_ABI_VERSION = 1

/** Input bytes copied into the arena per call into the module, when a call is larger. */
export const SLICE_BYTES = 1024 * 1024

// Return codes of the module (wasm/src/lib.rs).
const ERR_ARGUMENT = -1
const ERR_NO_KEY = -2
const ERR_AUTH = -3

export interface WasmExports {
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

/** The number of bytes a run wrote, or the error it came to (`first` = its first package). */
export function sliceOutcome(r: SliceResult, direction: 'seal' | 'open', first: number): number {
  if ('written' in r) return r.written
  if ('failed' in r) throw authFailed(first + r.failed)
  throw refusal(direction, r.refused)
}

function refusal(what: string, code: number): S3sseError {
  const why = code === ERR_ARGUMENT ? 'refused its arguments' : code === ERR_NO_KEY ? 'had no key loaded' : `returned ${code}`
  return new S3sseError('S3SSE_CRYPTO_FAILURE', `the wasm module ${why} in ${what}`)
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

/** What one run of packages through the module came to. */
export type SliceResult =
  | { written: number }
  /** The tag of package `failed` (index in the run) did not verify; `released` bytes before it did. */
  | { failed: number; released: number }
  /** The module refused the call or the key (one of its negative return codes). */
  | { refused: number }

/**
 * Seals or opens `packages` packages of `input` into `out` through the module's arena, in
 * slices of whole packages of about `sliceBytes`, then wipes the module's session. The
 * arguments were checked (checkCall). Self-contained on purpose: the Node worker pool runs
 * this function's source text in its workers, so it uses nothing but its parameters.
 */
export function runSlices(ex: WasmExports, seal: boolean, key: Uint8Array, nonce: Uint8Array, first: number,
  final: boolean, input: Uint8Array, out: Uint8Array, packageSize: number, packages: number, sliceBytes: number): SliceResult {
  const tag = 16 // TAG_SIZE; the module checks it too
  let view = new Uint8Array(ex.memory.buffer)
  // The module never grows its memory, but a view made before a growth would be detached,
  // so every use goes through mem(), which makes a new one when that happens.
  const mem = (): Uint8Array => {
    if (view.buffer !== ex.memory.buffer) view = new Uint8Array(ex.memory.buffer)
    return view
  }
  const capacity = ex.s3sse_capacity()
  const inPtr = ex.s3sse_in_ptr()
  const outPtr = ex.s3sse_out_ptr()
  const inUnit = seal ? packageSize : packageSize + tag
  const outUnit = seal ? packageSize + tag : packageSize
  // Whole packages per slice: about sliceBytes of input (stays in cache), at least one, and
  // never more than the arena holds.
  const perSlice = Math.max(1, Math.min(Math.floor(sliceBytes / inUnit), Math.floor(capacity / Math.max(inUnit, outUnit))))
  const call = seal ? ex.s3sse_seal : ex.s3sse_open
  try {
    mem().set(key, ex.s3sse_key_ptr())
    mem().set(nonce, ex.s3sse_nonce_ptr())
    const begun = ex.s3sse_begin()
    if (begun !== 0) return { refused: begun }
    let done = 0
    let inPos = 0
    let outPos = 0
    while (done < packages) {
      const k = Math.min(perSlice, packages - done)
      const inLen = Math.min(k * inUnit, input.length - inPos)
      const last = done + k === packages
      mem().set(input.subarray(inPos, inPos + inLen), inPtr)
      // Package numbers above 2^31 pass as negative i32s and arrive as the same u32.
      const r = call(first + done, k, final && last ? 1 : 0, inLen, packageSize)
      if (r === -3) {
        // The packages before the bad one verified and are released, as by the other
        // backends; nothing of the bad one left the module (it decrypted none of it).
        const good = ex.s3sse_failed_index()
        out.set(mem().subarray(outPtr, outPtr + good * packageSize), outPos)
        return { failed: done + good, released: outPos + good * packageSize }
      }
      if (r < 0) return { refused: r }
      out.set(mem().subarray(outPtr, outPtr + r), outPos)
      done += k
      inPos += inLen
      outPos += r
    }
    return { written: outPos }
  } finally {
    ex.s3sse_end()
  }
}

export function createWasmBackendFromInstance(instance: WebAssembly.Instance): WasmBackend {
  const ex = instance.exports as unknown as WasmExports
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

  function run(direction: 'seal' | 'open', key: Uint8Array, noncePrefix: Uint8Array, firstPackage: number,
    final: boolean, input: Uint8Array, out: Uint8Array, packageSize?: number): number {
    const c = checkCall(direction, key, noncePrefix, firstPackage, final, input, out, packageSize)
    if (c.packages === 0) return 0
    const r = runSlices(ex, direction === 'seal', key, noncePrefix.subarray(0, NONCE_PREFIX_SIZE), firstPackage, final,
      input, out, c.packageSize, c.packages, SLICE_BYTES)
    return sliceOutcome(r, direction, firstPackage)
  }

  function message(direction: 'seal' | 'open', key: Uint8Array, iv: Uint8Array, aad: Uint8Array, input: Uint8Array): Uint8Array {
    checkGcm(key, iv, aad, input, direction)
    const outLen = direction === 'seal' ? input.length + TAG_SIZE : input.length - TAG_SIZE
    if (aad.length + input.length > capacity || outLen > capacity) {
      throw new S3sseError('S3SSE_BAD_ARGUMENT', `a single wasm GCM message (AAD and data) is limited to ${capacity} bytes; use the package API for more`)
    }
    try {
      mem().set(key, keyPtr)
      mem().set(iv.subarray(0, NONCE_SIZE), noncePtr)
      const begun = ex.s3sse_begin()
      if (begun !== 0) throw refusal(`gcm ${direction}`, begun)
      const m = mem()
      m.set(aad, inPtr)
      m.set(input, inPtr + aad.length)
      const r = direction === 'seal' ? ex.s3sse_gcm_seal(aad.length, input.length) : ex.s3sse_gcm_open(aad.length, input.length)
      if (r === ERR_AUTH) throw new S3sseError('S3SSE_AUTH_FAILED', 'message failed authentication')
      if (r < 0) throw refusal(`gcm ${direction}`, r)
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
