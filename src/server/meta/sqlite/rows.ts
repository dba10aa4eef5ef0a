/**
 * Rows of the SQLite MetaStore as stored (JSON text columns, snake_case) and as the MetaStore
 * interface hands them out. The only place that knows both shapes.
 */
import type { ChecksumAlgorithm, ChecksumType } from '../../../s3/checksums.js'
import type { StoredEncryption } from '../../../s3/sse.js'
import type { TagSet } from '../../../s3/tagging.js'
import type { BucketRow, JobFinding, JobRow, KmsKeyVersion, ObjectRow, ObjectReplication, PartRow, ReplicationItem, UploadRow } from '../index.js'

export interface RawBucket {
  name: string
  owner: string
  region: string
  createdAt: number
  settings: string
}

export interface RawObject {
  bucket: string
  key: string
  size: number
  etag: string
  last_modified: number
  headers: string
  meta: string
  checksum: string | null
  parts_count: number
  manifest: Buffer
  files: string
  encryption: string | null
  replication: string | null
  key_id: string | null
  key_version: number | null
  tags: string | null
}

export interface RawUpload {
  upload_id: string
  bucket: string
  key: string
  initiated: number
  owner: string
  state: string
  headers: string
  meta: string
  checksum_algorithm: string | null
  checksum_type: string | null
  encryption: string | null
  key_id: string | null
  key_version: number | null
  tags: string | null
}

export interface RawPart {
  upload_id: string
  part_number: number
  size: number
  etag: string
  last_modified: number
  checksum: string | null
  record: string
  file: string
}

export interface RawReplicationItem {
  bucket: string
  key: string
  id: string
  destination: string
  destination_owner: string | null
  rule_id: string
  enqueued_at: number
  attempts: number
  next_attempt: number
  last_error: string | null
}

const json = (v: unknown): string | null => (v === undefined ? null : JSON.stringify(v))

function kmsKeyFromRaw(r: { key_id: string | null; key_version: number | null }): { kmsKey?: KmsKeyVersion } {
  return r.key_id !== null && r.key_version !== null ? { kmsKey: { keyId: r.key_id, version: r.key_version } } : {}
}

export function bucketFromRaw(r: RawBucket): BucketRow {
  return { ...r, settings: JSON.parse(r.settings) }
}

export function objectFromRaw(r: RawObject): ObjectRow {
  return {
    bucket: r.bucket,
    key: r.key,
    size: r.size,
    etag: r.etag,
    lastModified: r.last_modified,
    headers: JSON.parse(r.headers),
    meta: JSON.parse(r.meta),
    checksum: r.checksum ? JSON.parse(r.checksum) : undefined,
    partsCount: r.parts_count,
    manifest: r.manifest,
    blobs: JSON.parse(r.files),
    encryption: r.encryption ? JSON.parse(r.encryption) : undefined,
    ...kmsKeyFromRaw(r),
    replication: r.replication ? JSON.parse(r.replication) : undefined,
    ...(r.tags ? { tags: JSON.parse(r.tags) as TagSet } : {}),
  }
}

/** The named parameters of the objects INSERT. */
export function objectParams(o: ObjectRow, replication: ObjectReplication | undefined) {
  return {
    bucket: o.bucket,
    key: o.key,
    size: o.size,
    etag: o.etag,
    lastModified: o.lastModified,
    headers: JSON.stringify(o.headers),
    meta: JSON.stringify(o.meta),
    checksum: json(o.checksum),
    partsCount: o.partsCount,
    manifest: Buffer.from(o.manifest.buffer, o.manifest.byteOffset, o.manifest.byteLength),
    files: JSON.stringify(o.blobs),
    encryption: json(o.encryption),
    replication: json(replication),
    keyId: o.kmsKey?.keyId ?? null,
    keyVersion: o.kmsKey?.version ?? null,
    tags: o.tags && o.tags.length > 0 ? JSON.stringify(o.tags) : null,
  }
}

