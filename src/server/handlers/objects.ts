/**
 * Object operations: PutObject, GetObject, HeadObject, DeleteObject, DeleteObjects,
 * CopyObject.
 */
import { pipeline } from 'node:stream/promises'
import { Readable } from 'node:stream'
import { s3Error, toS3Error } from '../../s3/errors.js'
import { checksumHeader, createDigest, parseChecksumAlgorithm, type ChecksumAlgorithm } from '../../s3/checksums.js'
import { checkCopySourcePreconditions, checkReadPreconditions, parseRange, writePrecondition, type ByteRange } from '../../s3/conditions.js'
import {
  objectResponseHeaders,
  parseCopySource,
  parsePartNumber,
  responseOverrides,
  storedHeadersFrom,
  validateKey,
} from '../../s3/objects.js'
import { copyTags, parseTaggingDirective, parseTaggingHeader, taggingCountHeader } from '../../s3/tagging.js'
import { parseDeleteObjects, s3Document } from '../../s3/xml.js'
import { isS3sseError } from '../../errors.js'
import { rewrap, verifyManifest, type Manifest } from '../../object/index.js'
import { checkCustomerKeyForObject, checkReadHeaders, copyEtag, customerKeyResponseHeaders, etagIsPlainMd5, etagOf, etagProtection, parseCustomerKey } from '../../s3/sse.js'
import { WriteBody } from '../body.js'
import { commitObject, deleteObject as deleteStored, discardStaged, objectRow } from '../commit.js'
import { checkNamedKey, encryptionFor, kmsAccess, sseResponseHeaders } from '../encryption.js'
import { header, sendEmpty, sendError, sendXml, startBody, type RequestContext } from '../http.js'
import type { BucketRow, ObjectRow, StoredChecksum } from '../meta/index.js'
import { checkedManifest, readObject, stageObject, tapStream } from '../sealed.js'
import type { StagedBlob } from '../store/blob.js'
import { authorize } from '../authorize.js'
import { isoDate, readXmlBody, requireBucket, requireObject, viewOf } from './common.js'

function checksumResponseHeaders(c: StoredChecksum | undefined): Record<string, string> {
  return c ? { [checksumHeader(c.algorithm)]: c.value, 'x-amz-checksum-type': c.type } : {}
}

/** The write's conditions (If-None-Match / If-Match), checked now against the object it would replace. */
export async function checkWritePreconditions(ctx: RequestContext, bucket: string, key: string): Promise<((existing: ObjectRow | undefined) => void) | undefined> {
  const check = writePrecondition({ ifMatch: header(ctx, 'if-match'), ifNoneMatch: header(ctx, 'if-none-match') })
  check?.(await ctx.state.meta.getObject(bucket, key))
  return check
}

export async function putObject(ctx: RequestContext): Promise<void> {
  const bucket = await requireBucket(ctx)
  validateKey(ctx.key)
  const stored = storedHeadersFrom(ctx.req.headers)
  const tags = parseTaggingHeader(header(ctx, 'x-amz-tagging'))
  const precondition = await checkWritePreconditions(ctx, bucket.name, ctx.key)
  const encryption = encryptionFor(ctx.state, bucket, ctx.req.headers)
  const protection = etagProtection(encryption)
  const body = new WriteBody(ctx, { etagMd5: etagIsPlainMd5(protection) })
  const context = { bucket: bucket.name, key: ctx.key }
  const staged = await stageObject(ctx.state.blobs, body.stream(), { context, encryption })
  let verified
  try {
    verified = await body.verify()
  } catch (err) {
    await discardStaged(ctx.state, [staged.blob])
    throw err
  }
  const checksum: StoredChecksum | undefined = verified.checksum && { ...verified.checksum, type: 'FULL_OBJECT' }
  const row = objectRow({
    bucket: bucket.name,
    key: ctx.key,
    manifest: staged.result,
    blobs: [staged.blob.id],
    size: verified.size,
    etag: etagOf('object', protection, verified.md5),
    headers: stored.headers,
    meta: stored.meta,
    checksum,
    keyName: encryption?.keyName,
    tags,
  })
  await commitObject(ctx.state, row, [staged.blob], { precondition })
  sendEmpty(ctx, 200, {
    etag: `"${row.etag}"`,
    ...checksumResponseHeaders(checksum),
    ...sseResponseHeaders(ctx.state.config.mode, row.encryption),
    ...customerKeyResponseHeaders(encryption?.customer),
  })
}

