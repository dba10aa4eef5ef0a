import { s3Error } from '../../s3/errors.js'
import { validateBucketName, type ObjectView } from '../../s3/objects.js'
import { canAccess } from '../auth/index.js'
import { authorize, defaultAccess, type Access } from '../authorize.js'
import { WriteBody } from '../body.js'
import type { User } from '../credentials.js'
import type { BucketRow, ObjectRow } from '../meta/index.js'
import { header, readSmallBody, type RequestContext } from '../http.js'
import type { ServerState } from '../state.js'

/**
 * The bucket a request names, if it exists and the caller may do `access` to it (by default
 * what the request's operation needs on the request's key): owner, root, or the bucket policy.
 */
export async function requireBucket(ctx: RequestContext, name = ctx.bucket, access: Access | undefined = name === ctx.bucket ? defaultAccess(ctx) : undefined): Promise<BucketRow> {
  validateBucketName(name)
  const bucket = await ctx.state.meta.getBucket(name)
  if (!bucket) throw s3Error('NoSuchBucket')
  await authorize(ctx, bucket, access)
  return bucket
}

/** requireBucket for callers without an S3 request (the web console): the same checks. */
export async function findBucket(state: ServerState, user: User | undefined, name: string): Promise<BucketRow> {
  validateBucketName(name)
  const bucket = await state.meta.getBucket(name)
  if (!bucket) throw s3Error('NoSuchBucket')
  if (!canAccess(user, bucket)) throw s3Error('AccessDenied')
  return bucket
}

/** The buckets a user may see: their own, or all of them for root (ListBuckets). */
export async function visibleBuckets(state: ServerState, user: User): Promise<BucketRow[]> {
  return (await state.meta.listBuckets()).filter((b) => canAccess(user, b))
}

/**
 * Creates a bucket owned by `user` in the server's region (CreateBucket and the web console).
 * A name taken by the caller is BucketAlreadyOwnedByYou; by anyone else, BucketAlreadyExists.
 */
export async function createBucketFor(state: ServerState, user: User, name: string): Promise<BucketRow> {
  validateBucketName(name)
  const row: BucketRow = { name, owner: user.id, region: state.config.region, createdAt: Date.now(), settings: {} }
  if (!(await state.meta.createBucket(row))) {
    const existing = await state.meta.getBucket(name)
    if (existing && existing.owner === user.id) throw s3Error('BucketAlreadyOwnedByYou')
    throw s3Error('BucketAlreadyExists')
  }
  return row
}

export async function requireObject(ctx: RequestContext, bucket: string, key: string): Promise<ObjectRow> {
  const obj = await ctx.state.meta.getObject(bucket, key)
  if (!obj) throw s3Error('NoSuchKey')
  return obj
}

export function viewOf(obj: ObjectRow): ObjectView {
  return {
    size: obj.size,
    etag: obj.etag,
    lastModified: obj.lastModified,
    headers: obj.headers,
    meta: obj.meta,
    checksum: obj.checksum,
    partsCount: obj.partsCount,
    encryption: obj.encryption,
    replicationStatus: obj.replication?.status,
  }
}

/** S3 requires an integrity check on some bodies (bucket configurations): Content-MD5 or a checksum. */
export function requireBodyDigest(ctx: RequestContext): void {
  const h = ctx.req.headers
  const hasChecksum = Object.keys(h).some((n) => n.startsWith('x-amz-checksum-') && n !== 'x-amz-checksum-mode')
  const trailer = (header(ctx, 'x-amz-trailer') ?? '').toLowerCase().startsWith('x-amz-checksum-')
  if (h['content-md5'] === undefined && !hasChecksum && !trailer) {
    throw s3Error('InvalidRequest', 'Missing required header for this request: Content-MD5 (or an x-amz-checksum-* header).')
  }
}

/** A small XML request body, with the same digest checks as object data (Content-MD5, checksums, sha256). */
export async function readXmlBody(ctx: RequestContext): Promise<string> {
  const body = new WriteBody(ctx)
  const bytes = await readSmallBody(body.stream())
  await body.verify()
  return bytes.toString('utf8')
}

/** An owner as S3 XML shows one: the stable id, and the name for people. */
export function ownerXml(owner: { id: string; name: string }): { ID: string; DisplayName: string } {
  return { ID: owner.id, DisplayName: owner.name }
}

/**
 * The owner an id stands for: root, a user the MetaStore knows, or — for a user removed
 * since, or one of an older users.json — the name the id carries, else the id itself.
 */
export async function ownerOf(state: ServerState, id: string): Promise<{ id: string; name: string }> {
  if (id === state.root.id) return { id, name: state.root.name }
  const user = await state.meta.lookupUserById(id)
  if (user) return { id, name: user.name }
  return { id, name: id.startsWith('legacy:') ? id.slice('legacy:'.length) : id }
}

/** ISO date with milliseconds as S3 XML carries it. */
export function isoDate(ms: number): string {
  return new Date(ms).toISOString()
}
