/** The process-level guard of `s3-sse serve` (src/server/guard.ts) in a real child process. */
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { ROOT } from '../server/helpers.js'

describe('the process guard', () => {
  it('logs an escaped exception and rejection with their stacks and keeps the process running', () => {
    const child = fileURLToPath(new URL('./fixtures/guard-child.ts', import.meta.url))
    const r = spawnSync(process.execPath, ['--import', 'tsx', child], { cwd: ROOT, encoding: 'utf8', timeout: 30_000 })
    expect(r.status, r.stderr).toBe(0)
    expect(r.stdout).toContain('still running after 2 escaped errors')
    expect(r.stderr).toMatch(/uncaught exception \(a bug; the server keeps serving\): Error: thrown in a timer\n\s+at /)
    expect(r.stderr).toMatch(/unhandled rejection \(a bug; the server keeps serving\): Error: rejected and forgotten/)
  })
})
