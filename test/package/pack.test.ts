import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process'
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import https from 'node:https'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { nodeRuntime } from './runtimes.js'

// What a storage operator gets from `npm install s3-sse` on a machine without a compiler:
// the package is packed, installed into a fresh project with --ignore-scripts and a PATH
// that has node and npm but no compiler, and must load its prebuilt addon from there — on
// the Node that runs the tests and on Node 22 and 24 (the official runtimes from the npm
// registry, test/package/runtimes.ts), each in a copy of the project of its own.

const root = fileURLToPath(new URL('../../', import.meta.url))
const prebuild = join(root, 'prebuilds', `${process.platform}-${process.arch}`, 's3-sse.node')

let work: string
let base: string
let noCompilerPath: string

function which(cmd: string): string {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' })
  return r.stdout.trim()
}

function ok(r: SpawnSyncReturns<string>): string {
  if (r.status !== 0) throw new Error(`exit ${r.status}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`)
  return r.stdout
}

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

  base = join(work, 'consumer')
  mkdirSync(base)
  writeFileSync(join(base, 'package.json'), JSON.stringify({ name: 'consumer', private: true, version: '1.0.0' }))
  ok(spawnSync(which('npm'), ['install', '--ignore-scripts', '--no-audit', '--no-fund', tarball], {
    cwd: base, encoding: 'utf8', env: { HOME: process.env.HOME, npm_config_nodedir: '/usr', PATH: noCompilerPath }, timeout: 240_000,
  }))
}, 300_000)

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true })
})

/** One Node runtime with its own copy of the consumer project. */
interface Target {
  project: string
  path: string
  node: string
  version: string
}

/** The runtimes: the one running the tests (major 0 here), then Node 22 and 24. */
const RUNTIMES: Array<[string, number]> = [[`the test runner's Node (${process.version})`, 0], ['Node 22', 22], ['Node 24', 24]]

