import { loadBackend, type Backend, type BackendName } from '../../src/index.js'

/**
 * Every backend the crypto suite runs against. All of them must load on CI: a backend that
 * fails to load fails the suite rather than being skipped.
 */
export const TEST_BACKENDS: BackendName[] = ['native', 'node', 'wasm', 'js']

export function testBackends(): Array<[BackendName, Backend]> {
  return TEST_BACKENDS.map((n) => [n, loadBackend(n)])
}

/** Independent oracle: node:crypto, one createCipheriv per package, nonce built here. */
export { referenceSeal } from './reference.js'
