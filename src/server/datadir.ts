/**
 * The data dir holds credentials, the TLS key, the keyring and every object: it is private
 * to the server's user. Created 0700; one found open to group or others is closed at start
 * with a warning (so is a metadata file an older version left 0644), never silently kept.
 */
import { chmodSync, existsSync, mkdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import type { Logger } from './state.js'

/** Files an older version may have created readable by others. */
const PRIVATE_FILES = ['meta.sqlite', 'meta.sqlite-wal', 'meta.sqlite-shm', 'tls-cert.pem']

export function preparePrivateDataDir(dataDir: string, log: Logger): void {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 })
  tighten(dataDir, 0o700, 'data dir', log)
  for (const name of ['objects', 'tmp', 'kms']) {
    const dir = join(dataDir, name)
    if (existsSync(dir)) tighten(dir, 0o700, 'directory', log)
  }
  for (const name of PRIVATE_FILES) {
    const file = join(dataDir, name)
    if (existsSync(file)) tighten(file, 0o600, 'file', log)
  }
}

function tighten(path: string, mode: number, what: string, log: Logger): void {
  const current = statSync(path).mode & 0o777
  if ((current & 0o077) === 0) return
  chmodSync(path, mode)
  log.error(`warning: ${what} ${path} had mode ${current.toString(8)} (open to group or others); changed to ${mode.toString(8)}`)
}