/** `?partNumber=N` on GET/HEAD: the byte range of that part (S3 API reference, GetObject). */
function partRange(obj: ObjectRow, manifest: Manifest, partNumber: number): ByteRange | null {
  if (partNumber === 1 && obj.partsCount <= 1) return null
  if (partNumber > manifest.parts.length) throw s3Error('InvalidPart', 'The requested partnumber is not satisfiable')
  let start = 0
  for (let i = 0; i < partNumber - 1; i++) start += manifest.parts[i].size
  const size = manifest.parts[partNumber - 1].size
  if (size === 0) throw s3Error('InvalidRange')
  return { start, end: start + size - 1 }
}

async function readTarget(ctx: RequestContext, withBody: boolean): Promise<void> {
  const bucket = await requireBucket(ctx)
  validateKey(ctx.key)
  const customer = checkReadHeaders(ctx.state.config.mode, ctx.req.headers)
  const access = { ...kmsAccess(ctx.state), ...(customer ? { customerKey: customer.key } : {}) }
  const versionId = ctx.query.get('versionId')
  for (let attempt = 0; ; attempt++) {
    const obj = await requireObject(ctx, bucket.name, ctx.key)
    if (versionId !== undefined && versionId !== 'null') throw s3Error('NoSuchVersion')
    // An SSE-C object needs its key (a wrong one is 403 below); SSE-C headers suit no other.
    checkCustomerKeyForObject(obj.encryption?.algorithm === 'SSE-C', customer)
    try {
      checkReadPreconditions(
        {
          ifMatch: header(ctx, 'if-match'),
          ifNoneMatch: header(ctx, 'if-none-match'),
          ifModifiedSince: header(ctx, 'if-modified-since'),
          ifUnmodifiedSince: header(ctx, 'if-unmodified-since'),
        },
        obj.etag,
        obj.lastModified,
      )
    } catch (err) {
      sendError(ctx, err, { etag: `"${obj.etag}"`, 'last-modified': new Date(obj.lastModified).toUTCString() })
      return
    }
    const manifest = checkedManifest(obj)
    const partNumber = ctx.query.get('partNumber')
    let range: ByteRange | null
    if (partNumber !== undefined) {
      if (header(ctx, 'range') !== undefined) throw s3Error('InvalidRequest', 'Cannot specify both Range header and partNumber query parameter.')
      range = partRange(obj, manifest, parsePartNumber(partNumber))
    } else {
      range = parseRange(header(ctx, 'range'), obj.size)
    }
    const headers = objectResponseHeaders(viewOf(obj), {
      mode: ctx.state.config.mode,
      range,
      checksumMode: header(ctx, 'x-amz-checksum-mode')?.toUpperCase() === 'ENABLED',
      overrides: responseOverrides(ctx.query),
    })
    if (partNumber !== undefined) headers['x-amz-mp-parts-count'] = String(manifest.parts.length)
    Object.assign(headers, taggingCountHeader(obj.tags), customerKeyResponseHeaders(customer))
    const status = range ? 206 : 200
    if (!withBody) {
      // HEAD of an SSE-C object checks the key as GET does, before any header is sent.
      if (customer) await verifyManifest(manifest, { context: { bucket: bucket.name, key: ctx.key }, ...access })
      startBody(ctx, status, headers)
      ctx.res.end()
      return
    }
    let stream: AsyncIterable<Buffer>
    try {
      stream = await readObject(
        ctx.state.blobs,
        { manifest, blobs: obj.blobs, context: { bucket: bucket.name, key: ctx.key } },
        access,
        range,
      )
    } catch (err) {
      // Overwritten or deleted between reading the row and opening its blobs: read the row again.
      if (isS3sseError(err, 'S3SSE_BLOB_NOT_FOUND') && attempt < 3) continue
      throw err
    }
    try {
      startBody(ctx, status, headers)
    } catch (err) {
      // The object's files are open: close them before the error is answered.
      await stream[Symbol.asyncIterator]().return?.()
      throw err
    }
    await pipeline(Readable.from(stream), ctx.res)
    return
  }
}

