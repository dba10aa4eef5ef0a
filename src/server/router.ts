/**
 * Which S3 operation a request is: the bucket and key from virtual-hosted-style
 * (`bucket.domain`) or path-style (`/bucket/key`) addressing, then method + subresource
 * (S3 API reference, "Virtual hosting of buckets" and each operation's request syntax).
 */
import { s3Error } from '../s3/errors.js'

export interface Target {
  bucket: string
  key: string
  rawPath: string
  rawQuery: string
}

function hostName(host: string | undefined): string {
  if (!host) return ''
  const h = host.trim().toLowerCase()
  if (h.startsWith('[')) return h.slice(0, h.indexOf(']') + 1)
  const colon = h.lastIndexOf(':')
  return colon >= 0 ? h.slice(0, colon) : h
}

function decodePath(raw: string): string {
  try {
    return decodeURIComponent(raw)
  } catch {
    throw s3Error('InvalidArgument', 'The request path is not valid percent-encoded UTF-8.')
  }
}

/** The bucket a Host header names in virtual-hosted style (`bucket.domain`), if it does. */
export function virtualHostedBucket(host: string | undefined, domains: string[]): string | undefined {
  const name = hostName(host)
  // Longest domain first: bucket.s3.localhost is bucket under s3.localhost, not bucket.s3 under localhost.
  for (const domain of [...domains].sort((a, b) => b.length - a.length)) {
    if (name.endsWith('.' + domain)) return name.slice(0, -(domain.length + 1))
  }
  return undefined
}

export function resolveTarget(url: string, host: string | undefined, domains: string[]): Target {
  const q = url.indexOf('?')
  const rawPath = q >= 0 ? url.slice(0, q) : url
  const rawQuery = q >= 0 ? url.slice(q + 1) : ''
  if (!rawPath.startsWith('/')) throw s3Error('InvalidRequest', 'The request path must be absolute.')
  const bucket = virtualHostedBucket(host, domains)
  if (bucket !== undefined) return { bucket, key: decodePath(rawPath.slice(1)), rawPath, rawQuery }
  const rest = rawPath.slice(1)
  const slash = rest.indexOf('/')
  if (slash < 0) return { bucket: decodePath(rest), key: '', rawPath, rawQuery }
  return { bucket: decodePath(rest.slice(0, slash)), key: decodePath(rest.slice(slash + 1)), rawPath, rawQuery }
}

export type Operation =
  | 'ListBuckets'
  | 'CreateBucket'
  | 'HeadBucket'
  | 'DeleteBucket'
  | 'GetBucketLocation'
  | 'GetBucketVersioning'
  | 'ListObjects'
  | 'ListObjectsV2'
  | 'ListObjectVersions'
  | 'ListMultipartUploads'
  | 'DeleteObjects'
  | 'PostObject'
  | 'PutObject'
  | 'CopyObject'
  | 'GetObject'
  | 'HeadObject'
  | 'DeleteObject'
  | 'CreateMultipartUpload'
  | 'UploadPart'
  | 'UploadPartCopy'
  | 'CompleteMultipartUpload'
  | 'AbortMultipartUpload'
  | 'ListParts'
  | 'GetBucketEncryption'
  | 'PutBucketEncryption'
  | 'DeleteBucketEncryption'
  | 'GetBucketReplication'
  | 'PutBucketReplication'
  | 'DeleteBucketReplication'
  | 'GetBucketPolicy'
  | 'PutBucketPolicy'
  | 'DeleteBucketPolicy'
  | 'GetObjectTagging'
  | 'PutObjectTagging'
  | 'DeleteObjectTagging'

/** Bucket subresources this server does not implement: answered NotImplemented rather than misread. */
const UNSUPPORTED_BUCKET_SUBRESOURCES = [
  'acl', 'policyStatus', 'cors', 'lifecycle', 'tagging', 'website', 'logging', 'notification',
  'requestPayment', 'object-lock', 'ownershipControls', 'publicAccessBlock', 'accelerate',
  'analytics', 'inventory', 'metrics', 'intelligent-tiering', 'versioning', 'restore', 'select',
  'attributes', 'retention', 'legal-hold', 'torrent',
]

export function selectOperation(method: string, target: Target, query: Map<string, string>, contentType: string | undefined, hasCopySource: boolean): Operation {
  const { bucket, key } = target
  if (bucket === '') {
    if (method === 'GET') return 'ListBuckets'
    throw s3Error('MethodNotAllowed')
  }
  if (key === '') {
    switch (method) {
      case 'GET':
      case 'HEAD':
        if (method === 'HEAD') return 'HeadBucket'
        if (query.has('encryption')) return 'GetBucketEncryption'
        if (query.has('replication')) return 'GetBucketReplication'
        if (query.has('policy')) return 'GetBucketPolicy'
        if (query.has('location')) return 'GetBucketLocation'
        if (query.has('versioning')) return 'GetBucketVersioning'
        if (query.has('versions')) return 'ListObjectVersions'
        if (query.has('uploads')) return 'ListMultipartUploads'
        rejectUnsupported(query)
        return query.get('list-type') === '2' ? 'ListObjectsV2' : 'ListObjects'
      case 'PUT':
        if (query.has('encryption')) return 'PutBucketEncryption'
        if (query.has('replication')) return 'PutBucketReplication'
        if (query.has('policy')) return 'PutBucketPolicy'
        rejectUnsupported(query)
        return 'CreateBucket'
      case 'DELETE':
        if (query.has('encryption')) return 'DeleteBucketEncryption'
        if (query.has('replication')) return 'DeleteBucketReplication'
        if (query.has('policy')) return 'DeleteBucketPolicy'
        rejectUnsupported(query)
        return 'DeleteBucket'
      case 'POST':
        if (query.has('delete')) return 'DeleteObjects'
        if ((contentType ?? '').toLowerCase().startsWith('multipart/form-data')) return 'PostObject'
        throw s3Error('MethodNotAllowed')
    }
    throw s3Error('MethodNotAllowed')
  }
  const uploadId = query.has('uploadId')
  switch (method) {
    case 'GET':
      if (uploadId) return 'ListParts'
      if (query.has('tagging')) return 'GetObjectTagging'
      rejectUnsupportedObject(query)
      return 'GetObject'
    case 'HEAD':
      return 'HeadObject'
    case 'PUT':
      if (query.has('tagging')) return 'PutObjectTagging'
      rejectUnsupportedObject(query)
      if (uploadId || query.has('partNumber')) return hasCopySource ? 'UploadPartCopy' : 'UploadPart'
      return hasCopySource ? 'CopyObject' : 'PutObject'
    case 'DELETE':
      if (query.has('tagging')) return 'DeleteObjectTagging'
      return uploadId ? 'AbortMultipartUpload' : 'DeleteObject'
    case 'POST':
      if (query.has('uploads')) return 'CreateMultipartUpload'
      if (uploadId) return 'CompleteMultipartUpload'
      rejectUnsupportedObject(query)
      throw s3Error('MethodNotAllowed')
  }
  throw s3Error('MethodNotAllowed')
}

function rejectUnsupported(query: Map<string, string>): void {
  for (const name of UNSUPPORTED_BUCKET_SUBRESOURCES) {
    if (query.has(name)) throw s3Error('NotImplemented', `The ${name} subresource is not implemented by this server.`)
  }
}

function rejectUnsupportedObject(query: Map<string, string>): void {
  for (const name of ['acl', 'retention', 'legal-hold', 'torrent', 'restore', 'select', 'attributes']) {
    if (query.has(name)) throw s3Error('NotImplemented', `The ${name} subresource is not implemented by this server.`)
  }
}
