/**
 * S3 additional checksums (S3 User Guide, "Checking object integrity"): CRC32, CRC32C,
 * CRC64NVME, SHA1, SHA256 over the object's plaintext, base64 of the big-endian digest.
 * Multipart objects carry either a COMPOSITE checksum (the checksum of the parts'
 * checksums, suffixed `-N`) or a FULL_OBJECT one (CRCs only, combined from the parts).
 */
import { createHash, type Hash } from 'node:crypto'
import { crc32 as zlibCrc32 } from 'node:zlib'
import { Crc32c } from '@aws-crypto/crc32c'
import { Crc64Nvme } from '@aws-sdk/crc64-nvme'
import { createStreamDigest, type StreamDigest } from '../crypto/digest.js'
import { s3Error } from './errors.js'

export const CHECKSUM_ALGORITHMS = ['CRC32', 'CRC32C', 'CRC64NVME', 'SHA1', 'SHA256'] as const
export type ChecksumAlgorithm = (typeof CHECKSUM_ALGORITHMS)[number]
export type ChecksumType = 'COMPOSITE' | 'FULL_OBJECT'

/** Digest size in bytes, to validate what a client sends. */
const DIGEST_SIZE: Record<ChecksumAlgorithm, number> = { CRC32: 4, CRC32C: 4, CRC64NVME: 8, SHA1: 20, SHA256: 32 }

export function isChecksumAlgorithm(v: string): v is ChecksumAlgorithm {
  return (CHECKSUM_ALGORITHMS as readonly string[]).includes(v)
}

export function parseChecksumAlgorithm(v: string | undefined): ChecksumAlgorithm | undefined {
  if (v === undefined || v === '') return undefined
  const upper = v.toUpperCase()
  if (!isChecksumAlgorithm(upper)) {
    throw s3Error('InvalidRequest', 'Value for x-amz-checksum-algorithm header is invalid.')
  }
  return upper
}

/** The header (and trailer) name carrying a checksum: x-amz-checksum-crc32 … */
export function checksumHeader(alg: ChecksumAlgorithm): string {
  return `x-amz-checksum-${alg.toLowerCase()}`
}

/** Incremental digest with one shape for every algorithm. */
export interface Digest {
  update(data: Uint8Array): void
  /** Raw big-endian digest bytes. */
  digest(): Promise<Buffer>
}

class Crc32Digest implements Digest {
  private value = 0
  update(data: Uint8Array): void {
    this.value = zlibCrc32(data, this.value)
  }
  async digest(): Promise<Buffer> {
    const out = Buffer.alloc(4)
    out.writeUInt32BE(this.value >>> 0)
    return out
  }
}

class Crc32cDigest implements Digest {
  private readonly crc = new Crc32c()
  update(data: Uint8Array): void {
    this.crc.update(data)
  }
  async digest(): Promise<Buffer> {
    const out = Buffer.alloc(4)
    out.writeUInt32BE(this.crc.digest() >>> 0)
    return out
  }
}

class Crc64NvmeDigest implements Digest {
  private readonly crc = new Crc64Nvme()
  update(data: Uint8Array): void {
    this.crc.update(data)
  }
  async digest(): Promise<Buffer> {
    return Buffer.from(await this.crc.digest())
  }
}

class HashDigest implements Digest {
  private readonly hash: Hash
  constructor(name: string) {
    this.hash = createHash(name)
  }
  update(data: Uint8Array): void {
    this.hash.update(data)
  }
  async digest(): Promise<Buffer> {
    return this.hash.digest()
  }
}

export function createDigest(alg: ChecksumAlgorithm | 'MD5'): Digest {
  switch (alg) {
    case 'CRC32':
      return new Crc32Digest()
    case 'CRC32C':
      return new Crc32cDigest()
    case 'CRC64NVME':
      return new Crc64NvmeDigest()
    case 'SHA1':
      return new HashDigest('sha1')
    case 'SHA256':
      return new HashDigest('sha256')
    case 'MD5':
      return new HashDigest('md5')
  }
}

/** A digest of a request body: with a backlog to bound (its hashing may run on the libuv pool). */
export interface BodyDigest extends Digest {
  /** Bytes given to update() and not hashed yet. */
  readonly backlog: number
  /** Resolves once everything given so far is hashed. */
  settle(): Promise<void>
}

/**
 * createDigest for a request body read once from start to end: MD5, SHA-1 and SHA-256 are
 * hashed off the event loop's thread (src/crypto/digest.ts); the CRCs are fast enough here
 * (zlib's and the AWS CRC libraries').
 */
export function createBodyDigest(alg: ChecksumAlgorithm | 'MD5'): BodyDigest {
  if (alg === 'MD5' || alg === 'SHA1' || alg === 'SHA256') {
    const d: StreamDigest = createStreamDigest(alg === 'MD5' ? 'md5' : alg === 'SHA1' ? 'sha1' : 'sha256')
    return { update: (data) => d.update(data), get backlog() { return d.backlog }, settle: () => d.settle(), digest: () => d.digest() }
  }
  const d = createDigest(alg)
  return { update: (data) => d.update(data), backlog: 0, settle: async () => {}, digest: () => d.digest() }
}

