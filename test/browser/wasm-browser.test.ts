// The WebAssembly backend in a real browser: Debian's Chromium, driven by playwright-core,
// loads wasm/s3sse.wasm and the same glue (src/crypto/backends/wasm-core.ts, transpiled as
// served) from a page on 127.0.0.1 and reproduces test/vectors/stream-v1.json. Proof that
// the fallback runs wherever JavaScript runs, not only under Node.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type BrowserContext } from 'playwright-core'
import ts from 'typescript'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const CHROMIUM = '/usr/bin/chromium'
const root = new URL('../../', import.meta.url)

const page = `<!doctype html>
<meta charset="utf-8">
<title>s3-sse wasm</title>
<script type="module">
import { instantiateWasmBackend } from '/src/crypto/backends/wasm-core.js'
const hex = (s) => new Uint8Array(s.match(/../g)?.map((b) => parseInt(b, 16)) ?? [])
const toHex = (u) => Array.from(u, (b) => b.toString(16).padStart(2, '0')).join('')
window.run = async () => {
  const module = await WebAssembly.compileStreaming(fetch('/wasm/s3sse.wasm'))
  const backend = await instantiateWasmBackend(module)
  const vectors = await (await fetch('/vectors/stream-v1.json')).json()
  const results = []
  for (const v of vectors) {
    const pt = hex(v.plaintext)
    const key = hex(v.streamKey)
    const prefix = hex(v.noncePrefix)
    const sealed = new Uint8Array(v.ciphertext.length / 2)
    const n = backend.seal(key, prefix, 0, true, pt, sealed, v.packageSize)
    const opened = new Uint8Array(pt.length)
    const m = backend.open(key, prefix, 0, true, sealed, opened, v.packageSize)
    // A flipped bit in the last byte (a tag byte) must fail with the package's number.
    const bad = sealed.slice()
    bad[bad.length - 1] ^= 1
    let code = null
    let packageNumber = null
    try {
      backend.open(key, prefix, 0, true, bad, new Uint8Array(pt.length), v.packageSize)
    } catch (e) {
      code = e.code
      packageNumber = e.packageNumber
    }
    results.push({ name: v.name, sealed: toHex(sealed.subarray(0, n)), opened: toHex(opened.subarray(0, m)), code, packageNumber })
  }
  return { userAgent: navigator.userAgent, hasProcess: typeof process !== 'undefined', results }
}
</script>`

/** Serves the page, the module, the vectors, and src/**.ts transpiled to JS on request. */
function serve(): Promise<Server> {
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname
    const send = (type: string, body: string | Buffer) => {
      res.writeHead(200, { 'content-type': type })
      res.end(body)
    }
    if (path === '/') return send('text/html', page)
    if (path === '/wasm/s3sse.wasm') return send('application/wasm', readFileSync(new URL('wasm/s3sse.wasm', root)))
    if (path === '/vectors/stream-v1.json') return send('application/json', readFileSync(new URL('test/vectors/stream-v1.json', root)))
    const m = /^\/src\/([a-z0-9/-]+)\.js$/.exec(path)
    if (m && !m[1].includes('..')) {
      const file = new URL(`src/${m[1]}.ts`, root)
      if (existsSync(file)) {
        const out = ts.transpileModule(readFileSync(file, 'utf8'), {
          compilerOptions: { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022 },
        })
        return send('text/javascript', out.outputText)
      }
    }
    res.writeHead(404).end()
  })
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)))
}

interface Vector { name: string; packageSize: number; plaintext: string; ciphertext: string }
const vectors = JSON.parse(readFileSync(new URL('test/vectors/stream-v1.json', root), 'utf8')) as Vector[]

describe('wasm backend in Chromium', () => {
  let server: Server
  let browser: BrowserContext
  let profile: string

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (see .ci/run)`)
    server = await serve()
    profile = mkdtempSync(join(tmpdir(), 's3sse-chromium-'))
    // A fresh profile directory per run (playwright passes it as --user-data-dir).
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    })
  })

  afterAll(async () => {
    await browser?.close()
    server?.close()
    if (profile) rmSync(profile, { recursive: true, force: true })
  })

  it('reproduces every stream-v1 vector, round-trips it, and refuses a flipped tag bit', async () => {
    const tab = await browser.newPage()
    const errors: string[] = []
    tab.on('pageerror', (e) => errors.push(e.message))
    await tab.goto(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`)
    await tab.waitForFunction(() => typeof (window as unknown as { run?: unknown }).run === 'function')
    const got = await tab.evaluate(() => (window as unknown as { run: () => Promise<{ userAgent: string; hasProcess: boolean; results: Array<{ name: string; sealed: string; opened: string; code: string | null; packageNumber: number | null }> }> }).run())
    expect(errors).toEqual([])
    expect(got.userAgent).toMatch(/Chrome\//)
    // The glue ran without Node: no `process` in the page.
    expect(got.hasProcess).toBe(false)
    expect(got.results.map((r) => r.name)).toEqual(vectors.map((v) => v.name))
    for (const [i, v] of vectors.entries()) {
      const r = got.results[i]
      expect(r.sealed, v.name).toBe(v.ciphertext)
      expect(r.opened, v.name).toBe(v.plaintext)
      expect(r.code, v.name).toBe('S3SSE_AUTH_FAILED')
      // The tag flipped is the last package's.
      const last = Math.max(1, Math.ceil(v.plaintext.length / 2 / v.packageSize)) - 1
      expect(r.packageNumber, v.name).toBe(last)
    }
  })
})
