import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import https from 'node:https'
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

  it('ships the web console', () => {
    for (const f of ['index.html', 'app.js', 'console.css', 'favicon.svg']) {
      expect(existsSync(join(installed(), 'console', f)), f).toBe(true)
    }
    expect(existsSync(join(installed(), 'docs', 'CONSOLE.md'))).toBe(true)
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

  it('ships wasm/s3sse.wasm: the wasm backend loads from it and seals the same bytes, also through s3-sse/wasm (the Node-free entry)', () => {
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

  it('gives TypeScript types to ESM and CommonJS consumers', () => {
    writeFileSync(join(project, 'esm.mts'), `import { loadBackend, PACKAGE_SIZE, S3sseError } from 's3-sse'\nconst n: number = PACKAGE_SIZE\nconst name: 'native' | 'node' | 'wasm' | 'js' = loadBackend().name\nconst e: S3sseError = new S3sseError('S3SSE_BAD_ARGUMENT', 'x')\nexport { n, name, e }\n`)
    writeFileSync(join(project, 'cjs.cts'), `import s3sse = require('s3-sse')\nconst n: number = s3sse.TAG_SIZE\nconst name: string = s3sse.loadBackend().name\nexport { n, name }\n`)
    const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc')
    const r = node([tsc, '--noEmit', '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', '--types', 'node', '--typeRoots', join(root, 'node_modules', '@types'), 'esm.mts', 'cjs.cts'])
    expect(r.stdout + r.stderr).toBe('')
    expect(r.status).toBe(0)
  })

  it('s3-sse serve from the installed package answers a PutObject and a GetObject', async () => {
    // better-sqlite3's own install step downloads a prebuilt binary (prebuild-install); this
    // sandbox cannot reach that download, so the binary this repo built stands in for it.
    const sqliteBuild = join(project, 'node_modules', 'better-sqlite3', 'build', 'Release')
    mkdirSync(sqliteBuild, { recursive: true })
    copyFileSync(join(root, 'node_modules', 'better-sqlite3', 'build', 'Release', 'better_sqlite3.node'), join(sqliteBuild, 'better_sqlite3.node'))
    const dataDir = join(work, 'data')
    const proc = spawn(process.execPath, [join(project, 'node_modules', '.bin', 's3-sse'), 'serve', '--data-dir', dataDir, '--https-port', 'auto', '--http-port', '0'], {
      cwd: project,
      env: { HOME: process.env.HOME, PATH: noCompilerPath, S3SSE_ACCESS_KEY: 'PACKTESTACCESSKEY001', S3SSE_SECRET_KEY: 'pack-test-secret-0123456789abcdefgh' },
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
