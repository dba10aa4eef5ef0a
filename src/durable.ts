/**
 * Durable small files, the one way every layer writes them (the keyring, credentials, the TLS
 * key) and the directory fsync the blob store shares: write a temp file next to the target
 * (mode 0600), fsync it, rename it over the target, fsync the directory. A crash leaves either
 * the old or the new file, never half of one, and no temp file survives a failed write.
 */
import { randomBytes } from 'node:crypto'
import * as fs from 'node:fs'
import { open } from 'node:fs/promises'
import * as path from 'node:path'

/** fsync a directory so a rename or a new name in it survives a crash. */
export function fsyncDirSync(dir: string): void {
  const fd = fs.openSync(dir, 'r')
  try {
    fs.fsyncSync(fd)
  } finally {
    fs.closeSync(fd)
  }
}

/** fsyncDirSync without blocking the event loop. */
export async function fsyncDir(dir: string): Promise<void> {
  const h = await open(dir, 'r')
  try {
    await h.sync()
  } finally {
    await h.close()
  }
}

/** Crash-safe replace of `file` with `data`, private to the owner (0600). */
export function writeFileAtomic(file: string, data: Uint8Array | string): void {
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`
  const fd = fs.openSync(tmp, 'wx', 0o600)
  try {
    fs.writeFileSync(fd, data)
    fs.fsyncSync(fd)
  } catch (e) {
    fs.closeSync(fd)
    fs.rmSync(tmp, { force: true })
    throw e
  }
  fs.closeSync(fd)
  try {
    fs.renameSync(tmp, file)
  } catch (e) {
    fs.rmSync(tmp, { force: true })
    throw e
  }
  fsyncDirSync(path.dirname(file))
}
