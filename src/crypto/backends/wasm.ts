import { readFileSync } from 'node:fs'
import { createWasmBackendSync, type WasmBackend } from './wasm-core.js'

/**
 * Where the committed module lives: wasm/s3sse.wasm at the package root, three levels above
 * this file both as src/crypto/backends/wasm.ts and as dist/crypto/backends/wasm.js.
 */
export const WASM_MODULE_URL = new URL('../../../wasm/s3sse.wasm', import.meta.url)

/**
 * The WebAssembly backend for Node: reads the committed module and instantiates it
 * synchronously. Everything else is in wasm-core.ts, which has no Node dependency (browsers
 * and other runtimes load the same module through it).
 */
export function createWasmBackend(): WasmBackend {
  let bytes: Uint8Array
  try {
    bytes = readFileSync(WASM_MODULE_URL)
  } catch (e) {
    throw new Error(`cannot read ${WASM_MODULE_URL.pathname} (rebuild it with npm run build:wasm): ${(e as Error).message}`, { cause: e })
  }
  return createWasmBackendSync(bytes)
}
