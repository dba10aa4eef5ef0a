import { spawnSync, type SpawnSyncReturns } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

// What a storage operator gets from `npm install s3-sse` on a machine without a compiler:
// the package is packed, installed into a fresh project with --ignore-scripts and a PATH
// that has node and npm but no compiler, and must load its prebuilt addon from there.

const root = fileURLToPath(new URL('../../', import.meta.url))
const prebuild = join(root, 'prebuilds', `${process.platform}-${process.arch}`, 's3-sse.node')

let work: string
let project: string
let noCompilerPath: string

function which(cmd: string): string {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' })
  return r.stdout.trim()
}

function run(cmd: string, args: string[], opts: { cwd?: string; env?: Record<string, string | undefined> } = {}): SpawnSyncReturns<string> {
  const r = spawnSync(cmd, args, {
    cwd: opts.cwd ?? project,
    encoding: 'utf8',
    env: { HOME: process.env.HOME, npm_config_nodedir: '/usr', PATH: noCompilerPath, ...opts.env },
    timeout: 240_000,
  })
  return r
}

function ok(r: SpawnSyncReturns<string>): string {
  if (r.status !== 0) throw new Error(`exit ${r.status}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`)
  return r.stdout
}

const node = (args: string[], env: Record<string, string | undefined> = {}) => run(process.execPath, args, { env })
const esm = (code: string, env: Record<string, string | undefined> = {}) => node(['--input-type=module', '-e', code], env)
const cjs = (code: string, env: Record<string, string | undefined> = {}) => node(['-e', code], env)

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 's3sse-pack-'))
  // A PATH with node and npm only: no cc, c++, make or python for node-gyp to find.
  const bin = join(work, 'bin')
  mkdirSync(bin)
  symlinkSync(process.execPath, join(bin, 'node'))
  symlinkSync(which('npm'), join(bin, 'npm'))
  noCompilerPath = bin
  for (const c of ['cc', 'gcc', 'g++', 'c++', 'make', 'python3']) {
    expect(spawnSync('sh', ['-c', `command -v ${c}`], { env: { PATH: bin } }).status, `${c} must not be on the test PATH`).not.toBe(0)
  }

  if (!existsSync(prebuild)) {
    ok(spawnSync(which('npm'), ['run', 'prebuild'], { cwd: root, encoding: 'utf8', env: { ...process.env, npm_config_nodedir: '/usr' } }))
  }
  const packed = ok(spawnSync(which('npm'), ['pack', '--pack-destination', work, '--silent'], { cwd: root, encoding: 'utf8', env: process.env }))
  const tarball = join(work, packed.trim().split('\n').pop()!)

  project = join(work, 'consumer')
  mkdirSync(project)
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, version: '1.0.0' }))
  ok(run(which('npm'), ['install', '--ignore-scripts', '--no-audit', '--no-fund', tarball], { env: { PATH: `${noCompilerPath}` } }))
}, 300_000)

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true })
})

