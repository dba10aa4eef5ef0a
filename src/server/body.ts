/**
 * The body of a write (PutObject, UploadPart): decoded from aws-chunked when the client
 * streamed it, hashed as it passes (MD5 for the ETag, the x-amz-content-sha256 hash, the
 * requested x-amz-checksum-*), and verified once it has all been read — before anything
 * it produced is made visible.
 */
import { s3Error } from '../s3/errors.js'
import {
  checksumHeader,
  createBodyDigest,
  isChecksumAlgorithm,
  parseChecksumAlgorithm,
  validateChecksumValue,
  type BodyDigest,
  type ChecksumAlgorithm,
} from '../s3/checksums.js'
import { MAX_SINGLE_PUT } from '../s3/objects.js'
import { decodeAwsChunked } from './auth/chunked.js'
import { checkNotTimedOut, continueBody, header, type RequestContext } from './http.js'

export interface VerifiedBody {
  /** Hex MD5 of the plaintext (the ETag of a plain object or part); absent when not asked for. */
  md5?: string
  size: number
  checksum?: { algorithm: ChecksumAlgorithm; value: string }
}

/** Bytes of a body that may wait to be hashed before reading pauses for the hashing. */
const MAX_DIGEST_BACKLOG = 8 * 1024 * 1024

const NON_VALUE_CHECKSUM_HEADERS = new Set(['x-amz-checksum-algorithm', 'x-amz-checksum-type', 'x-amz-checksum-mode'])

/** The x-amz-checksum-<alg> value header of a request, if any (at most one is allowed). */
export function checksumFromHeaders(headers: Record<string, string | string[] | undefined>): { algorithm: ChecksumAlgorithm; value: string } | undefined {
  let found: { algorithm: ChecksumAlgorithm; value: string } | undefined
  for (const [name, raw] of Object.entries(headers)) {
    if (!name.startsWith('x-amz-checksum-') || NON_VALUE_CHECKSUM_HEADERS.has(name)) continue
    const alg = name.slice('x-amz-checksum-'.length).toUpperCase()
    if (!isChecksumAlgorithm(alg)) throw s3Error('InvalidRequest', `The checksum header ${name} is not supported.`)
    if (found) throw s3Error('InvalidRequest', 'Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.')
    const value = Array.isArray(raw) ? raw.join(',') : (raw ?? '')
    validateChecksumValue(alg, value)
    found = { algorithm: alg, value }
  }
  return found
}

export interface WriteBodyOptions {
  /** The algorithm the object must carry (an upload's), computed even if the client sends none. */
  requiredAlgorithm?: ChecksumAlgorithm
  /**
   * Whether the ETag needs the plaintext's MD5 (default true). An encrypted object's ETag is
   * not its MD5, so its body is hashed only when the client sent a Content-MD5 to check.
   */
  etagMd5?: boolean
}

export class WriteBody {
  readonly checksumAlgorithm?: ChecksumAlgorithm
  private readonly expectedChecksum?: string
  private readonly trailerName?: string
  private readonly contentMd5?: string
  private readonly decodedLength?: number
  private readonly md5?: BodyDigest
  private readonly sha256?: BodyDigest
  private readonly checksum?: BodyDigest
  private trailers?: Map<string, string>
  private size = 0
  private consumed = false

