import { createCipheriv } from 'node:crypto'

/**
 * The package layout written out longhand for tests, independent of src/: package i is
 * AES-256-GCM(key, prefix ‖ uint32_be(first + i) ‖ flag, no AAD) → ciphertext ‖ tag.
 */
export function referenceSeal(key: Uint8Array, prefix: Uint8Array, first: number, final: boolean,
  plaintext: Uint8Array, packageSize: number): Buffer {
  const count = plaintext.length === 0 ? (final ? 1 : 0) : Math.ceil(plaintext.length / packageSize)
  const out: Buffer[] = []
  for (let i = 0; i < count; i++) {
    const nonce = Buffer.alloc(12)
    Buffer.from(prefix).copy(nonce, 0)
    nonce.writeUInt32BE(first + i, 7)
    nonce[11] = final && i === count - 1 ? 1 : 0
    const c = createCipheriv('aes-256-gcm', key, nonce)
    out.push(c.update(plaintext.subarray(i * packageSize, (i + 1) * packageSize)), c.final(), c.getAuthTag())
  }
  return Buffer.concat(out)
}
