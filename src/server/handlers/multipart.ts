/**
 * Multipart uploads: CreateMultipartUpload, UploadPart, UploadPartCopy,
 * CompleteMultipartUpload, AbortMultipartUpload, ListParts. Parts are stored as they
 * arrive (one blob each) and an object made of them at Complete, without copying.
 */
import { s3Error } from '../../s3/errors.js'
import {
  canCombine,
  checksumHeader,
  combineCrcs,
  compositeChecksum,
  createDigest,
  defaultChecksumType,
  parseChecksumAlgorithm,
  validateChecksumType,
  type ChecksumType,
} from '../../s3/checksums.js'
import { normalizeEtag, parseCopySourceRange } from '../../s3/conditions.js'
import { parseMaxKeys } from '../../s3/listing.js'
import {
  MIN_PART_SIZE,
  MAX_PART_SIZE,
  multipartEtag,
  newUploadId,
  parsePartNumber,
  storedHeadersFrom,
  validateKey,
} from '../../s3/objects.js'
import { parseTaggingHeader } from '../../s3/tagging.js'
import { parseCompleteMultipart, s3Document } from '../../s3/xml.js'
import { completeUpload, startUpload, type PartRecord, type UploadState } from '../../object/index.js'
import { checkCustomerKeyForObject, customerKeyResponseHeaders, etagIsPlainMd5, etagOf, etagProtection, parseCustomerKey, type CustomerKey } from '../../s3/sse.js'
import { checksumFromHeaders, WriteBody } from '../body.js'
import { abortUpload, commitPart, completeUpload as commitUpload, discardStaged, objectRow } from '../commit.js'
import { encryptionFor, kmsAccess, sseResponseHeaders, storedEncryption } from '../encryption.js'
import { header, sendEmpty, sendXml, type RequestContext } from '../http.js'
import type { PartRow, StoredChecksum, UploadRow } from '../meta/index.js'
import { checkedManifest, stageCopiedPart, stagePart } from '../sealed.js'
import { isoDate, ownerOf, ownerXml, readXmlBody, requireBucket } from './common.js'
import { checkWritePreconditions, copySource } from './objects.js'

async function requireUpload(ctx: RequestContext): Promise<UploadRow> {
  const id = ctx.query.get('uploadId') ?? ''
  const upload = await ctx.state.meta.getUpload(id)
  if (!upload || upload.bucket !== ctx.bucket || upload.key !== ctx.key) throw s3Error('NoSuchUpload')
  return upload
}

function checksumHeaders(upload: UploadRow): Record<string, string> {
  return upload.checksumAlgorithm
    ? { 'x-amz-checksum-algorithm': upload.checksumAlgorithm, 'x-amz-checksum-type': upload.checksumType ?? 'COMPOSITE' }
    : {}
}

export async function createMultipartUpload(ctx: RequestContext): Promise<void> {
  const bucket = await requireBucket(ctx)
  validateKey(ctx.key)
  const stored = storedHeadersFrom(ctx.req.headers)
  const tags = parseTaggingHeader(header(ctx, 'x-amz-tagging'))
  const algorithm = parseChecksumAlgorithm(header(ctx, 'x-amz-checksum-algorithm'))
  const typeHeader = header(ctx, 'x-amz-checksum-type')?.toUpperCase()
  if (typeHeader !== undefined && typeHeader !== 'COMPOSITE' && typeHeader !== 'FULL_OBJECT') {
    throw s3Error('InvalidRequest', 'Value for x-amz-checksum-type header is invalid.')
  }
  if (typeHeader !== undefined && !algorithm) {
    throw s3Error('InvalidRequest', 'The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm header.')
  }
  const type: ChecksumType | undefined = algorithm ? ((typeHeader as ChecksumType | undefined) ?? defaultChecksumType(algorithm)) : undefined
  if (algorithm && type) validateChecksumType(algorithm, type)
  const encryption = encryptionFor(ctx.state, bucket, ctx.req.headers)
  const state = await startUpload({ context: { bucket: bucket.name, key: ctx.key }, encryption })
  const upload: UploadRow = {
    uploadId: newUploadId(),
    bucket: bucket.name,
    key: ctx.key,
    initiated: Date.now(),
    owner: ctx.user!.id,
    state,
    headers: stored.headers,
    meta: stored.meta,
    checksumAlgorithm: algorithm,
    checksumType: type,
    encryption: storedEncryption(encryption),
    ...(tags.length > 0 ? { tags } : {}),
    ...(state.encryption && state.encryption.algorithm !== 'SSE-C' ? { kmsKey: { keyId: state.encryption.keyId, version: state.encryption.keyVersion } } : {}),
  }
  await ctx.state.meta.createUpload(upload)
  sendXml(ctx, 200, s3Document('InitiateMultipartUploadResult', { Bucket: bucket.name, Key: ctx.key, UploadId: upload.uploadId }), {
    ...checksumHeaders(upload),
    ...sseResponseHeaders(ctx.state.config.mode, upload.encryption),
    ...customerKeyResponseHeaders(encryption?.customer),
  })
}