describe('the packed package, installed without scripts or a compiler', () => {
  const installed = () => join(project, 'node_modules', 's3-sse')

  it('ships the prebuild, the types and the docs, and compiled nothing', () => {
    expect(existsSync(join(installed(), 'prebuilds', `${process.platform}-${process.arch}`, 's3-sse.node'))).toBe(true)
    expect(existsSync(join(installed(), 'dist', 'index.d.ts'))).toBe(true)
    expect(existsSync(join(installed(), 'docs', 'FORMAT.md'))).toBe(true)
    expect(existsSync(join(installed(), 'LICENSE'))).toBe(true)
    expect(existsSync(join(installed(), 'build'))).toBe(false)
    // Nothing of the test suite or the sources' tooling is shipped.
    expect(existsSync(join(installed(), 'test'))).toBe(false)
    expect(readdirSync(installed()).sort()).not.toContain('src')
  })

  it('ships the web console, and the installed server finds it', () => {
    for (const f of ['index.html', 'app.js', 'console.css', 'favicon.svg']) {
      expect(existsSync(join(installed(), 'console', f)), f).toBe(true)
    }
    expect(existsSync(join(installed(), 'docs', 'CONSOLE.md'))).toBe(true)
    // The module that serves it, as installed (dist/server/console/), resolves the folder beside dist/.
    const assets = join(installed(), 'dist', 'server', 'console', 'assets.js')
    const out = ok(esm(`const { asset, CONSOLE_DIR } = await import(${JSON.stringify(assets)}); const a = asset('index.html'); console.log(CONSOLE_DIR + ' ' + a.contentType + ' ' + a.body.includes('src="app.js"'))`))
    expect(out.trim()).toBe(`${join(installed(), 'console')}/ text/html; charset=utf-8 true`)
  })

  it('loads the native backend from import', () => {
    expect(ok(esm(`import { loadBackend } from 's3-sse'; console.log(loadBackend().name)`)).trim()).toBe('native')
  })

  it('loads the native backend from require', () => {
    expect(ok(cjs(`const { loadBackend } = require('s3-sse'); console.log(loadBackend().name)`)).trim()).toBe('native')
  })

  it('seals the same bytes from import and require', () => {
    const code = (load: string) => `${load}; const b = loadBackend(); const out = Buffer.alloc(27); b.seal(Buffer.alloc(32, 1), Buffer.alloc(7, 2), 0, true, Buffer.from('s3-sse pack'), out); console.log(out.toString('hex'))`
    const a = ok(esm(code(`import { loadBackend } from 's3-sse'`))).trim()
    const b = ok(cjs(code(`const { loadBackend } = require('s3-sse')`))).trim()
    expect(a).toMatch(/^[0-9a-f]{54}$/)
    expect(b).toBe(a)
  })

  it('gives TypeScript types to ESM and CommonJS consumers', () => {
    writeFileSync(join(project, 'esm.mts'), `import { loadBackend, PACKAGE_SIZE, S3sseError } from 's3-sse'\nconst n: number = PACKAGE_SIZE\nconst name: 'native' | 'node' | 'wasm' | 'js' = loadBackend().name\nconst e: S3sseError = new S3sseError('S3SSE_BAD_ARGUMENT', 'x')\nexport { n, name, e }\n`)
    writeFileSync(join(project, 'cjs.cts'), `import s3sse = require('s3-sse')\nconst n: number = s3sse.TAG_SIZE\nconst name: string = s3sse.loadBackend().name\nexport { n, name }\n`)
    const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc')
    const r = node([tsc, '--noEmit', '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', '--types', 'node', '--typeRoots', join(root, 'node_modules', '@types'), 'esm.mts', 'cjs.cts'])
    expect(r.stdout + r.stderr).toBe('')
    expect(r.status).toBe(0)
  })

  describe('with the prebuild removed', () => {
    beforeAll(() => {
      rmSync(join(installed(), 'prebuilds'), { recursive: true, force: true })
    })

    it('falls back to the next backend, from import and require', () => {
      expect(ok(esm(`import { loadBackend } from 's3-sse'; console.log(loadBackend().name)`)).trim()).toBe('node')
      expect(ok(cjs(`console.log(require('s3-sse').loadBackend().name)`)).trim()).toBe('node')
    })

    it('prints why, once and in one line, when S3SSE_DEBUG asks', () => {
      const r = esm(`import { loadBackend } from 's3-sse'; loadBackend(); loadBackend(); loadBackend('node')`, { S3SSE_DEBUG: '1' })
      expect(r.status).toBe(0)
      const lines = r.stderr.trim().split('\n')
      expect(lines).toHaveLength(1)
      expect(lines[0]).toMatch(/^s3-sse: crypto backend node; native unavailable: .*No native build was found/)
    })

    it('says nothing without S3SSE_DEBUG', () => {
      const r = esm(`import { loadBackend } from 's3-sse'; loadBackend()`)
      expect(r.status).toBe(0)
      expect(r.stderr).toBe('')
    })

    it('prints the reason when the CLI asks (s3-sse backend)', () => {
      const r = node([join(project, 'node_modules', '.bin', 's3-sse'), 'backend'])
      expect(r.status).toBe(0)
      expect(r.stdout.trim().split('\n')).toHaveLength(1)
      expect(r.stdout).toMatch(/crypto backend node; native unavailable: /)
    })

    it('forcing a backend still works', () => {
      expect(ok(esm(`import { loadBackend } from 's3-sse'; console.log(loadBackend().name)`, { S3SSE_BACKEND: 'js' })).trim()).toBe('js')
    })

    it('the install step without a compiler warns and leaves a working package', () => {
      const r = run(process.execPath, [join(installed(), 'scripts', 'install-native.mjs')], { cwd: installed() })
      expect(r.status).toBe(0)
      expect(r.stderr + r.stdout).toMatch(/did not build; the slower node\/wasm\/js backends will be used/)
      expect(ok(esm(`import { loadBackend } from 's3-sse'; console.log(loadBackend().name)`)).trim()).toBe('node')
    })
  })
})

