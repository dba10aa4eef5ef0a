/**
 * What a plaintext object's ETag and checksum say about its bytes, checked as they stream past
 * part by part (the scrub job, and the encrypt job before it seals anything):
 *
 * - ETag: a single-part object's is the hex MD5 of its data; a multipart one's is the MD5 of
 *   its parts' binary MD5s, then `-N` (S3 API reference, "Checking object integrity"). An ETag
 *   of another shape (opaque) says nothing and is not checked.
 * - x-amz-checksum-*: FULL_OBJECT over the whole data, COMPOSITE over the parts' raw checksums
 *   then `-N` (the same rules PutObject and CompleteMultipartUpload apply when storing them).
 */
import { compositeChecksum, createDigest, type ChecksumAlgorithm, type ChecksumType, type Digest } from './checksums.js'
import { multipartEtag } from './objects.js'

export interface IntegrityMismatch {
  code: 'S3SSE_ETAG_MISMATCH' | 'S3SSE_CHECKSUM_MISMATCH'
  message: string
}

export interface PlaintextFacts {
  etag: string
  checksum?: { algorithm: ChecksumAlgorithm; type: ChecksumType; value: string }
  /** Number of parts the data is stored in (the manifest's). */
  parts: number
}

/** Whether the ETag of a plaintext object is a digest of its data that can be checked. */
export function etagIsDigest(etag: string, parts: number): boolean {
  const m = /^[0-9a-f]{32}(?:-(\d+))?$/.exec(etag)
  if (!m) return false
  return m[1] === undefined ? parts === 1 : Number(m[1]) === parts && parts >= 1
}

export class PlaintextCheck {
  private readonly checkEtag: boolean
  private readonly multipart: boolean
  private readonly partMd5s: Promise<Buffer>[] = []
  private readonly partSums: Promise<Buffer>[] = []
  private md5?: Digest
  private sum?: Digest
  private readonly whole?: Digest
  private part = -1

  constructor(private readonly facts: PlaintextFacts) {
    this.checkEtag = etagIsDigest(facts.etag, facts.parts)
    this.multipart = facts.etag.includes('-')
    if (facts.checksum?.type === 'FULL_OBJECT') this.whole = createDigest(facts.checksum.algorithm)
  }

  /** Bytes of part `index` (0-based); parts come in order, each part's bytes in order. */
  update(index: number, chunk: Uint8Array): void {
    this.enter(index)
    this.md5?.update(chunk)
    this.sum?.update(chunk)
    this.whole?.update(chunk)
  }

  private enter(index: number): void {
    while (this.part < index) {
      this.closePart()
      this.part++
      if (this.checkEtag) this.md5 = createDigest('MD5')
      if (this.facts.checksum?.type === 'COMPOSITE') this.sum = createDigest(this.facts.checksum.algorithm)
    }
  }

  private closePart(): void {
    if (this.part < 0) return
    if (this.md5) this.partMd5s.push(this.md5.digest())
    if (this.sum) this.partSums.push(this.sum.digest())
    this.md5 = this.sum = undefined
  }

  /** After the last byte: what does not match (empty when everything does). */
  async mismatches(): Promise<IntegrityMismatch[]> {
    // Parts with no bytes (an empty object or part) still count.
    this.enter(this.facts.parts - 1)
    this.closePart()
    const out: IntegrityMismatch[] = []
    if (this.checkEtag) {
      const md5s = (await Promise.all(this.partMd5s)).map((b) => b.toString('hex'))
      const got = this.multipart ? multipartEtag(md5s) : md5s[0]
      if (got !== this.facts.etag) out.push({ code: 'S3SSE_ETAG_MISMATCH', message: `the data's MD5 is not its ETag ${this.facts.etag}` })
    }
    const c = this.facts.checksum
    if (c) {
      const got = c.type === 'FULL_OBJECT'
        ? (await this.whole!.digest()).toString('base64')
        : await compositeChecksum(c.algorithm, (await Promise.all(this.partSums)).map((b) => b.toString('base64')))
      if (got !== c.value) out.push({ code: 'S3SSE_CHECKSUM_MISMATCH', message: `the data's ${c.algorithm} is not its stored ${c.type.toLowerCase()} checksum` })
    }
    return out
  }
}