export function uploadFromRaw(r: RawUpload): UploadRow {
  return {
    uploadId: r.upload_id,
    bucket: r.bucket,
    key: r.key,
    initiated: r.initiated,
    owner: r.owner,
    state: JSON.parse(r.state),
    headers: JSON.parse(r.headers),
    meta: JSON.parse(r.meta),
    checksumAlgorithm: (r.checksum_algorithm ?? undefined) as ChecksumAlgorithm | undefined,
    checksumType: (r.checksum_type ?? undefined) as ChecksumType | undefined,
    encryption: r.encryption ? (JSON.parse(r.encryption) as StoredEncryption) : undefined,
    ...kmsKeyFromRaw(r),
    ...(r.tags ? { tags: JSON.parse(r.tags) as TagSet } : {}),
  }
}

export function uploadParams(u: UploadRow) {
  return {
    uploadId: u.uploadId,
    bucket: u.bucket,
    key: u.key,
    initiated: u.initiated,
    owner: u.owner,
    state: JSON.stringify(u.state),
    headers: JSON.stringify(u.headers),
    meta: JSON.stringify(u.meta),
    checksumAlgorithm: u.checksumAlgorithm ?? null,
    checksumType: u.checksumType ?? null,
    encryption: json(u.encryption),
    keyId: u.kmsKey?.keyId ?? null,
    keyVersion: u.kmsKey?.version ?? null,
    tags: u.tags && u.tags.length > 0 ? JSON.stringify(u.tags) : null,
  }
}

export function partFromRaw(r: RawPart): PartRow {
  return {
    uploadId: r.upload_id,
    partNumber: r.part_number,
    size: r.size,
    etag: r.etag,
    lastModified: r.last_modified,
    checksum: r.checksum ? JSON.parse(r.checksum) : undefined,
    record: JSON.parse(r.record),
    blob: r.file,
  }
}

export function partParams(p: PartRow) {
  return {
    uploadId: p.uploadId,
    partNumber: p.partNumber,
    size: p.size,
    etag: p.etag,
    lastModified: p.lastModified,
    checksum: json(p.checksum),
    record: JSON.stringify(p.record),
    file: p.blob,
  }
}

export function itemFromRaw(r: RawReplicationItem, claim: string | null = null): ReplicationItem {
  return {
    bucket: r.bucket,
    key: r.key,
    id: r.id,
    destination: r.destination,
    destinationOwner: r.destination_owner,
    ruleId: r.rule_id,
    enqueuedAt: r.enqueued_at,
    attempts: r.attempts,
    nextAttempt: r.next_attempt,
    lastError: r.last_error,
    claim,
  }
}

/**
 * The smallest string greater than every string that starts with `prefix`, in UTF-8 byte
 * order (UTF-8 keeps code point order): the last code point plus one. Null: no bound.
 */
export function prefixUpperBound(prefix: string): string | null {
  const cps = Array.from(prefix)
  while (cps.length > 0) {
    const last = cps.pop()!.codePointAt(0)!
    if (last < 0x10ffff) {
      const next = last === 0xd7ff ? 0xe000 : last + 1
      return cps.join('') + String.fromCodePoint(next)
    }
  }
  return null
}

export interface RawJob {
  id: string
  body: string
}

export function jobFromRaw(r: RawJob): JobRow {
  return JSON.parse(r.body) as JobRow
}

/** The named parameters of the jobs INSERT/UPDATE: the row whole, and the columns the claim query filters on. */
export function jobParams(j: JobRow) {
  return { id: j.id, bucket: j.bucket, state: j.state, createdAt: j.createdAt, claimUntil: j.claim?.until ?? null, body: JSON.stringify(j) }
}

export interface RawFinding {
  seq: number
  key: string
  kind: string
  part: number | null
  package: number | null
  code: string
  message: string
  at: number
}

export function findingFromRaw(r: RawFinding): JobFinding {
  return { seq: r.seq, key: r.key, kind: r.kind as JobFinding['kind'], part: r.part, package: r.package, code: r.code, message: r.message, at: r.at }
}
