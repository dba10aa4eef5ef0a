import { S3sseError } from '../errors.js'
import type { Backend, BackendName } from './backend.js'
import { createJsBackend } from './backends/js.js'
import { createNativeBackend, forcedNativeEngine, type CpuFeatures, type NativeBackend, type NativeEngineName, type NativeEngineReport } from './backends/native.js'
import { createNodeBackend } from './backends/node.js'
import { createWasmBackend } from './backends/wasm.js'

/** The order the loader tries: fastest first, the reference last. */
export const BACKEND_ORDER: readonly BackendName[] = ['native', 'node', 'wasm', 'js']

const factories: Record<BackendName, () => Backend> = {
  native: createNativeBackend,
  node: createNodeBackend,
  wasm: createWasmBackend,
  js: createJsBackend,
}

export interface LoadFailure {
  backend: BackendName
  error: Error
}

export interface BackendReport {
  /** The backend `loadBackend()` returns. */
  chosen: BackendName
  /** Why it was chosen: forced by S3SSE_BACKEND, or the first of BACKEND_ORDER that loaded. */
  reason: 'forced' | 'order'
  /** Every backend tried before it that failed, with the cause. */
  failures: LoadFailure[]
  /** CPU features the native addon probed (when it loaded). */
  cpu?: CpuFeatures
  opensslVersion?: string
  /** The native backend's engine and why (when it loaded), with ipsec-mb's state. */
  engine?: NativeEngineReport
}

const loaded = new Map<BackendName, Backend>()
const failed = new Map<BackendName, Error>()
let report: BackendReport | undefined
let debugPrinted = false

function isBackendName(s: string): s is BackendName {
  return (BACKEND_ORDER as readonly string[]).includes(s)
}

function tryLoad(name: BackendName): Backend | Error {
  const hit = loaded.get(name) ?? failed.get(name)
  if (hit) return hit
  try {
    const b = factories[name]()
    loaded.set(name, b)
    return b
  } catch (e) {
    const err = e instanceof Error ? e : new Error(String(e))
    failed.set(name, err)
    return err
  }
}

function unavailable(name: BackendName, cause: Error): S3sseError {
  return new S3sseError('S3SSE_BACKEND_UNAVAILABLE', `the ${name} backend did not load: ${cause.message}`, { cause })
}

/**
 * The package cipher. With a name, exactly that backend (or S3SSE_BACKEND_UNAVAILABLE with
 * the cause). Without, S3SSE_BACKEND when set, else the first of native → node → wasm → js
 * that loads; the failures before it are kept in `backendReport()`.
 */
export function loadBackend(name?: BackendName): Backend {
  // A misspelt S3SSE_NATIVE_ENGINE is an error here, not a native failure to fall back from.
  forcedNativeEngine()
  if (name !== undefined) {
    if (!isBackendName(name)) throw new S3sseError('S3SSE_BAD_ARGUMENT', `unknown backend "${String(name)}"; one of ${BACKEND_ORDER.join(', ')}`)
    const b = tryLoad(name)
    if (b instanceof Error) throw unavailable(name, b)
    return b
  }
  if (report) return loaded.get(report.chosen)!
  const forced = process.env.S3SSE_BACKEND
  let chosen: Backend | undefined
  const failures: LoadFailure[] = []
  if (forced) {
    if (!isBackendName(forced)) {
      throw new S3sseError('S3SSE_BAD_ARGUMENT', `S3SSE_BACKEND="${forced}" is not one of ${BACKEND_ORDER.join(', ')}`)
    }
    const b = tryLoad(forced)
    if (b instanceof Error) throw unavailable(forced, b)
    chosen = b
  } else {
    for (const n of BACKEND_ORDER) {
      const b = tryLoad(n)
      if (b instanceof Error) {
        // An engine the user forced is not passed over for a slower backend.
        if (n === 'native' && forcedNativeEngine()) throw unavailable(n, b)
        failures.push({ backend: n, error: b })
        continue
      }
      chosen = b
      break
    }
  }
  if (!chosen) {
    throw new S3sseError('S3SSE_BACKEND_UNAVAILABLE', `no backend loaded: ${failures.map((f) => `${f.backend}: ${f.error.message}`).join('; ')}`)
  }
  const native = loaded.get('native') as NativeBackend | undefined
  report = {
    chosen: chosen.name,
    reason: forced ? 'forced' : 'order',
    failures,
    cpu: native?.cpu,
    opensslVersion: native?.opensslVersion,
    engine: native?.engineReport,
  }
  if (process.env.S3SSE_DEBUG) printBackendReport()
  return chosen
}

const nativeEngines = new Map<NativeEngineName, NativeBackend>()

/**
 * The native backend with exactly the engine asked for (so tests and benchmarks can hold the
 * engines against each other in one process), or S3SSE_BACKEND_UNAVAILABLE with the cause.
 */
export function loadNativeBackend(engine: NativeEngineName): NativeBackend {
  const hit = nativeEngines.get(engine)
  if (hit) return hit
  let b: NativeBackend
  try {
    b = createNativeBackend({ engine })
  } catch (e) {
    const cause = e instanceof Error ? e : new Error(String(e))
    if (cause instanceof S3sseError && cause.code === 'S3SSE_BAD_ARGUMENT') throw cause
    throw unavailable('native', cause)
  }
  nativeEngines.set(engine, b)
  return b
}

/** What the loader chose and why (loads the default backend if nothing has yet). */
export function backendReport(): BackendReport {
  if (!report) loadBackend()
  return report!
}

/** One line: the backend, and why any faster one was passed over. */
export function describeBackendReport(r: BackendReport = backendReport()): string {
  const parts = [`s3-sse: crypto backend ${r.chosen}${r.reason === 'forced' ? ' (forced by S3SSE_BACKEND)' : ''}`]
  const e = r.engine
  if (e && r.chosen === 'native') {
    parts[0] += ` with engine ${e.name} (${e.detail}${e.reason === 'forced' ? ', forced by S3SSE_NATIVE_ENGINE' : ''})`
    if (e.name !== 'ipsec-mb' && !e.ipsecMb.available) parts.push(`ipsec-mb unavailable: ${e.ipsecMb.reason}`)
  }
  if (r.cpu) {
    const f = r.cpu
    const yn = (b: boolean | undefined) => (b ? 'yes' : 'no')
    parts.push(f.arch === 'x64'
      ? `cpu x64 aes-ni=${yn(f.aesni)} pclmulqdq=${yn(f.pclmulqdq)} avx=${yn(f.avx)} avx2=${yn(f.avx2)} avx512f=${yn(f.avx512f)} vaes=${yn(f.vaes)} vpclmulqdq=${yn(f.vpclmulqdq)}`
      : `cpu ${f.arch} aes=${yn(f.aes)} pmull=${yn(f.pmull)}`)
  }
  for (const f of r.failures) parts.push(`${f.backend} unavailable: ${f.error.message.split('\n')[0]}`)
  return parts.join('; ')
}

/** Prints the one-line report to stderr, once per process. */
export function printBackendReport(): void {
  if (debugPrinted) return
  debugPrinted = true
  process.stderr.write(describeBackendReport() + '\n')
}