describe.each(RUNTIMES)('the packed package on %s, installed without scripts or a compiler', (_label, major) => {
  let t: Target | undefined
  let skipReason: string | undefined

  beforeAll(() => {
    let nodeBin = process.execPath
    let sqliteBinding = join(root, 'node_modules', 'better-sqlite3', 'build', 'Release', 'better_sqlite3.node')
    let version = process.version
    if (major !== 0) {
      const r = nodeRuntime(major)
      if (typeof r === 'string') {
        skipReason = r
        process.stderr.write(`test/package: skipping Node ${major}: ${r}\n`)
        return
      }
      nodeBin = r.node
      sqliteBinding = r.sqliteBinding
      version = r.version
    }
    const project = join(work, `consumer-${major || 'here'}`)
    cpSync(base, project, { recursive: true, verbatimSymlinks: true })
    // better-sqlite3's own install step downloads a prebuilt binary (prebuild-install); this
    // sandbox cannot reach that download, so a binary built for this runtime stands in for it.
    const sqliteBuild = join(project, 'node_modules', 'better-sqlite3', 'build', 'Release')
    mkdirSync(sqliteBuild, { recursive: true })
    copyFileSync(sqliteBinding, join(sqliteBuild, 'better_sqlite3.node'))
    const bin = join(work, `bin-${major || 'here'}`)
    mkdirSync(bin)
    symlinkSync(nodeBin, join(bin, 'node'))
    symlinkSync(which('npm'), join(bin, 'npm'))
    t = { project, path: bin, node: nodeBin, version }
    expect(ok(run(nodeBin, ['--version'])).trim()).toBe(version)
  }, 20 * 60_000)

  function target(ctx: { skip: (note?: string) => void }): Target {
    if (skipReason) ctx.skip(skipReason)
    return t!
  }

  function run(cmd: string, args: string[], opts: { cwd?: string; env?: Record<string, string | undefined> } = {}): SpawnSyncReturns<string> {
    return spawnSync(cmd, args, {
      cwd: opts.cwd ?? t!.project,
      encoding: 'utf8',
      env: { HOME: process.env.HOME, npm_config_nodedir: '/usr', PATH: t!.path, ...opts.env },
      timeout: 240_000,
    })
  }
  const node = (args: string[], env: Record<string, string | undefined> = {}) => run(t!.node, args, { env })
  const esm = (code: string, env: Record<string, string | undefined> = {}) => node(['--input-type=module', '-e', code], env)
  const cjs = (code: string, env: Record<string, string | undefined> = {}) => node(['-e', code], env)
  const installed = () => join(t!.project, 'node_modules', 's3-sse')

  it('ships the prebuild, the types and the docs, and compiled nothing', (ctx) => {
    target(ctx)
    expect(existsSync(join(installed(), 'prebuilds', `${process.platform}-${process.arch}`, 's3-sse.node'))).toBe(true)
    expect(existsSync(join(installed(), 'dist', 'index.d.ts'))).toBe(true)
    expect(existsSync(join(installed(), 'docs', 'FORMAT.md'))).toBe(true)
    expect(existsSync(join(installed(), 'LICENSE'))).toBe(true)
    expect(existsSync(join(installed(), 'build'))).toBe(false)
    // Nothing of the test suite or the sources' tooling is shipped.
    expect(existsSync(join(installed(), 'test'))).toBe(false)
    expect(readdirSync(installed()).sort()).not.toContain('src')
  })

  it('ships the web console', (ctx) => {
    target(ctx)
    for (const f of ['index.html', 'app.js', 'console.css', 'favicon.svg']) {
      expect(existsSync(join(installed(), 'console', f)), f).toBe(true)
    }
    expect(existsSync(join(installed(), 'docs', 'CONSOLE.md'))).toBe(true)
  })

  it('loads the native backend from import', (ctx) => {
    target(ctx)
    expect(ok(esm(`import { loadBackend } from 's3-sse'; console.log(loadBackend().name, process.version)`)).trim()).toBe(`native ${t!.version}`)
  })

  it('the prebuild links no ipsec-mb: without the library it loads on the EVP engine and says why, with it on ipsec-mb', (ctx) => {
    target(ctx)
    const readelf = which('readelf')
    if (readelf) {
      const needed = ok(spawnSync(readelf, ['-d', join(installed(), 'prebuilds', `${process.platform}-${process.arch}`, 's3-sse.node')], { encoding: 'utf8' }))
      expect(needed).toMatch(/NEEDED/)
      expect(needed).not.toMatch(/IPSec|ipsec/)
    }
    const report = `import { loadBackend, describeBackendReport } from 's3-sse'; const b = loadBackend(); console.log(b.engine); console.log(describeBackendReport())`
    const without = ok(esm(report, { S3SSE_IPSEC_MB_PATH: join(work, 'no-such-lib', 'libIPSec_MB.so.1') })).trim().split('\n')
    expect(without[0]).toBe('evp')
    expect(without[1]).toMatch(/with engine evp \(OpenSSL 3\.[^)]*\); ipsec-mb unavailable: dlopen failed: /)
    const withLib = ok(esm(report)).trim().split('\n')
    const hasLib = existsSync('/usr/lib/x86_64-linux-gnu/libIPSec_MB.so.1') || existsSync('/usr/lib/libIPSec_MB.so.1')
    expect(withLib[0]).toBe(hasLib ? 'ipsec-mb' : 'evp')
  })

  it('loads the native backend from require', (ctx) => {
    target(ctx)
    expect(ok(cjs(`const { loadBackend } = require('s3-sse'); console.log(loadBackend().name)`)).trim()).toBe('native')
  })

  it('seals the same bytes from import and require', (ctx) => {
    target(ctx)
    const code = (load: string) => `${load}; const b = loadBackend(); const out = Buffer.alloc(27); b.seal(Buffer.alloc(32, 1), Buffer.alloc(7, 2), 0, true, Buffer.from('s3-sse pack'), out); console.log(out.toString('hex'))`
    const a = ok(esm(code(`import { loadBackend } from 's3-sse'`))).trim()
    const b = ok(cjs(code(`const { loadBackend } = require('s3-sse')`))).trim()
    expect(a).toMatch(/^[0-9a-f]{54}$/)
    expect(b).toBe(a)
  })

  it('ships wasm/s3sse.wasm: the wasm backend loads from it and seals the same bytes, also through s3-sse/wasm (the Node-free entry)', (ctx) => {
    target(ctx)
    expect(existsSync(join(installed(), 'wasm', 's3sse.wasm'))).toBe(true)
    const seal = `const out = Buffer.alloc(27); b.seal(Buffer.alloc(32, 1), Buffer.alloc(7, 2), 0, true, Buffer.from('s3-sse pack'), out); console.log(b.name, out.toString('hex'))`
    const native = ok(esm(`import { loadBackend } from 's3-sse'; const b = loadBackend(); ${seal}`)).trim().split(' ')
    const wasm = ok(esm(`import { loadBackend } from 's3-sse'; const b = loadBackend(); ${seal}`, { S3SSE_BACKEND: 'wasm' })).trim().split(' ')
    expect(native[0]).toBe('native')
    expect(wasm).toEqual(['wasm', native[1]])
    const entry = ok(esm(`import { createWasmBackendSync } from 's3-sse/wasm'; import { readFileSync } from 'node:fs'; import { fileURLToPath } from 'node:url'; ` +
      `const b = createWasmBackendSync(readFileSync(fileURLToPath(import.meta.resolve('s3-sse/s3sse.wasm')))); ${seal}`)).trim().split(' ')
    expect(entry).toEqual(['wasm', native[1]])
  })

  // The types do not depend on the runtime: checked once, on the test runner's Node.
  it.runIf(major === 0)('gives TypeScript types to ESM and CommonJS consumers', (ctx) => {
    target(ctx)
    writeFileSync(join(t!.project, 'esm.mts'), `import { loadBackend, PACKAGE_SIZE, S3sseError } from 's3-sse'\nconst n: number = PACKAGE_SIZE\nconst name: 'native' | 'node' | 'wasm' | 'js' = loadBackend().name\nconst e: S3sseError = new S3sseError('S3SSE_BAD_ARGUMENT', 'x')\nexport { n, name, e }\n`)
    writeFileSync(join(t!.project, 'cjs.cts'), `import s3sse = require('s3-sse')\nconst n: number = s3sse.TAG_SIZE\nconst name: string = s3sse.loadBackend().name\nexport { n, name }\n`)
    const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc')
    const r = node([tsc, '--noEmit', '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', '--types', 'node', '--typeRoots', join(root, 'node_modules', '@types'), 'esm.mts', 'cjs.cts'])
    expect(r.stdout + r.stderr).toBe('')
    expect(r.status).toBe(0)
  })

  it('s3-sse serve from the installed package answers a PutObject and a GetObject', async (ctx) => {
    target(ctx)
    const dataDir = join(work, `data-${major || 'here'}`)
    const proc = spawn(t!.node, [join(t!.project, 'node_modules', '.bin', 's3-sse'), 'serve', '--data-dir', dataDir, '--https-port', 'auto', '--http-port', '0'], {
      cwd: t!.project,
      env: { HOME: process.env.HOME, PATH: t!.path, S3SSE_ACCESS_KEY: 'PACKTESTACCESSKEY001', S3SSE_SECRET_KEY: 'pack-test-secret-0123456789abcdefgh' },
    })
    try {
      let out = ''
      const url = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no listening line:\n${out}`)), 30_000)
        const onData = (d: Buffer) => {
          out += d
          const m = /listening on (https:\/\/\S+)/.exec(out)
          if (m) {
            clearTimeout(timer)
            resolve(m[1])
          }
        }
        proc.stdout.on('data', onData)
        proc.stderr.on('data', onData)
        proc.on('exit', (code) => reject(new Error(`serve exited with ${code}:\n${out}`)))
      })
      process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true'
      const { S3Client, CreateBucketCommand, PutObjectCommand, GetObjectCommand } = await import('@aws-sdk/client-s3')
      const { NodeHttpHandler } = await import('@smithy/node-http-handler')
      const ca = readFileSync(join(dataDir, 'tls-cert.pem'))
      const s3 = new S3Client({
        region: 'us-east-1', endpoint: url, forcePathStyle: true, maxAttempts: 1,
        credentials: { accessKeyId: 'PACKTESTACCESSKEY001', secretAccessKey: 'pack-test-secret-0123456789abcdefgh' },
        requestHandler: new NodeHttpHandler({ httpsAgent: new https.Agent({ ca }) }),
      })
      await s3.send(new CreateBucketCommand({ Bucket: 'from-tarball' }))
      const put = await s3.send(new PutObjectCommand({ Bucket: 'from-tarball', Key: 'hello.txt', Body: 'served from the packed package' }))
      expect(put.$metadata.httpStatusCode).toBe(200)
      const got = await s3.send(new GetObjectCommand({ Bucket: 'from-tarball', Key: 'hello.txt' }))
      expect(await got.Body!.transformToString()).toBe('served from the packed package')
      s3.destroy()

      // The web console, from the installed package's console/ folder, and its login.
      const agent = new https.Agent({ ca })
      const app = await fetchText(`${url}/-/console/app.js`, agent)
      expect(app.status).toBe(200)
      expect(app.body).toBe(readFileSync(join(root, 'console', 'app.js'), 'utf8'))
      const login = await fetchText(`${url}/-/console/api/session`, agent, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-s3sse-console': '1' },
        body: JSON.stringify({ accessKey: 'PACKTESTACCESSKEY001', secretKey: 'pack-test-secret-0123456789abcdefgh' }),
      })
      expect([login.status, JSON.parse(login.body).user.name]).toEqual([200, 'root'])
      agent.destroy()
    } finally {
      proc.kill('SIGTERM')
      await new Promise((r) => (proc.exitCode !== null ? r(null) : proc.once('exit', r)))
    }
  })

  describe('with the prebuild removed', () => {
    beforeAll(() => {
      if (t) rmSync(join(installed(), 'prebuilds'), { recursive: true, force: true })
    })

    it('falls back to the next backend, from import and require', (ctx) => {
      target(ctx)
      expect(ok(esm(`import { loadBackend } from 's3-sse'; console.log(loadBackend().name)`)).trim()).toBe('node')
      expect(ok(cjs(`console.log(require('s3-sse').loadBackend().name)`)).trim()).toBe('node')
    })

    it('prints why, once and in one line, when S3SSE_DEBUG asks', (ctx) => {
      target(ctx)
      const r = esm(`import { loadBackend } from 's3-sse'; loadBackend(); loadBackend(); loadBackend('node')`, { S3SSE_DEBUG: '1' })
      expect(r.status).toBe(0)
      const lines = r.stderr.trim().split('\n')
      expect(lines).toHaveLength(1)
      expect(lines[0]).toMatch(/^s3-sse: crypto backend node; native unavailable: .*No native build was found/)
    })

    it('says nothing without S3SSE_DEBUG', (ctx) => {
      target(ctx)
      const r = esm(`import { loadBackend } from 's3-sse'; loadBackend()`)
      expect(r.status).toBe(0)
      expect(r.stderr).toBe('')
    })

    it('prints the reason when the CLI asks (s3-sse backend)', (ctx) => {
      target(ctx)
      const r = node([join(t!.project, 'node_modules', '.bin', 's3-sse'), 'backend'])
      expect(r.status).toBe(0)
      expect(r.stdout.trim().split('\n')).toHaveLength(1)
      expect(r.stdout).toMatch(/crypto backend node; native unavailable: /)
    })

    it('forcing a backend still works', (ctx) => {
      target(ctx)
      expect(ok(esm(`import { loadBackend } from 's3-sse'; console.log(loadBackend().name)`, { S3SSE_BACKEND: 'js' })).trim()).toBe('js')
    })

    it('the install step without a compiler warns and leaves a working package', (ctx) => {
      target(ctx)
      const r = run(t!.node, [join(installed(), 'scripts', 'install-native.mjs')], { cwd: installed() })
      expect(r.status).toBe(0)
      expect(r.stderr + r.stdout).toMatch(/did not build; the slower node\/wasm\/js backends will be used/)
      expect(ok(esm(`import { loadBackend } from 's3-sse'; console.log(loadBackend().name)`)).trim()).toBe('node')
    })
  })
})

function fetchText(url: string, agent: https.Agent, opts: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request(url, { agent, method: opts.method ?? 'GET', headers: opts.headers }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (d) => (body += d))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on('error', reject)
    req.end(opts.body)
  })
}