export function getObject(ctx: RequestContext): Promise<void> {
  return readTarget(ctx, true)
}

export function headObject(ctx: RequestContext): Promise<void> {
  return readTarget(ctx, false)
}

export async function deleteObject(ctx: RequestContext): Promise<void> {
  const bucket = await requireBucket(ctx)
  validateKey(ctx.key)
  await deleteStored(ctx.state, bucket.name, ctx.key)
  sendEmpty(ctx, 204)
}

export async function deleteObjects(ctx: RequestContext): Promise<void> {
  // The bucket must exist and be visible; each key needs s3:DeleteObject (checked below).
  const bucket = await requireBucket(ctx, ctx.bucket, { action: 's3:DeleteObject', key: '*' })
  const { quiet, keys } = parseDeleteObjects(await readXmlBody(ctx))
  const deleted: Array<{ Key: string }> = []
  const errors: Array<{ Key: string; Code: string; Message: string }> = []
  for (const key of keys) {
    try {
      validateKey(key)
      await authorize(ctx, bucket, { action: 's3:DeleteObject', key })
      await deleteStored(ctx.state, bucket.name, key)
      if (!quiet) deleted.push({ Key: key })
    } catch (err) {
      const e = toS3Error(err)
      errors.push({ Key: key, Code: e.code, Message: e.message })
    }
  }
  sendXml(ctx, 200, s3Document('DeleteResult', { Deleted: deleted, Error: errors }))
}

/** Source object of CopyObject / UploadPartCopy, with its preconditions checked. */
export async function copySource(ctx: RequestContext): Promise<{ bucket: BucketRow; obj: ObjectRow }> {
  const raw = header(ctx, 'x-amz-copy-source')!
  const src = parseCopySource(raw)
  validateKey(src.key)
  // The source needs s3:GetObject on its key, whoever owns its bucket.
  const bucket = await requireBucket(ctx, src.bucket, { action: 's3:GetObject', key: src.key })
  const obj = await ctx.state.meta.getObject(bucket.name, src.key)
  if (!obj) throw s3Error('NoSuchKey')
  if (src.versionId !== undefined && src.versionId !== 'null') throw s3Error('NoSuchVersion')
  checkCopySourcePreconditions(
    {
      ifMatch: header(ctx, 'x-amz-copy-source-if-match'),
      ifNoneMatch: header(ctx, 'x-amz-copy-source-if-none-match'),
      ifModifiedSince: header(ctx, 'x-amz-copy-source-if-modified-since'),
      ifUnmodifiedSince: header(ctx, 'x-amz-copy-source-if-unmodified-since'),
    },
    obj.etag,
    obj.lastModified,
  )
  return { bucket, obj }
}

