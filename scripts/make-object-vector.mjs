// Writes test/vectors/object-v1.json: a two-part encrypted object with everything needed to
// check an implementation of docs/FORMAT.md sections 6 and 7 (master key, wrapped data key,
// stream keys, stored bytes, manifest and its MAC), plus a bucket-key derivation. Inputs are
// fixed patterns, so a rerun gives the same file; the stored bytes use the `js` backend.
// Usage: npm run compile && node scripts/make-object-vector.mjs
import { writeFileSync } from 'node:fs'
import { canonicalContext, deriveStreamKey, encodeManifest, loadBackend, sealStream, sealedStreamSize, wrapDataKey } from '../dist/index.js'
import { bucketObjectKey, manifestMac, manifestMacKey } from '../dist/object/manifest.js'

const hex = (b) => Buffer.from(b).toString('hex')
const fixed = (n, seed) => Buffer.from(Array.from({ length: n }, (_, i) => (seed + i * 13) & 0xff))

const packageSize = 32
const object = { bucket: 'vector-bucket', key: 'reports/2024.txt' }
const context = { ...object, department: 'qa' }
const masterKey = fixed(32, 0x01)
const keyId = '0b9f4e0c-6a52-4d0e-9a3e-5f1c2d7b8a90'
const keyVersion = 1
const wrapNonce = fixed(32, 0x40)
const dataKey = fixed(32, 0x20)
const parts = [
  { number: 1, salt: fixed(32, 0x60), plaintext: Buffer.from('The first part spans three 32-byte packages; the last of them is short.', 'ascii') },
  { number: 2, salt: fixed(32, 0x70), plaintext: Buffer.from('Part two fills exactly 1 package', 'ascii') },
]

if (Math.ceil(parts[0].plaintext.length / packageSize) !== 3 || parts[1].plaintext.length !== packageSize) throw new Error('part sizes')

const backend = loadBackend('js')
const wrappedKey = wrapDataKey(masterKey, keyId, keyVersion, dataKey, context, wrapNonce)
const outParts = []
for (const p of parts) {
  const sk = deriveStreamKey(dataKey, p.salt, p.number)
  const chunks = []
  for await (const c of sealStream([p.plaintext], sk, { backend, packageSize })) chunks.push(c)
  const stored = Buffer.concat(chunks)
  if (stored.length !== sealedStreamSize(p.plaintext.length, packageSize)) throw new Error('stored size')
  outParts.push({
    number: p.number,
    size: p.plaintext.length,
    salt: hex(p.salt),
    streamKey: hex(sk.key),
    noncePrefix: hex(sk.noncePrefix),
    plaintext: hex(p.plaintext),
    stored: hex(stored),
  })
}
const manifest = {
  version: 1,
  packageSize,
  size: parts.reduce((a, p) => a + p.plaintext.length, 0),
  parts: parts.map((p) => ({ number: p.number, size: p.plaintext.length, storedSize: sealedStreamSize(p.plaintext.length, packageSize), salt: p.salt })),
  encryption: { algorithm: 'aws:kms', keyId, keyVersion, wrappedKey, context },
}
const macKey = manifestMacKey(dataKey)
manifest.mac = manifestMac(macKey, object, manifest)
const manifestBytes = encodeManifest(manifest)

const bucketKey = fixed(32, 0x90)
const keyNonce = fixed(32, 0xa0)

const vector = {
  description: 'A two-part SSE-KMS object (docs/FORMAT.md sections 2-7). Hex strings are bytes; contexts are UTF-8.',
  object,
  packageSize,
  kms: {
    masterKey: hex(masterKey),
    keyId,
    keyVersion,
    context,
    canonicalContext: hex(canonicalContext(context)),
    wrapNonce: hex(wrapNonce),
    wrappedKey: hex(wrappedKey),
  },
  dataKey: hex(dataKey),
  parts: outParts,
  macKey: hex(macKey),
  manifest: hex(manifestBytes),
  plaintext: hex(Buffer.concat(parts.map((p) => p.plaintext))),
  bucketKey: {
    description: 'A bucket-key object derives its data key from the bucket key and its keyNonce (section 6.4).',
    bucketKey: hex(bucketKey),
    keyNonce: hex(keyNonce),
    dataKey: hex(bucketObjectKey(bucketKey, keyNonce)),
  },
}
writeFileSync(new URL('../test/vectors/object-v1.json', import.meta.url), JSON.stringify(vector, null, 1) + '\n')
console.log('wrote test/vectors/object-v1.json')
