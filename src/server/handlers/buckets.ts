/**
 * Service and bucket operations: ListBuckets, CreateBucket, HeadBucket, DeleteBucket,
 * GetBucketLocation, GetBucketVersioning, and the listings (ListObjects v1/v2,
 * ListObjectVersions, ListMultipartUploads).
 */
import { withSpaceForDelete } from '../reserve.js'
import { s3Error } from '../../s3/errors.js'
import {
  decodeContinuationToken,
  encodeContinuationToken,
  listPage,
  parseMaxKeys,
} from '../../s3/listing.js'
import { validateBucketName } from '../../s3/objects.js'
import { encodeKeyForXml, parseCreateBucket, s3Document } from '../../s3/xml.js'
import { deleteBucket as deleteBucketStored } from '../commit.js'
import type { ObjectSummary, UploadRow } from '../meta/index.js'
import { sendEmpty, sendXml, type RequestContext } from '../http.js'
import { createBucketFor, isoDate, ownerOf, ownerXml, readXmlBody, requireBucket, visibleBuckets } from './common.js'

export async function listBuckets(ctx: RequestContext): Promise<void> {
  const user = ctx.user!
  const buckets = await visibleBuckets(ctx.state, user)
  sendXml(
    ctx,
    200,
    s3Document('ListAllMyBucketsResult', {
      Owner: ownerXml(user),
      Buckets: { Bucket: buckets.map((b) => ({ Name: b.name, CreationDate: isoDate(b.createdAt), BucketRegion: b.region })) },
    }),
  )
}

export async function createBucket(ctx: RequestContext): Promise<void> {
  validateBucketName(ctx.bucket)
  const { locationConstraint } = parseCreateBucket(await readXmlBody(ctx))
  const region = ctx.state.config.region
  // us-east-1 is spelled as no constraint (S3 API reference, CreateBucketConfiguration).
  if (locationConstraint !== '' && locationConstraint !== region) {
    throw s3Error('InvalidLocationConstraint', `The ${locationConstraint} location constraint is not valid here; this server's region is ${region}.`)
  }
  await createBucketFor(ctx.state, ctx.user!, ctx.bucket)
  sendEmpty(ctx, 200, { location: `/${ctx.bucket}` })
}

export async function headBucket(ctx: RequestContext): Promise<void> {
  const bucket = await requireBucket(ctx)
  sendEmpty(ctx, 200, { 'x-amz-bucket-region': bucket.region })
}

export async function deleteBucket(ctx: RequestContext): Promise<void> {
  await requireBucket(ctx)
  await deleteBucketStored(ctx.state, ctx.bucket)
  sendEmpty(ctx, 204)
}

export async function getBucketLocation(ctx: RequestContext): Promise<void> {
  const bucket = await requireBucket(ctx)
  sendXml(ctx, 200, s3Document('LocationConstraint', bucket.region === 'us-east-1' ? '' : bucket.region))
}

/** Buckets here are never versioned: the document is empty (S3: "never enabled"). */
export async function getBucketVersioning(ctx: RequestContext): Promise<void> {
  await requireBucket(ctx)
  sendXml(ctx, 200, s3Document('VersioningConfiguration', {}))
}

interface ListParams {
  prefix: string
  delimiter: string
  maxKeys: number
  encodingType?: string
}

function listParams(ctx: RequestContext, maxName = 'max-keys'): ListParams {
  const encodingType = ctx.query.get('encoding-type')
  if (encodingType !== undefined && encodingType !== 'url') throw s3Error('InvalidArgument', 'Invalid Encoding Method specified in Request')
  return {
    prefix: ctx.query.get('prefix') ?? '',
    delimiter: ctx.query.get('delimiter') ?? '',
    maxKeys: parseMaxKeys(ctx.query.get(maxName), maxName),
    encodingType,
  }
}

function objectSource(ctx: RequestContext) {
  return (after: string, prefix: string, limit: number): Promise<ObjectSummary[]> => ctx.state.meta.listObjects(ctx.bucket, after, prefix, limit)
}

