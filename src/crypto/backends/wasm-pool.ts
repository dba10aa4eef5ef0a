// Worker threads for the wasm backend's sealAsync/openAsync under Node: a large call is cut
// into runs of whole packages, each sealed or opened by its own instance of the module in a
// worker, so the event loop stays free and both cores work. Node-only (worker_threads);
// browsers use wasm-core.ts, whose async forms run on the calling thread.
import { availableParallelism } from 'node:os'
import { Worker } from 'node:worker_threads'
import { S3sseError } from '../../errors.js'
import { authFailed } from '../backend.js'
import { TAG_SIZE } from '../constants.js'
import { runSlices, SLICE_BYTES, type SliceResult } from './wasm-core.js'

/** Calls with less input run on the calling thread: the hop costs more than it saves. */
export const POOL_MIN_BYTES = 256 * 1024
/** Each worker gets at least this many packages of a call. */
const MIN_PACKAGES_PER_THREAD = 4

interface Job {
  id: number
  seal: boolean
  key: ArrayBuffer
  nonce: Uint8Array
  first: number
  final: boolean
  input: ArrayBuffer
  outLength: number
  packageSize: number
  packages: number
}

interface Reply {
  id: number
  /** Absent when the run threw (`error` then says what). */
  result?: SliceResult
  error?: string
  out: ArrayBuffer
}

// The worker instantiates the module it is given and runs runSlices, whose source text is
// pasted in (it is self-contained), so the worker needs no file of its own and runs the same
// code from src/ under the test runner and from dist/ when installed.
// process.getBuiltinModule works whether the worker evaluates this as a script or, when the
// parent runs with --input-type=module, as a module (where there is no require).
const WORKER_SOURCE = `'use strict'
const { parentPort, workerData } = process.getBuiltinModule('node:worker_threads')
const ex = new WebAssembly.Instance(workerData.module, {}).exports
const runSlices = ${runSlices.toString()}
parentPort.on('message', (job) => {
  const key = new Uint8Array(job.key)
  const out = new Uint8Array(job.outLength)
  let result
  let error
  try {
    result = runSlices(ex, job.seal, key, job.nonce, job.first, job.final, new Uint8Array(job.input), out,
      job.packageSize, job.packages, ${SLICE_BYTES})
  } catch (e) {
    error = String(e && e.message || e)
  } finally {
    key.fill(0)
  }
  parentPort.postMessage({ id: job.id, result, error, out: out.buffer }, [out.buffer])
})
`

interface Slot {
  worker: Worker
  pending: Map<number, { resolve: (r: Reply) => void; reject: (e: Error) => void }>
}

export class WasmPool {
  private slots: Array<Slot | undefined> = []
  private nextId = 1
  private next = 0

  constructor(private readonly module: WebAssembly.Module, readonly size = availableParallelism()) {}

  private slot(i: number): Slot {
    const existing = this.slots[i]
    if (existing) return existing
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { module: this.module } })
    const slot: Slot = { worker, pending: new Map() }
    // An idle worker does not keep the process alive; one with work does (see run()).
    worker.unref()
    worker.on('message', (reply: Reply) => {
      const p = slot.pending.get(reply.id)
      if (!p) return
      slot.pending.delete(reply.id)
      if (slot.pending.size === 0) worker.unref()
      p.resolve(reply)
    })
    const fail = (e: Error) => {
      // A worker that died takes its jobs with it; the next call starts a new one.
      if (this.slots[i] === slot) this.slots[i] = undefined
      for (const p of slot.pending.values()) p.reject(new S3sseError('S3SSE_CRYPTO_FAILURE', `a wasm worker failed: ${e.message}`, { cause: e }))
      slot.pending.clear()
    }
    worker.on('error', fail)
    worker.on('exit', (code) => fail(new Error(`exited with code ${code}`)))
    this.slots[i] = slot
    return slot
  }

  private run(job: Omit<Job, 'id'>): Promise<Reply> {
    const slot = this.slot(this.next++ % this.size)
    const id = this.nextId++
    return new Promise((resolve, reject) => {
      slot.pending.set(id, { resolve, reject })
      slot.worker.ref()
      // The key and the input travel as copies moved into the worker (transferred, so no
      // second copy stays on this side); the worker zeroes its key when done.
      slot.worker.postMessage({ ...job, id }, [job.key, job.input])
    })
  }

  /**
   * Seals or opens a checked call of `packages` packages across up to `threads` workers.
   * The runs before the first failing one are released; from that run on, `out` is zeroed.
   */
  async call(seal: boolean, key: Uint8Array, nonce: Uint8Array, first: number, final: boolean, input: Uint8Array,
    out: Uint8Array, packageSize: number, packages: number, outLength: number, threads: number): Promise<number> {
    const n = Math.max(1, Math.min(threads, this.size, Math.floor(packages / MIN_PACKAGES_PER_THREAD)))
    const inStep = seal ? packageSize : packageSize + TAG_SIZE
    const outStep = seal ? packageSize + TAG_SIZE : packageSize
    const per = Math.ceil(packages / n)
    const runs: Array<{ start: number; count: number; reply: Promise<Reply> }> = []
    for (let p = 0; p < packages; p += per) {
      const count = Math.min(per, packages - p)
      const last = p + count === packages
      const inEnd = last ? input.length : (p + count) * inStep
      // A copy with its own ArrayBuffer (Buffer#slice would share the caller's memory, and
      // transferring that would detach it).
      const piece = new Uint8Array(input.subarray(p * inStep, inEnd))
      const pieceOut = seal ? piece.length + count * TAG_SIZE : piece.length - count * TAG_SIZE
      runs.push({
        start: p,
        count,
        reply: this.run({
          seal, key: new Uint8Array(key).buffer, nonce: new Uint8Array(nonce), first: first + p, final: final && last,
          input: piece.buffer, outLength: pieceOut, packageSize, packages: count,
        }),
      })
    }
    const settled = await Promise.allSettled(runs.map((r) => r.reply))
    let written = 0
    for (let i = 0; i < runs.length; i++) {
      const s = settled[i]
      const run = runs[i]
      if (s.status === 'fulfilled' && s.value.result && 'written' in s.value.result) {
        out.set(new Uint8Array(s.value.out, 0, s.value.result.written), run.start * outStep)
        written += s.value.result.written
        continue
      }
      // Nothing from this run on is released (as the native backend's split calls do).
      out.fill(0, run.start * outStep, outLength)
      if (s.status === 'rejected') throw s.reason
      const r = s.value.result
      if (!r) throw new S3sseError('S3SSE_CRYPTO_FAILURE', `a wasm worker failed: ${s.value.error}`)
      if ('failed' in r) {
        throw authFailed(first + run.start + r.failed)
      }
      throw new S3sseError('S3SSE_CRYPTO_FAILURE', `the wasm module in a worker refused a ${seal ? 'seal' : 'open'} call (code ${(r as { refused: number }).refused})`)
    }
    return written
  }

  /** Stops the workers (tests; the process does not wait for idle workers anyway). */
  async close(): Promise<void> {
    const slots = this.slots.filter((s): s is Slot => s !== undefined)
    this.slots = []
    await Promise.all(slots.map((s) => s.worker.terminate()))
  }
}
