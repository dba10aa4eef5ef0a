/**
 * SoftHSM2 for tests: a token in a temp dir of its own (SOFTHSM2_CONF names a config whose
 * directories.tokendir is that dir), initialised with softhsm2-util. When SoftHSM2 is not
 * installed the caller skips and says why — unless S3SSE_REQUIRE_SERVICES=1 (CI), which
 * turns the skip into a failure.
 */
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createRequire } from 'node:module'

export const SOFTHSM_MODULE = '/usr/lib/softhsm/libsofthsm2.so'
export const SOFTHSM_UTIL = '/usr/bin/softhsm2-util'

/** Why SoftHSM tests cannot run here, or undefined when they can. */
export function softhsmMissing(): string | undefined {
  if (!existsSync(SOFTHSM_MODULE) || !existsSync(SOFTHSM_UTIL)) return `SoftHSM2 is not installed (${SOFTHSM_MODULE}; apt-get install softhsm2)`
  try {
    createRequire(import.meta.url)('pkcs11js')
  } catch {
    return 'the optional dependency pkcs11js did not load (npm install pkcs11js)'
  }
  return undefined
}

/** Skips (saying why) or, with S3SSE_REQUIRE_SERVICES=1, fails when `missing` is set. */
export function requireOrSkip(missing: string | undefined, what: string): boolean {
  if (missing === undefined) return true
  if (process.env.S3SSE_REQUIRE_SERVICES === '1') throw new Error(`${what} needs a service that is missing, and S3SSE_REQUIRE_SERVICES=1: ${missing}`)
  process.stderr.write(`SKIP ${what}: ${missing}\n`)
  return false
}

export interface SoftHsmToken {
  dir: string
  conf: string
  label: string
  pin: string
  pinFile: string
  module: string
  /** Environment for child processes that use this token. */
  env: NodeJS.ProcessEnv
  cleanup(): void
}

/** A fresh token; also points this process's SOFTHSM2_CONF at it (read at C_Initialize). */
export function createSoftHsmToken(label = 's3sse-test'): SoftHsmToken {
  const dir = mkdtempSync(join(tmpdir(), 's3sse-softhsm-'))
  const tokens = join(dir, 'tokens')
  mkdirSync(tokens, { mode: 0o700 })
  const conf = join(dir, 'softhsm2.conf')
  writeFileSync(conf, `directories.tokendir = ${tokens}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`)
  const pin = `pin-${Math.random().toString(36).slice(2, 10)}`
  const env = { ...process.env, SOFTHSM2_CONF: conf }
  execFileSync(SOFTHSM_UTIL, ['--init-token', '--free', '--label', label, '--pin', pin, '--so-pin', `so-${pin}`], { env, stdio: 'pipe' })
  const pinFile = join(dir, 'pin')
  writeFileSync(pinFile, pin + '\n', { mode: 0o600 })
  process.env.SOFTHSM2_CONF = conf
  return { dir, conf, label, pin, pinFile, module: SOFTHSM_MODULE, env, cleanup: () => rmSync(dir, { recursive: true, force: true }) }
}