export async function copyObject(ctx: RequestContext): Promise<void> {
  const bucket = await requireBucket(ctx)
  validateKey(ctx.key)
  const src = await copySource(ctx)
  const directive = (header(ctx, 'x-amz-metadata-directive') ?? 'COPY').toUpperCase()
  if (directive !== 'COPY' && directive !== 'REPLACE') throw s3Error('InvalidArgument', 'Unknown metadata directive.')
  // The destination's encryption follows its bucket's setting now, whatever the source's was.
  const encryption = encryptionFor(ctx.state, bucket, ctx.req.headers)
  // An SSE-C source is read with the key in x-amz-copy-source-server-side-encryption-customer-*.
  const sourceKey = ctx.state.config.mode === 'aws' ? parseCustomerKey(ctx.req.headers, 'copy-source') : undefined
  checkCustomerKeyForObject(src.obj.encryption?.algorithm === 'SSE-C', sourceKey)
  const sourceAccess = { ...kmsAccess(ctx.state), ...(sourceKey ? { customerKey: sourceKey.key } : {}) }
  const sameObject = src.bucket.name === bucket.name && src.obj.key === ctx.key
  if (sameObject && directive === 'COPY' && !encryption && !src.obj.encryption && header(ctx, 'x-amz-checksum-algorithm') === undefined) {
    throw s3Error(
      'InvalidRequest',
      "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.",
    )
  }
  const stored = directive === 'REPLACE' ? storedHeadersFrom(ctx.req.headers) : { headers: src.obj.headers, meta: src.obj.meta }
  const tags = copyTags(parseTaggingDirective(header(ctx, 'x-amz-tagging-directive')), src.obj.tags, header(ctx, 'x-amz-tagging'))
  const precondition = await checkWritePreconditions(ctx, bucket.name, ctx.key)
  const srcManifest = checkedManifest(src.obj)
  const srcContext = { bucket: src.bucket.name, key: src.obj.key }
  const dstContext = { bucket: bucket.name, key: ctx.key }
  const requested = parseChecksumAlgorithm(header(ctx, 'x-amz-checksum-algorithm'))

  let manifest: Manifest
  let staged: StagedBlob[]
  let checksum: StoredChecksum | undefined
  let etag: string
  const keepsChecksum = requested === undefined || (src.obj.checksum?.algorithm === requested && src.obj.checksum.type === 'FULL_OBJECT')
  const protection = etagProtection(encryption)
  const srcProtection = etagProtection(src.obj.encryption)
  // An SSE-S3 copy's ETag is its plaintext's MD5, which a re-wrap of an SSE-KMS source cannot know.
  const rewrapKnowsEtag = !(etagIsPlainMd5(protection) && !etagIsPlainMd5(srcProtection))
  // Re-wrapping needs a KMS on both sides: an SSE-C source or destination is re-encrypted.
  const kmsBothSides = encryption?.algorithm !== 'SSE-C' && srcManifest.encryption?.algorithm !== 'SSE-C'
  if (encryption && srcManifest.encryption && keepsChecksum && rewrapKnowsEtag && kmsBothSides) {
    // Encrypted to encrypted, whole object, one KMS: re-wrap the data key for the new
    // context and keep the sealed bytes (a cheap copy of the blobs, not re-encrypted).
    await checkNamedKey(encryption)
    manifest = await rewrap(srcManifest, {
      kms: encryption.kms, from: srcContext, to: dstContext, keyId: encryption.keyId, createKey: encryption.createKey,
      extraContext: encryption.extraContext ?? {}, algorithm: encryption.algorithm,
    })
    staged = await ctx.state.blobs.copy(src.obj.blobs)
    checksum = src.obj.checksum?.type === 'FULL_OBJECT' ? src.obj.checksum : undefined
    // Same content: the ETag stays, unless it is an MD5 that the new protection must not show.
    etag = copyEtag(src.obj.etag, etagIsPlainMd5(srcProtection) === etagIsPlainMd5(protection), () => etagOf('object', protection))
  } else {
    // The copy keeps the source's checksum algorithm unless the request names one.
    const algorithm: ChecksumAlgorithm | undefined = requested ?? src.obj.checksum?.algorithm
    const md5 = etagIsPlainMd5(protection) ? createDigest('MD5') : undefined
    const digest = algorithm ? createDigest(algorithm) : undefined
    const plain = await readObject(ctx.state.blobs, { manifest: srcManifest, blobs: src.obj.blobs, context: srcContext }, sourceAccess)
    const tapped = tapStream(plain, (chunk) => {
      md5?.update(chunk)
      digest?.update(chunk)
    })
    const one = await stageObject(ctx.state.blobs, tapped, { context: dstContext, encryption })
    manifest = one.result
    staged = [one.blob]
    checksum = algorithm && digest ? { algorithm, type: 'FULL_OBJECT', value: (await digest.digest()).toString('base64') } : undefined
    etag = etagOf('object', protection, md5 && (await md5.digest()).toString('hex'))
  }
  const row = objectRow({
    bucket: bucket.name,
    key: ctx.key,
    manifest,
    blobs: staged.map((b) => b.id),
    etag,
    headers: stored.headers,
    meta: stored.meta,
    checksum,
    partsCount: 1,
    keyName: encryption?.keyName,
    tags,
  })
  await commitObject(ctx.state, row, staged, { precondition })
  sendXml(
    ctx,
    200,
    s3Document('CopyObjectResult', {
      ETag: `"${row.etag}"`,
      LastModified: isoDate(row.lastModified),
      ...(checksum ? { ChecksumType: checksum.type, [`Checksum${checksum.algorithm}`]: checksum.value } : {}),
    }),
    { ...sseResponseHeaders(ctx.state.config.mode, row.encryption), ...customerKeyResponseHeaders(encryption?.customer) },
  )
}