  constructor(private readonly ctx: RequestContext, opts: WriteBodyOptions = {}) {
    const headers = ctx.req.headers
    const md5 = header(ctx, 'content-md5')
    if (md5 !== undefined) {
      if (Buffer.from(md5, 'base64').length !== 16) throw s3Error('InvalidDigest')
      this.contentMd5 = md5
    }
    if (opts.etagMd5 !== false || this.contentMd5 !== undefined) this.md5 = createBodyDigest('MD5')
    const fromHeader = checksumFromHeaders(headers)
    const trailer = header(ctx, 'x-amz-trailer')?.trim().toLowerCase()
    let algorithm = fromHeader?.algorithm
    if (trailer !== undefined && trailer !== '') {
      if (!trailer.startsWith('x-amz-checksum-')) throw s3Error('InvalidRequest', `The trailer ${trailer} is not supported.`)
      const alg = trailer.slice('x-amz-checksum-'.length).toUpperCase()
      if (!isChecksumAlgorithm(alg)) throw s3Error('InvalidRequest', `The trailer ${trailer} is not supported.`)
      if (algorithm && algorithm !== alg) throw s3Error('InvalidRequest', 'Expecting a single x-amz-checksum- header.')
      algorithm = alg
      this.trailerName = trailer
    }
    algorithm ??= parseChecksumAlgorithm(header(ctx, 'x-amz-sdk-checksum-algorithm'))
    if (opts.requiredAlgorithm) {
      if (algorithm && algorithm !== opts.requiredAlgorithm) {
        throw s3Error(
          'InvalidRequest',
          `Checksum Type mismatch occurred, expected checksum Type: ${opts.requiredAlgorithm.toLowerCase()}, actual checksum Type: ${algorithm.toLowerCase()}`,
        )
      }
      algorithm = opts.requiredAlgorithm
    }
    this.checksumAlgorithm = algorithm
    this.expectedChecksum = fromHeader?.value
    if (algorithm) this.checksum = createBodyDigest(algorithm)
    if (ctx.payload?.kind === 'sha256') this.sha256 = createBodyDigest('SHA256')

    const decoded = header(ctx, 'x-amz-decoded-content-length')
    const length = decoded ?? header(ctx, 'content-length')
    if (length !== undefined) {
      if (!/^\d+$/.test(length)) throw s3Error('InvalidArgument', 'Content length is not a number.')
      if (Number(length) > MAX_SINGLE_PUT) throw s3Error('EntityTooLarge')
    }
    if (decoded !== undefined) this.decodedLength = Number(decoded)
  }

  private isChunked(): boolean {
    const kind = this.ctx.payload?.kind
    if (kind === 'streaming-signed' || kind === 'streaming-unsigned-trailer') return true
    const encoding = header(this.ctx, 'content-encoding') ?? ''
    return encoding.split(',').some((e) => e.trim().toLowerCase() === 'aws-chunked')
  }

  /** The decoded plaintext; read it exactly once. */
  stream(): AsyncIterable<Buffer> {
    if (this.consumed) throw new Error('request body read twice')
    this.consumed = true
    continueBody(this.ctx)
    const payload = this.ctx.payload
    // A reader that gives up early (a storage failure mid-write) must leave the request intact,
    // so that sendError can drain the rest and the keep-alive connection carries the next request.
    const raw = this.ctx.req.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>
    const source: AsyncIterable<Buffer> = this.isChunked()
      ? decodeAwsChunked(raw, {
          signer: payload?.kind === 'streaming-signed' ? payload.signer : undefined,
          signedTrailer: payload?.kind === 'streaming-signed' && payload.trailer,
          onTrailers: (t) => {
            this.trailers = t
          },
        })
      : raw
    const self = this
    const digests = [this.md5, this.sha256, this.checksum].filter((d): d is BodyDigest => d !== undefined)
    return (async function* () {
      for await (const chunk of source) {
        checkNotTimedOut(self.ctx)
        self.size += chunk.length
        for (const d of digests) d.update(chunk)
        // The hashing runs on the pool beside the reading; past a few MiB behind, reading waits
        // for it, so a slow pool never makes a body pile up in memory.
        for (const d of digests) if (d.backlog > MAX_DIGEST_BACKLOG) await d.settle()
        yield chunk
      }
    })()
  }

  /** Checks every digest the client gave against what was received. */
  async verify(): Promise<VerifiedBody> {
    checkNotTimedOut(this.ctx)
    if (this.decodedLength !== undefined && this.decodedLength !== this.size) throw s3Error('IncompleteBody')
    const md5 = await this.md5?.digest()
    if (this.contentMd5 !== undefined && md5?.toString('base64') !== this.contentMd5) throw s3Error('BadDigest')
    const payload = this.ctx.payload
    if (this.sha256 && payload?.kind === 'sha256') {
      const got = (await this.sha256.digest()).toString('hex')
      if (got !== payload.hash) throw s3Error('XAmzContentSHA256Mismatch')
    }
    let checksum: VerifiedBody['checksum']
    if (this.checksum && this.checksumAlgorithm) {
      const value = (await this.checksum.digest()).toString('base64')
      let expected = this.expectedChecksum
      if (this.trailerName) {
        expected = this.trailers?.get(this.trailerName)
        if (expected === undefined) throw s3Error('InvalidRequest', `The trailer ${this.trailerName} was declared but not sent.`)
        validateChecksumValue(this.checksumAlgorithm, expected)
      }
      if (expected !== undefined && expected !== value) {
        throw s3Error('BadDigest', `The ${checksumHeader(this.checksumAlgorithm)} you specified did not match the calculated checksum.`)
      }
      checksum = { algorithm: this.checksumAlgorithm, value }
    }
    return { md5: md5?.toString('hex'), size: this.size, checksum }
  }
}