export async function uploadPart(ctx: RequestContext): Promise<void> {
  await requireBucket(ctx)
  const upload = await requireUpload(ctx)
  const partNumber = parsePartNumber(ctx.query.get('partNumber'))
  const protection = etagProtection(upload.encryption)
  // Every part of an SSE-C upload carries the upload's customer key (a wrong one is 403).
  const customer = uploadCustomerKey(ctx, upload)
  const body = new WriteBody(ctx, { requiredAlgorithm: upload.checksumAlgorithm, etagMd5: etagIsPlainMd5(protection) })
  const staged = await stagePart(ctx.state.blobs, upload.state as UploadState, { ...kmsAccess(ctx.state), ...(customer ? { customerKey: customer.key } : {}) }, partNumber, body.stream())
  let verified
  try {
    verified = await body.verify()
    if (verified.size > MAX_PART_SIZE) throw s3Error('EntityTooLarge')
  } catch (err) {
    await discardStaged(ctx.state, [staged.blob])
    throw err
  }
  const part: PartRow = {
    uploadId: upload.uploadId,
    partNumber,
    size: verified.size,
    etag: etagOf('part', protection, verified.md5),
    lastModified: Date.now(),
    checksum: verified.checksum,
    record: staged.result,
    blob: staged.blob.id,
  }
  await commitPart(ctx.state, part, staged.blob)
  sendEmpty(ctx, 200, {
    etag: `"${part.etag}"`,
    ...(part.checksum ? { [checksumHeader(part.checksum.algorithm)]: part.checksum.value } : {}),
    ...sseResponseHeaders(ctx.state.config.mode, upload.encryption),
    ...customerKeyResponseHeaders(customer),
  })
}

/** The customer key an SSE-C upload's part requests must carry; none for any other upload. */
function uploadCustomerKey(ctx: RequestContext, upload: UploadRow): CustomerKey | undefined {
  const given = ctx.state.config.mode === 'aws' ? parseCustomerKey(ctx.req.headers) : undefined
  checkCustomerKeyForObject(upload.encryption?.algorithm === 'SSE-C', given)
  return given
}

