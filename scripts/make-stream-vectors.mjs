// Writes test/vectors/stream-v1.json with the `js` (reference) backend. The inputs are
// fixed patterns, so a rerun gives the same file; every backend is checked against it.
// Usage: npm run build && node scripts/make-stream-vectors.mjs
import { writeFileSync } from 'node:fs'
import { deriveStreamKey, loadBackend, sealStream } from '../dist/index.js'

const hex = (b) => Buffer.from(b).toString('hex')
const pattern = (n, seed) => {
  const b = Buffer.alloc(n)
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed * 7 + (i >> 8)) & 0xff
  return b
}
const fixed = (n, seed) => Buffer.from(Array.from({ length: n }, (_, i) => (seed + i * 13) & 0xff))

const cases = [
  { name: 'empty stream', size: 0, packageSize: 65536, partNumber: 1 },
  { name: 'one byte', size: 1, packageSize: 65536, partNumber: 1 },
  { name: 'exactly one package (small)', size: 64, packageSize: 64, partNumber: 2 },
  { name: 'one package plus one byte (small)', size: 65, packageSize: 64, partNumber: 3 },
  { name: 'several packages, short last (small)', size: 64 * 5 + 17, packageSize: 64, partNumber: 10000 },
  { name: 'several whole packages (small)', size: 16 * 4, packageSize: 16, partNumber: 0 },
  { name: 'exactly one package (default size)', size: 65536, packageSize: 65536, partNumber: 1 },
  { name: 'one package plus one byte (default size)', size: 65537, packageSize: 65536, partNumber: 7 },
]

const backend = loadBackend('js')
const out = []
for (const [i, c] of cases.entries()) {
  const dataKey = fixed(32, 0x10 + i)
  const salt = fixed(32, 0x80 + i)
  const plaintext = pattern(c.size, i)
  const sk = deriveStreamKey(dataKey, salt, c.partNumber)
  const chunks = []
  for await (const chunk of sealStream([plaintext], sk, { backend, packageSize: c.packageSize })) chunks.push(chunk)
  out.push({
    name: c.name,
    dataKey: hex(dataKey),
    salt: hex(salt),
    partNumber: c.partNumber,
    packageSize: c.packageSize,
    plaintext: hex(plaintext),
    streamKey: hex(sk.key),
    noncePrefix: hex(sk.noncePrefix),
    ciphertext: hex(Buffer.concat(chunks)),
  })
}
writeFileSync(new URL('../test/vectors/stream-v1.json', import.meta.url), JSON.stringify(out, null, 1) + '\n')
console.log(`wrote ${out.length} vectors`)
