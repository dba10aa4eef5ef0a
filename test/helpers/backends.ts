import { ipsecMbStatus } from '../../src/crypto/backends/native.js'
import { loadBackend, loadNativeBackend, type Backend, type BackendName } from '../../src/index.js'

/**
 * Every backend the crypto suite runs against. All of them must load on CI: a backend that
 * fails to load fails the suite rather than being skipped.
 */
export const TEST_BACKENDS: BackendName[] = ['native', 'node', 'wasm', 'js']

/**
 * Whether the ipsec-mb engine must load. In CI (S3SSE_REQUIRE_SERVICES=1, set by .ci/run,
 * which installs libipsec-mb1) it must; elsewhere a machine without the library runs the
 * suite on the EVP engine alone and says so once.
 */
const requireIpsecMb = process.env.S3SSE_REQUIRE_SERVICES === '1' || !!process.env.CI

let skipNoted = false

/** The native engines to test here: both, or EVP alone (with the reason) where ipsec-mb is absent. */
export function testNativeEngines(): Array<'ipsec-mb' | 'evp'> {
  const imb = ipsecMbStatus()
  if (imb.available || requireIpsecMb) return ['ipsec-mb', 'evp']
  if (!skipNoted) {
    skipNoted = true
    process.stderr.write(`test: the ipsec-mb engine is not tested here (${imb.reason}); install libipsec-mb1 to test it\n`)
  }
  return ['evp']
}

/** [label, backend] for every backend, the native one once per engine ("native/ipsec-mb", "native/evp"). */
export function testBackends(): Array<[string, Backend]> {
  const out: Array<[string, Backend]> = []
  for (const n of TEST_BACKENDS) {
    if (n === 'native') {
      for (const e of testNativeEngines()) out.push([`native/${e}`, loadNativeBackend(e)])
    } else {
      out.push([n, loadBackend(n)])
    }
  }
  return out
}

/** Independent oracle: node:crypto, one createCipheriv per package, nonce built here. */
export { referenceSeal } from './reference.js'
