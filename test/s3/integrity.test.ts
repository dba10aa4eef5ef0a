/**
 * PlaintextCheck: a plaintext object's ETag (MD5, or MD5 of part MD5s and -N) and stored
 * checksum (FULL_OBJECT, COMPOSITE) against its bytes as they stream past in pieces.
 */
import { createHash, randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { checksumOf, compositeChecksum, type ChecksumAlgorithm } from '../../src/s3/checksums.js'
import { etagIsDigest, PlaintextCheck } from '../../src/s3/integrity.js'
import { multipartEtag } from '../../src/s3/objects.js'

const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex')

function feed(check: PlaintextCheck, parts: Buffer[], step = 1000): void {
  parts.forEach((p, i) => {
    for (let o = 0; o < p.length; o += step) check.update(i, p.subarray(o, o + step))
  })
}

describe('PlaintextCheck', () => {
  it('accepts a single-part object whose MD5 and full-object checksum match, and names each that does not', async () => {
    const data = randomBytes(10_000)
    for (const alg of ['CRC32', 'CRC32C', 'CRC64NVME', 'SHA1', 'SHA256'] as ChecksumAlgorithm[]) {
      const facts = { etag: md5(data), checksum: { algorithm: alg, type: 'FULL_OBJECT' as const, value: await checksumOf(alg, data) }, parts: 1 }
      const good = new PlaintextCheck(facts)
      feed(good, [data], 333)
      expect(await good.mismatches(), alg).toEqual([])
      const bad = new PlaintextCheck(facts)
      const flipped = Buffer.from(data)
      flipped[5000] ^= 1
      feed(bad, [flipped])
      expect((await bad.mismatches()).map((m) => m.code), alg).toEqual(['S3SSE_ETAG_MISMATCH', 'S3SSE_CHECKSUM_MISMATCH'])
    }
  })

  it('checks a multipart ETag and a composite checksum part by part, empty parts included', async () => {
    const parts = [randomBytes(7000), Buffer.alloc(0), randomBytes(123)]
    const sums = await Promise.all(parts.map((p) => checksumOf('SHA256', p)))
    const facts = { etag: multipartEtag(parts.map(md5)), checksum: { algorithm: 'SHA256' as const, type: 'COMPOSITE' as const, value: await compositeChecksum('SHA256', sums) }, parts: 3 }
    const good = new PlaintextCheck(facts)
    feed(good, parts)
    expect(await good.mismatches()).toEqual([])
    // The same bytes cut into other parts do not match.
    const moved = new PlaintextCheck(facts)
    feed(moved, [parts[0].subarray(0, 6999), Buffer.concat([parts[0].subarray(6999)]), parts[2]])
    expect((await moved.mismatches()).map((m) => m.code)).toEqual(['S3SSE_ETAG_MISMATCH', 'S3SSE_CHECKSUM_MISMATCH'])
  })

  it('checks an empty object, and leaves an ETag that is not a digest alone', async () => {
    const empty = new PlaintextCheck({ etag: md5(Buffer.alloc(0)), parts: 1 })
    expect(await empty.mismatches()).toEqual([])
    expect(etagIsDigest('0123456789abcdef0123456789abcdef-2', 2)).toBe(true)
    expect(etagIsDigest('0123456789abcdef0123456789abcdef-2', 3)).toBe(false)
    expect(etagIsDigest('0123456789abcdef0123456789abcdef', 2)).toBe(false)
    expect(etagIsDigest('opaque', 1)).toBe(false)
    const opaque = new PlaintextCheck({ etag: 'not-an-md5', parts: 1 })
    feed(opaque, [randomBytes(10)])
    expect(await opaque.mismatches()).toEqual([])
  })
})