export async function uploadPartCopy(ctx: RequestContext): Promise<void> {
  await requireBucket(ctx)
  const upload = await requireUpload(ctx)
  const partNumber = parsePartNumber(ctx.query.get('partNumber'))
  const src = await copySource(ctx)
  const range = parseCopySourceRange(header(ctx, 'x-amz-copy-source-range'), src.obj.size) ?? { start: 0, end: src.obj.size - 1 }
  if (range.end - range.start + 1 > MAX_PART_SIZE) throw s3Error('EntityTooLarge')
  const protection = etagProtection(upload.encryption)
  const customer = uploadCustomerKey(ctx, upload)
  const sourceKey = ctx.state.config.mode === 'aws' ? parseCustomerKey(ctx.req.headers, 'copy-source') : undefined
  checkCustomerKeyForObject(src.obj.encryption?.algorithm === 'SSE-C', sourceKey)
  const md5 = etagIsPlainMd5(protection) ? createDigest('MD5') : undefined
  const digest = upload.checksumAlgorithm ? createDigest(upload.checksumAlgorithm) : undefined
  let size = 0
  const staged = await stageCopiedPart(
    ctx.state.blobs,
    { manifest: checkedManifest(src.obj), blobs: src.obj.blobs, context: { bucket: src.bucket.name, key: src.obj.key } },
    range,
    upload.state as UploadState,
    { ...kmsAccess(ctx.state), ...(customer ? { customerKey: customer.key } : {}) },
    partNumber,
    (chunk) => {
      size += chunk.length
      md5?.update(chunk)
      digest?.update(chunk)
    },
    { ...kmsAccess(ctx.state), ...(sourceKey ? { customerKey: sourceKey.key } : {}) },
  )
  const part: PartRow = {
    uploadId: upload.uploadId,
    partNumber,
    size,
    etag: etagOf('part', protection, md5 && (await md5.digest()).toString('hex')),
    lastModified: Date.now(),
    checksum: upload.checksumAlgorithm && digest ? { algorithm: upload.checksumAlgorithm, value: (await digest.digest()).toString('base64') } : undefined,
    record: staged.result,
    blob: staged.blob.id,
  }
  await commitPart(ctx.state, part, staged.blob)
  sendXml(
    ctx,
    200,
    s3Document('CopyPartResult', {
      ETag: `"${part.etag}"`,
      LastModified: isoDate(part.lastModified),
      ...(part.checksum ? { [`Checksum${part.checksum.algorithm}`]: part.checksum.value } : {}),
    }),
    { ...sseResponseHeaders(ctx.state.config.mode, upload.encryption), ...customerKeyResponseHeaders(customer) },
  )
}

