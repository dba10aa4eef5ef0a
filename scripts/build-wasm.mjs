#!/usr/bin/env node
// Builds wasm/s3sse.wasm from the Rust crate in wasm/ (npm run build:wasm), reproducibly:
// Debian's rustc 1.63 for wasm32-unknown-unknown with simd128, no cargo (no registry, no
// metadata hashes), source paths remapped so the checkout's location never enters the
// binary, then wasm-opt to strip names and producer data (no optimisation passes).
//
//   node scripts/build-wasm.mjs           rebuild wasm/s3sse.wasm
//   node scripts/build-wasm.mjs --check   rebuild in a temp dir; exit 1 if the bytes differ
//                                         from the committed module (CI)
//
// Needs: apt-get install rustc libstd-rust-dev-wasm32 lld binaryen. RUSTC and WASM_OPT
// override the tools (default /usr/bin/rustc, which has the wasm32 standard library; another
// rustc earlier on PATH may not).
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const crate = join(root, 'wasm')
const target = join(crate, 's3sse.wasm')
const rustc = process.env.RUSTC ?? '/usr/bin/rustc'
const wasmOpt = process.env.WASM_OPT ?? 'wasm-opt'
const check = process.argv.includes('--check')

function run(cmd, args, opts = {}) {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...opts })
  } catch (e) {
    const why = e.code === 'ENOENT' ? `${cmd} not found` : (e.stderr || e.message)
    console.error(`build-wasm: ${cmd} failed: ${why}\n(needs: apt-get install -y rustc libstd-rust-dev-wasm32 lld binaryen)`)
    process.exit(2)
  }
}

const sysroot = run(rustc, ['--print', 'sysroot']).trim()
if (!existsSync(join(sysroot, 'lib', 'rustlib', 'wasm32-unknown-unknown'))) {
  console.error(`build-wasm: ${rustc} has no wasm32-unknown-unknown standard library (apt-get install libstd-rust-dev-wasm32, or set RUSTC)`)
  process.exit(2)
}

const tmp = mkdtempSync(join(tmpdir(), 's3sse-wasm-'))
try {
  const raw = join(tmp, 'raw.wasm')
  const built = join(tmp, 's3sse.wasm')
  run(rustc, [
    '--edition', '2021', '--crate-type', 'cdylib', '--crate-name', 's3sse',
    '--target', 'wasm32-unknown-unknown',
    '-C', 'opt-level=3', '-C', 'lto', '-C', 'codegen-units=1', '-C', 'panic=abort',
    '-C', 'target-feature=+simd128',
    // LLVM's vectorisers turn the 64-bit multiplies of GHASH into i64x2.mul, which V8 on
    // x64 emulates with three pmuludq each; the SIMD in this crate is written by hand.
    '-C', 'no-vectorize-slp', '-C', 'no-vectorize-loops',
    '-C', 'debuginfo=0', '-C', 'strip=debuginfo',
    `--remap-path-prefix=${crate}=s3sse`,
    '-o', raw, join(crate, 'src', 'lib.rs'),
  ], { cwd: crate })
  // wasm-opt strips only: its -O passes made the module ~15% slower under V8 (measured:
  // 1 MiB seal 7.6 ms without, 8.7 ms with -O2/-O3/-Os), LLVM has already optimised it.
  run(wasmOpt, ['--enable-simd', '--strip-debug', '--strip-producers', raw, '-o', built])

  const bytes = readFileSync(built)
  const hash = createHash('sha256').update(bytes).digest('hex')
  if (bytes.includes(Buffer.from(root))) {
    console.error(`build-wasm: the module contains the path ${root}; --remap-path-prefix missed something`)
    process.exit(1)
  }
  if (check) {
    const committed = existsSync(target) ? readFileSync(target) : Buffer.alloc(0)
    if (!committed.equals(bytes)) {
      const was = createHash('sha256').update(committed).digest('hex')
      console.error(`build-wasm: wasm/s3sse.wasm (${committed.length} bytes, sha256 ${was}) differs from a fresh build ` +
        `(${bytes.length} bytes, sha256 ${hash}): run npm run build:wasm and commit the result`)
      process.exit(1)
    }
    console.log(`build-wasm: wasm/s3sse.wasm matches a fresh build (${bytes.length} bytes, sha256 ${hash})`)
  } else {
    copyFileSync(built, target)
    console.log(`build-wasm: wrote wasm/s3sse.wasm (${bytes.length} bytes, sha256 ${hash})`)
  }
} finally {
  rmSync(tmp, { recursive: true, force: true })
}
