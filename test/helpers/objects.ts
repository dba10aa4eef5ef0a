import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { randomBytes } from 'node:crypto'
import type { ReadStored } from '../../src/object/index.js'
import { S3sseError } from '../../src/errors.js'
import type { Kms } from '../../src/keys/kms.js'
import { KMS_METHODS } from '../../src/keys/kms.js'

/** A fresh temp dir per test, removed by the returned cleanup. */
export function tempDir(prefix = 's3sse-test-'): { dir: string; cleanup: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) }
}

export async function collect(source: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const c of source) chunks.push(Buffer.from(c))
  return Buffer.concat(chunks)
}

/** Yields `data` in pieces of `step` bytes (a step that does not divide the package size). */
export async function* chunks(data: Uint8Array, step = 1000): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < data.length; i += step) yield data.subarray(i, Math.min(i + step, data.length))
}

/**
 * Stored part files kept in memory, with a ReadStored over them that counts the bytes it
 * hands out and serves them in small pieces, as a file stream would.
 */
export class MemoryStore {
  parts: Buffer[] = []
  bytesRead = 0
  reads: Array<[number, number, number]> = []

  read: ReadStored = (partIndex, start, end) => {
    const part = this.parts[partIndex]
    if (!part) throw new Error(`no part ${partIndex}`)
    this.reads.push([partIndex, start, end])
    const self = this
    return (async function* () {
      for (let pos = start; pos < Math.min(end, part.length); pos += 4096) {
        const piece = part.subarray(pos, Math.min(pos + 4096, end, part.length))
        self.bytesRead += piece.length
        yield piece
      }
    })()
  }

  resetCounters(): void {
    this.bytesRead = 0
    this.reads = []
  }
}

export function randomData(n: number): Buffer {
  return randomBytes(n)
}

/**
 * A KMS in front of a real one that can be switched off, standing for a KMS server that stops
 * answering: calls then fail the way a network client fails (a plain Error, not a typed one).
 */
export class FlakyKms {
  down = false
  readonly kms: Kms

  constructor(inner: Kms) {
    const self = this
    this.kms = Object.fromEntries(KMS_METHODS.map((m) => [m, (...args: unknown[]) => {
      if (self.down) return Promise.reject(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:8200'), { code: 'ECONNREFUSED' }))
      return (inner[m] as (...a: unknown[]) => Promise<unknown>).apply(inner, args)
    }])) as unknown as Kms
  }
}

export async function expectCode(p: Promise<unknown> | (() => unknown), code: string): Promise<S3sseError> {
  try {
    await (typeof p === 'function' ? p() : p)
  } catch (e) {
    if (!(e instanceof S3sseError)) throw new Error(`expected S3sseError ${code}, got ${String(e)}`, { cause: e })
    if (e.code !== code) throw new Error(`expected ${code}, got ${e.code}: ${e.message}`, { cause: e })
    return e
  }
  throw new Error(`expected ${code}, but it succeeded`)
}
