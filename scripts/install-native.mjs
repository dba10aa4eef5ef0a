// npm install step for the native addon. A matching prebuild (prebuilds/<platform>-<arch>)
// means nothing is compiled; otherwise node-gyp builds it. A failed build never fails the
// install: the loader falls back to the node, wasm or js backend and says why.
import { spawnSync } from 'node:child_process'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const require = createRequire(import.meta.url)

function prebuildLoads() {
  try {
    const nodeGypBuild = require('node-gyp-build')
    require(nodeGypBuild.resolve(root))
    return true
  } catch {
    return false
  }
}

if (process.env.S3SSE_SKIP_NATIVE_BUILD) {
  console.log('s3-sse: S3SSE_SKIP_NATIVE_BUILD is set; not building the native addon')
} else if (prebuildLoads()) {
  console.log('s3-sse: native addon found (prebuild or earlier build); nothing to compile')
} else {
  let gyp
  try {
    gyp = require.resolve('node-gyp/bin/node-gyp.js')
  } catch {
    gyp = null
  }
  const cmd = gyp ? process.execPath : 'node-gyp'
  const args = gyp ? [gyp, 'rebuild'] : ['rebuild']
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env: process.env })
  if (r.status !== 0) {
    console.warn('s3-sse: the native addon did not build; the slower node/wasm/js backends will be used ' +
      '(run with S3SSE_DEBUG=1 to see why the native backend is unavailable)')
  }
}