export async function checksumOf(alg: ChecksumAlgorithm, data: Uint8Array): Promise<string> {
  const d = createDigest(alg)
  d.update(data)
  return (await d.digest()).toString('base64')
}

/** Checks a client-supplied base64 checksum is well-formed for its algorithm (InvalidRequest otherwise). */
export function validateChecksumValue(alg: ChecksumAlgorithm, value: string): void {
  const raw = /^[A-Za-z0-9+/]*={0,2}$/.test(value) ? Buffer.from(value, 'base64') : undefined
  if (raw === undefined || raw.length !== DIGEST_SIZE[alg] || raw.toString('base64') !== value) {
    throw s3Error('InvalidRequest', `Value for ${checksumHeader(alg)} header is invalid.`)
  }
}

/** The default checksum type of an algorithm for multipart uploads (S3: CRC64NVME is full-object only). */
export function defaultChecksumType(alg: ChecksumAlgorithm): ChecksumType {
  return alg === 'CRC64NVME' ? 'FULL_OBJECT' : 'COMPOSITE'
}

export function validateChecksumType(alg: ChecksumAlgorithm, type: ChecksumType): void {
  if (type === 'FULL_OBJECT' && (alg === 'SHA1' || alg === 'SHA256')) {
    throw s3Error('InvalidRequest', `The ${alg} checksum algorithm does not support the FULL_OBJECT checksum type.`)
  }
  if (type === 'COMPOSITE' && alg === 'CRC64NVME') {
    throw s3Error('InvalidRequest', 'The CRC64NVME checksum algorithm only supports the FULL_OBJECT checksum type.')
  }
}

/** COMPOSITE multipart checksum: checksum of the concatenated raw part checksums, then `-N`. */
export async function compositeChecksum(alg: ChecksumAlgorithm, partChecksums: string[]): Promise<string> {
  const d = createDigest(alg)
  for (const c of partChecksums) d.update(Buffer.from(c, 'base64'))
  return `${(await d.digest()).toString('base64')}-${partChecksums.length}`
}

// -------------------------------------------------------------- CRC combination (FULL_OBJECT)
//
// crc(A‖B) from crc(A), crc(B) and |B|, for reflected CRCs whose init and final xor are all
// ones (CRC32, CRC32C, CRC64NVME): multiply crc(A) by x^(8|B|) modulo the polynomial and
// xor crc(B) — the method of zlib's crc32_combine, done in BigInt for both widths.

interface CrcModel {
  width: number
  /** Reflected polynomial. */
  poly: bigint
}

const CRC_MODELS: Partial<Record<ChecksumAlgorithm, CrcModel>> = {
  CRC32: { width: 32, poly: 0xedb88320n },
  CRC32C: { width: 32, poly: 0x82f63b78n },
  CRC64NVME: { width: 64, poly: 0x9a6c9329ac4bc9b5n },
}

function multModP(model: CrcModel, a: bigint, b: bigint): bigint {
  let m = 1n << BigInt(model.width - 1)
  let p = 0n
  for (;;) {
    if (a & m) {
      p ^= b
      if ((a & (m - 1n)) === 0n) break
    }
    m >>= 1n
    b = b & 1n ? (b >> 1n) ^ model.poly : b >> 1n
  }
  return p
}

const x2nTables = new Map<CrcModel, bigint[]>()

/** x^(2^k) mod p for k = 0..63. */
function x2nTable(model: CrcModel): bigint[] {
  let table = x2nTables.get(model)
  if (!table) {
    table = []
    let p = 1n << BigInt(model.width - 2) // x^1
    for (let k = 0; k < 64; k++) {
      table.push(p)
      p = multModP(model, p, p)
    }
    x2nTables.set(model, table)
  }
  return table
}

/** x^(n·2^k) mod p. */
function x2nModP(model: CrcModel, n: bigint, k: number): bigint {
  const table = x2nTable(model)
  let p = 1n << BigInt(model.width - 1) // x^0
  while (n > 0n) {
    if (n & 1n) p = multModP(model, table[k & 63], p)
    n >>= 1n
    k++
  }
  return p
}

export function canCombine(alg: ChecksumAlgorithm): boolean {
  return CRC_MODELS[alg] !== undefined
}

/** FULL_OBJECT checksum of an object from its parts' CRCs and sizes, in order. */
export function combineCrcs(alg: ChecksumAlgorithm, parts: Array<{ checksum: string; size: number }>): string {
  const model = CRC_MODELS[alg]
  if (!model) throw s3Error('InvalidRequest', `The ${alg} checksum cannot be combined across parts.`)
  const bytes = model.width / 8
  const toBig = (b64: string): bigint => BigInt('0x' + (Buffer.from(b64, 'base64').toString('hex') || '0'))
  let crc = 0n
  let first = true
  for (const part of parts) {
    const c = toBig(part.checksum)
    crc = first ? c : multModP(model, x2nModP(model, BigInt(part.size), 3), crc) ^ c
    first = false
  }
  return Buffer.from(crc.toString(16).padStart(bytes * 2, '0'), 'hex').toString('base64')
}
