/**
 * Space kept back on the data dir's disk so that a full disk can still be emptied through S3
 * and the server can still start on it (docs/OPERATIONS.md, "A full disk").
 *
 * The reserve is a file of real (not sparse) bytes, `DATA/space.reserve`. Every start releases
 * it first — whatever a start must write (the database's WAL and shared-memory files, the
 * keyring lock) then has room — and makes it again once the server runs. A delete that the
 * disk refuses (SQLite needs a few pages of WAL even to delete a row) releases it and tries
 * once more; after each delete it is made again if there is room. Writes never use it: they
 * fail with 503 "no space left" while the disk is full.
 */
import { closeSync, fsyncSync, openSync, renameSync, rmSync, statSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { isS3sseError } from '../errors.js'
import type { Logger, SpaceReserve } from './state.js'

export const RESERVE_FILE = 'space.reserve'
/** Enough for SQLite to delete rows and checkpoint, and for a start's small files, many times over. */
export const RESERVE_BYTES = 4 * 1024 * 1024

export class FileSpaceReserve implements SpaceReserve {
  readonly path: string
  private making?: Promise<void>
  /** Bumped by each release, so a reserve being made when it comes gives up. */
  private generation = 0

  constructor(dataDir: string, private readonly log: Logger, readonly bytes = RESERVE_BYTES) {
    this.path = join(dataDir, RESERVE_FILE)
  }

  /** Whether the reserve is there, whole. */
  held(): boolean {
    try {
      return statSync(this.path).size === this.bytes
    } catch {
      return false
    }
  }

  /**
   * Frees the reserved space — also what a reserve being made right now holds — and says
   * whether there was any. `quiet` at start, where it is routine.
   */
  async release(quiet = false): Promise<boolean> {
    this.generation++
    const had = exists(this.path) || exists(this.tmpPath)
    rmSync(this.tmpPath, { force: true })
    rmSync(this.path, { force: true })
    if (had && !quiet) this.log.error(`warning: the disk of ${this.path} is full; released the ${this.bytes >> 20} MiB reserve so that deletes can free space`)
    return had
  }

  /** Makes the reserve if it is not there (best effort: on a full disk it waits for the next try). */
  restore(): Promise<void> {
    this.making ??= this.make().finally(() => {
      this.making = undefined
    })
    return this.making
  }

  private get tmpPath(): string {
    return `${this.path}.tmp`
  }

  private async make(): Promise<void> {
    if (this.held()) return
    const generation = this.generation
    const tmp = this.tmpPath
    rmSync(tmp, { force: true })
    let fd: number | undefined
    try {
      fd = openSync(tmp, 'w', 0o600)
      const block = Buffer.alloc(256 * 1024)
      for (let written = 0; written < this.bytes; ) {
        const n = writeSync(fd, block, 0, Math.min(block.length, this.bytes - written))
        // A nearly full disk takes part of a write and says so only in the count.
        if (n <= 0) throw new Error('no room')
        written += n
        // Let requests run between blocks (this is background work); a release meanwhile wins.
        await new Promise((r) => setImmediate(r))
        if (this.generation !== generation) throw new Error('released while being made')
      }
      fsyncSync(fd)
      closeSync(fd)
      fd = undefined
      // Named only once whole, so held() never counts a half-made reserve.
      renameSync(tmp, this.path)
    } catch {
      // No room yet (ENOSPC), or released meanwhile: leave nothing half-made.
      if (fd !== undefined) closeSync(fd)
      rmSync(tmp, { force: true })
    }
  }
}

function exists(path: string): boolean {
  try {
    statSync(path)
    return true
  } catch {
    return false
  }
}

/**
 * Runs a delete; if the disk refuses it (S3SSE_STORAGE_FULL), releases the reserve and runs
 * it once more. After a delete the reserve is made again in the background if it is gone.
 */
export async function withSpaceForDelete<T>(reserve: SpaceReserve | undefined, run: () => Promise<T>): Promise<T> {
  let result: T
  try {
    result = await run()
  } catch (err) {
    if (!reserve || !isS3sseError(err, 'S3SSE_STORAGE_FULL') || !(await reserve.release())) throw err
    result = await run()
  }
  if (reserve) void reserve.restore()
  return result
}