export async function completeMultipartUpload(ctx: RequestContext): Promise<void> {
  const bucket = await requireBucket(ctx)
  const upload = await requireUpload(ctx)
  // Conditional writes apply to the object Complete creates (If-None-Match: *, If-Match).
  const precondition = await checkWritePreconditions(ctx, bucket.name, upload.key)
  const requested = parseCompleteMultipart(await readXmlBody(ctx))
  const stored = new Map((await ctx.state.meta.allParts(upload.uploadId)).map((p) => [p.partNumber, p]))
  const chosen: PartRow[] = []
  let previous = 0
  for (const r of requested) {
    if (r.partNumber <= previous) throw s3Error('InvalidPartOrder')
    previous = r.partNumber
    const part = stored.get(r.partNumber)
    if (!part || normalizeEtag(r.etag) !== part.etag) throw s3Error('InvalidPart')
    // A part checksum named in the request must be the one stored for that part.
    for (const [alg, value] of Object.entries(r.checksums)) {
      if (!part.checksum || part.checksum.algorithm !== alg || part.checksum.value !== value) {
        throw s3Error('InvalidPart', `The checksum of part ${r.partNumber} does not match the one uploaded.`)
      }
    }
    chosen.push(part)
  }
  // Every part but the last must be at least 5 MiB (S3 User Guide, multipart upload limits).
  for (const part of chosen.slice(0, -1)) {
    if (part.size < MIN_PART_SIZE) throw s3Error('EntityTooSmall')
  }

  let checksum: StoredChecksum | undefined
  const algorithm = upload.checksumAlgorithm
  if (algorithm) {
    const values = chosen.map((p) => {
      if (!p.checksum || p.checksum.algorithm !== algorithm) throw s3Error('InvalidPart', `Part ${p.partNumber} has no ${algorithm} checksum.`)
      return p.checksum.value
    })
    const type = upload.checksumType ?? 'COMPOSITE'
    const value =
      type === 'FULL_OBJECT' && canCombine(algorithm)
        ? combineCrcs(algorithm, chosen.map((p, i) => ({ checksum: values[i], size: p.size })))
        : await compositeChecksum(algorithm, values)
    checksum = { algorithm, type, value }
    // A full-object checksum sent with Complete is the client's end-to-end check.
    const given = checksumFromHeaders(ctx.req.headers)
    if (given && (given.algorithm !== algorithm || (type === 'FULL_OBJECT' && given.value !== value))) {
      throw s3Error('BadDigest', `The ${checksumHeader(given.algorithm)} you specified did not match the calculated checksum.`)
    }
  }

  const manifest = await completeUpload(upload.state as UploadState, kmsAccess(ctx.state), chosen.map((p) => p.record as PartRecord))
  const row = objectRow({
    bucket: bucket.name,
    key: upload.key,
    manifest,
    blobs: chosen.map((p) => p.blob),
    size: chosen.reduce((n, p) => n + p.size, 0),
    etag: multipartEtag(chosen.map((p) => p.etag)),
    headers: upload.headers,
    meta: upload.meta,
    checksum,
    partsCount: chosen.length,
    encryption: upload.encryption,
    tags: upload.tags,
  })
  await commitUpload(ctx.state, upload.uploadId, row, { precondition })
  const host = header(ctx, 'host') ?? 'localhost'
  sendXml(
    ctx,
    200,
    s3Document('CompleteMultipartUploadResult', {
      Location: `${ctx.secure ? 'https' : 'http'}://${host}/${bucket.name}/${encodeURIComponent(upload.key).replace(/%2F/g, '/')}`,
      Bucket: bucket.name,
      Key: upload.key,
      ETag: `"${row.etag}"`,
      ...(checksum ? { [`Checksum${checksum.algorithm}`]: checksum.value, ChecksumType: checksum.type } : {}),
    }),
    sseResponseHeaders(ctx.state.config.mode, row.encryption),
  )
}

export async function abortMultipartUpload(ctx: RequestContext): Promise<void> {
  await requireBucket(ctx)
  const upload = await requireUpload(ctx)
  await abortUpload(ctx.state, upload.uploadId)
  sendEmpty(ctx, 204)
}

export async function listParts(ctx: RequestContext): Promise<void> {
  const bucket = await requireBucket(ctx)
  const upload = await requireUpload(ctx)
  const maxParts = parseMaxKeys(ctx.query.get('max-parts'), 'max-parts')
  const markerText = ctx.query.get('part-number-marker') ?? '0'
  if (!/^\d+$/.test(markerText)) throw s3Error('InvalidArgument', 'Part number marker must be an integer.')
  const marker = Number(markerText)
  const rows = await ctx.state.meta.listParts(upload.uploadId, marker, maxParts + 1)
  const truncated = rows.length > maxParts
  const parts = rows.slice(0, maxParts)
  const owner = ownerXml(await ownerOf(ctx.state, upload.owner))
  sendXml(
    ctx,
    200,
    s3Document('ListPartsResult', {
      Bucket: bucket.name,
      Key: upload.key,
      UploadId: upload.uploadId,
      Initiator: owner,
      Owner: owner,
      StorageClass: 'STANDARD',
      PartNumberMarker: marker,
      ...(parts.length > 0 ? { NextPartNumberMarker: parts[parts.length - 1].partNumber } : {}),
      MaxParts: maxParts,
      IsTruncated: truncated,
      ...(upload.checksumAlgorithm ? { ChecksumAlgorithm: upload.checksumAlgorithm, ChecksumType: upload.checksumType } : {}),
      Part: parts.map((p) => ({
        PartNumber: p.partNumber,
        LastModified: isoDate(p.lastModified),
        ETag: `"${p.etag}"`,
        Size: p.size,
        ...(p.checksum ? { [`Checksum${p.checksum.algorithm}`]: p.checksum.value } : {}),
      })),
    }),
  )
}