function contentsXml(o: ObjectSummary, enc: string | undefined, owner?: { id: string; name: string }) {
  return {
    Key: encodeKeyForXml(o.key, enc),
    LastModified: isoDate(o.lastModified),
    ETag: `"${o.etag}"`,
    Size: o.size,
    ...(owner !== undefined ? { Owner: ownerXml(owner) } : {}),
    StorageClass: 'STANDARD',
  }
}

export async function listObjects(ctx: RequestContext): Promise<void> {
  const bucket = await requireBucket(ctx)
  const p = listParams(ctx)
  const marker = ctx.query.get('marker') ?? ''
  const page = await listPage(objectSource(ctx), { ...p, after: marker })
  const owner = await ownerOf(ctx.state, bucket.owner)
  const enc = p.encodingType
  sendXml(
    ctx,
    200,
    s3Document('ListBucketResult', {
      Name: bucket.name,
      Prefix: encodeKeyForXml(p.prefix, enc),
      Marker: encodeKeyForXml(marker, enc),
      ...(page.isTruncated && p.delimiter !== '' && page.nextMarker !== undefined ? { NextMarker: encodeKeyForXml(page.nextMarker, enc) } : {}),
      MaxKeys: p.maxKeys,
      ...(p.delimiter !== '' ? { Delimiter: encodeKeyForXml(p.delimiter, enc) } : {}),
      IsTruncated: page.isTruncated,
      ...(enc ? { EncodingType: enc } : {}),
      Contents: page.contents.map((o) => contentsXml(o, enc, owner)),
      CommonPrefixes: page.commonPrefixes.map((cp) => ({ Prefix: encodeKeyForXml(cp, enc) })),
    }),
  )
}

export async function listObjectsV2(ctx: RequestContext): Promise<void> {
  const bucket = await requireBucket(ctx)
  const p = listParams(ctx)
  const token = ctx.query.get('continuation-token')
  const startAfter = ctx.query.get('start-after') ?? ''
  if (token === '') throw s3Error('InvalidArgument', 'The continuation token provided is incorrect')
  const after = token !== undefined ? decodeContinuationToken(token) : startAfter
  const fetchOwner = ctx.query.get('fetch-owner') === 'true'
  const page = await listPage(objectSource(ctx), { ...p, after })
  const owner = await ownerOf(ctx.state, bucket.owner)
  const enc = p.encodingType
  sendXml(
    ctx,
    200,
    s3Document('ListBucketResult', {
      Name: bucket.name,
      Prefix: encodeKeyForXml(p.prefix, enc),
      ...(p.delimiter !== '' ? { Delimiter: encodeKeyForXml(p.delimiter, enc) } : {}),
      MaxKeys: p.maxKeys,
      KeyCount: page.contents.length + page.commonPrefixes.length,
      IsTruncated: page.isTruncated,
      ...(enc ? { EncodingType: enc } : {}),
      ...(token !== undefined ? { ContinuationToken: token } : {}),
      ...(page.isTruncated && page.resumeAfter !== undefined ? { NextContinuationToken: encodeContinuationToken(page.resumeAfter) } : {}),
      ...(startAfter !== '' ? { StartAfter: encodeKeyForXml(startAfter, enc) } : {}),
      Contents: page.contents.map((o) => contentsXml(o, enc, fetchOwner ? owner : undefined)),
      CommonPrefixes: page.commonPrefixes.map((cp) => ({ Prefix: encodeKeyForXml(cp, enc) })),
    }),
  )
}

/**
 * ListObjectVersions on an unversioned bucket: every object is its one `null` version,
 * the latest (S3 User Guide, "Working with objects in a versioning-suspended bucket").
 */
