import { readFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { checkCall, type AsyncOptions } from '../backend.js'
import { NONCE_PREFIX_SIZE } from '../constants.js'
import { createWasmBackendFromInstance, type WasmBackend } from './wasm-core.js'
import { POOL_MIN_BYTES, WasmPool } from './wasm-pool.js'

/**
 * Where the committed module lives: wasm/s3sse.wasm at the package root, three levels above
 * this file both as src/crypto/backends/wasm.ts and as dist/crypto/backends/wasm.js.
 */
export const WASM_MODULE_URL = new URL('../../../wasm/s3sse.wasm', import.meta.url)

export interface NodeWasmBackend extends WasmBackend {
  /** The worker pool behind sealAsync/openAsync (started on first use). */
  readonly pool: WasmPool
}

/**
 * The WebAssembly backend for Node: reads the committed module and instantiates it
 * synchronously; seal/open run on the calling thread, sealAsync/openAsync of 256 KiB or more
 * on worker threads (one instance of the module each). Everything else is in wasm-core.ts,
 * which has no Node dependency (browsers and other runtimes load the same module through it).
 */
export function createWasmBackend(): NodeWasmBackend {
  let bytes: Buffer<ArrayBuffer>
  try {
    bytes = readFileSync(WASM_MODULE_URL)
  } catch (e) {
    throw new Error(`cannot read ${WASM_MODULE_URL.pathname} (rebuild it with npm run build:wasm): ${(e as Error).message}`, { cause: e })
  }
  const module = new WebAssembly.Module(bytes)
  const core = createWasmBackendFromInstance(new WebAssembly.Instance(module, {}))
  const pool = new WasmPool(module)

  async function pooled(direction: 'seal' | 'open', key: Uint8Array, prefix: Uint8Array, first: number, final: boolean,
    input: Uint8Array, out: Uint8Array, packageSize?: number, options?: AsyncOptions): Promise<number> {
    const c = checkCall(direction, key, prefix, first, final, input, out, packageSize)
    if (input.length < POOL_MIN_BYTES) {
      return direction === 'seal' ? core.seal(key, prefix, first, final, input, out, packageSize) : core.open(key, prefix, first, final, input, out, packageSize)
    }
    const threads = Math.max(1, options?.threads ?? availableParallelism())
    return pool.call(direction === 'seal', key, prefix.subarray(0, NONCE_PREFIX_SIZE), first, final, input, out,
      c.packageSize, c.packages, c.outLength, threads)
  }

  return {
    ...core,
    pool,
    sealAsync: (k, p, f, fin, i, o, ps, opt) => pooled('seal', k, p, f, fin, i, o, ps, opt),
    openAsync: (k, p, f, fin, i, o, ps, opt) => pooled('open', k, p, f, fin, i, o, ps, opt),
  }
}
