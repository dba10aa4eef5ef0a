/**
 * Decoder for `Content-Encoding: aws-chunked` bodies (S3 API reference, "Signature
 * calculation: transfer payload in multiple chunks" and "… with trailing checksums"):
 *
 *   hex-size[;chunk-signature=sig]\r\n data \r\n … 0[;chunk-signature=sig]\r\n
 *   [trailer-name:value\r\n …] [x-amz-trailer-signature:sig\r\n] \r\n
 *
 * Data is passed on as it arrives (memory stays bounded whatever the chunk size); a bad
 * chunk signature fails the stream at the end of that chunk, and the caller commits
 * nothing unless the whole body decoded and verified.
 */
import { createHash, type Hash } from 'node:crypto'
import { s3Error } from '../../s3/errors.js'
import type { ChunkVerifier } from '../payload.js'

const CRLF = Buffer.from('\r\n')
/**
 * Every signed chunk but the last one with data carries at least 8 KiB (S3 API reference,
 * "Signature calculation: transfer payload in multiple chunks": "Each chunk size must be at
 * least 8 KB (8,192 bytes), except the last chunk").
 */
export const MIN_SIGNED_CHUNK_SIZE = 8192
/** A chunk header or trailer line longer than this is not a well-formed body. */
const MAX_LINE = 8192

export interface ChunkedOptions {
  /** Present for STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]: verifies every chunk signature. */
  signer?: ChunkVerifier
  /** The signed-trailer variant: the trailer carries x-amz-trailer-signature. */
  signedTrailer?: boolean
  /** Receives the trailing headers (lowercase names) once the body has been read. */
  onTrailers?: (trailers: Map<string, string>) => void
}

function malformed(what: string): Error {
  return s3Error('InvalidRequest', `Malformed aws-chunked body: ${what}.`)
}

export async function* decodeAwsChunked(source: AsyncIterable<Buffer>, opts: ChunkedOptions = {}): AsyncGenerator<Buffer> {
  const it = source[Symbol.asyncIterator]()
  let buf: Buffer = Buffer.alloc(0)
  let ended = false

  const more = async (): Promise<boolean> => {
    if (ended) return false
    const r = await it.next()
    if (r.done) {
      ended = true
      return false
    }
    const chunk = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value as Uint8Array)
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk])
    return true
  }

  /** Next CRLF-terminated line, or undefined at a clean end of input. */
  const line = async (): Promise<string | undefined> => {
    for (;;) {
      const i = buf.indexOf(CRLF)
      if (i >= 0) {
        const text = buf.toString('latin1', 0, i)
        buf = buf.subarray(i + 2)
        return text
      }
      if (buf.length > MAX_LINE) throw malformed('line too long')
      if (!(await more())) {
        if (buf.length === 0) return undefined
        throw s3Error('IncompleteBody')
      }
    }
  }

  let previousSize: number | undefined
  for (;;) {
    const head = await line()
    if (head === undefined) throw s3Error('IncompleteBody')
    const semi = head.indexOf(';')
    const sizeText = (semi < 0 ? head : head.slice(0, semi)).trim()
    if (!/^[0-9a-fA-F]{1,16}$/.test(sizeText)) throw malformed('bad chunk size')
    const size = parseInt(sizeText, 16)
    let signature: string | undefined
    if (semi >= 0) {
      for (const ext of head.slice(semi + 1).split(';')) {
        const eq = ext.indexOf('=')
        if (eq > 0 && ext.slice(0, eq).trim() === 'chunk-signature') signature = ext.slice(eq + 1).trim()
      }
    }
    if (opts.signer && signature === undefined) throw s3Error('SignatureDoesNotMatch', 'A chunk is missing its chunk-signature.')
    // A chunk with data after a short one: the short one was not the last.
    if (opts.signer && size > 0 && previousSize !== undefined && previousSize < MIN_SIGNED_CHUNK_SIZE) throw s3Error('InvalidChunkSizeError')
    previousSize = size

    const hash: Hash | undefined = opts.signer ? createHash('sha256') : undefined
    let remaining = size
    while (remaining > 0) {
      if (buf.length === 0 && !(await more())) throw s3Error('IncompleteBody')
      const take = Math.min(remaining, buf.length)
      const piece = buf.subarray(0, take)
      buf = buf.subarray(take)
      remaining -= take
      hash?.update(piece)
      yield piece
    }
    if (opts.signer && !opts.signer.verifyChunk(hash!.digest('hex'), signature!)) {
      throw s3Error('SignatureDoesNotMatch', 'The chunk signature does not match.')
    }
    if (size === 0) break
    while (buf.length < 2) if (!(await more())) throw s3Error('IncompleteBody')
    if (buf[0] !== 0x0d || buf[1] !== 0x0a) throw malformed('chunk data not followed by CRLF')
    buf = buf.subarray(2)
  }

  // Trailing headers, up to an empty line (a body may also just end after the last chunk).
  const trailers = new Map<string, string>()
  let canonical = ''
  let trailerSignature: string | undefined
  for (;;) {
    const l = await line()
    if (l === undefined || l === '') break
    const colon = l.indexOf(':')
    if (colon <= 0) throw malformed('bad trailer line')
    const name = l.slice(0, colon).trim().toLowerCase()
    const value = l.slice(colon + 1).trim()
    if (name === 'x-amz-trailer-signature') {
      trailerSignature = value
      continue
    }
    trailers.set(name, value)
    canonical += `${name}:${value}\n`
  }
  if (opts.signer && opts.signedTrailer) {
    if (trailerSignature === undefined || !opts.signer.verifyTrailer(canonical, trailerSignature)) {
      throw s3Error('SignatureDoesNotMatch', 'The trailer signature does not match.')
    }
  }
  opts.onTrailers?.(trailers)
}