export async function listObjectVersions(ctx: RequestContext): Promise<void> {
  const bucket = await requireBucket(ctx)
  const p = listParams(ctx)
  const keyMarker = ctx.query.get('key-marker') ?? ''
  const versionIdMarker = ctx.query.get('version-id-marker') ?? ''
  if (versionIdMarker !== '' && keyMarker === '') {
    throw s3Error('InvalidArgument', 'A version-id marker cannot be specified without a key marker.')
  }
  // A version-id marker other than `null` on a key with only a null version: that key is done either way.
  const page = await listPage(objectSource(ctx), { ...p, after: keyMarker })
  const owner = await ownerOf(ctx.state, bucket.owner)
  const enc = p.encodingType
  const nextKeyMarker = page.isTruncated ? page.nextMarker : undefined
  sendXml(
    ctx,
    200,
    s3Document('ListVersionsResult', {
      Name: bucket.name,
      Prefix: encodeKeyForXml(p.prefix, enc),
      KeyMarker: encodeKeyForXml(keyMarker, enc),
      VersionIdMarker: versionIdMarker,
      ...(nextKeyMarker !== undefined ? { NextKeyMarker: encodeKeyForXml(nextKeyMarker, enc) } : {}),
      ...(nextKeyMarker !== undefined && page.commonPrefixes.at(-1) !== nextKeyMarker ? { NextVersionIdMarker: 'null' } : {}),
      MaxKeys: p.maxKeys,
      ...(p.delimiter !== '' ? { Delimiter: encodeKeyForXml(p.delimiter, enc) } : {}),
      IsTruncated: page.isTruncated,
      ...(enc ? { EncodingType: enc } : {}),
      Version: page.contents.map((o) => ({
        Key: encodeKeyForXml(o.key, enc),
        VersionId: 'null',
        IsLatest: true,
        LastModified: isoDate(o.lastModified),
        ETag: `"${o.etag}"`,
        Size: o.size,
        Owner: ownerXml(owner),
        StorageClass: 'STANDARD',
      })),
      CommonPrefixes: page.commonPrefixes.map((cp) => ({ Prefix: encodeKeyForXml(cp, enc) })),
    }),
  )
}

export async function listMultipartUploads(ctx: RequestContext): Promise<void> {
  const bucket = await requireBucket(ctx)
  const p = listParams(ctx, 'max-uploads')
  const keyMarker = ctx.query.get('key-marker') ?? ''
  const uploadIdMarker = keyMarker === '' ? '' : (ctx.query.get('upload-id-marker') ?? '')
  const enc = p.encodingType
  // Rows are (key, upload) pairs; the shared listing rules resume on keys. Only the first
  // query resumes inside a key (after upload-id-marker); a page never splits a key's uploads.
  let first = true
  const source = (after: string, prefix: string, limit: number): Promise<UploadRow[]> => {
    const afterId = first && uploadIdMarker !== '' && after === keyMarker ? uploadIdMarker : '\u{10FFFF}'
    first = false
    return ctx.state.meta.listUploads(ctx.bucket, after, afterId, prefix, limit)
  }
  const page = await listPage(source, { ...p, after: keyMarker })
  const owners = new Map<string, { id: string; name: string }>()
  for (const u of page.contents) if (!owners.has(u.owner)) owners.set(u.owner, await ownerOf(ctx.state, u.owner))
  const last = page.contents.at(-1)
  const lastIsUpload = last !== undefined && page.nextMarker === last.key
  sendXml(
    ctx,
    200,
    s3Document('ListMultipartUploadsResult', {
      Bucket: bucket.name,
      KeyMarker: encodeKeyForXml(keyMarker, enc),
      UploadIdMarker: uploadIdMarker,
      ...(page.isTruncated && page.nextMarker !== undefined
        ? { NextKeyMarker: encodeKeyForXml(page.nextMarker, enc), NextUploadIdMarker: lastIsUpload ? last!.uploadId : '' }
        : {}),
      ...(enc ? { EncodingType: enc } : {}),
      Prefix: encodeKeyForXml(p.prefix, enc),
      ...(p.delimiter !== '' ? { Delimiter: encodeKeyForXml(p.delimiter, enc) } : {}),
      MaxUploads: p.maxKeys,
      IsTruncated: page.isTruncated,
      Upload: page.contents.map((u) => ({
        Key: encodeKeyForXml(u.key, enc),
        UploadId: u.uploadId,
        Initiator: ownerXml(owners.get(u.owner)!),
        Owner: ownerXml(owners.get(u.owner)!),
        StorageClass: 'STANDARD',
        Initiated: isoDate(u.initiated),
        ...(u.checksumAlgorithm ? { ChecksumAlgorithm: u.checksumAlgorithm, ChecksumType: u.checksumType } : {}),
      })),
      CommonPrefixes: page.commonPrefixes.map((cp) => ({ Prefix: encodeKeyForXml(cp, enc) })),
    }),
  )
}

