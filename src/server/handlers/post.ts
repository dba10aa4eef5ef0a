/**
 * PostObject: a browser form upload (multipart/form-data) authenticated by a SigV4-signed
 * (aws mode: or SigV2-signed) POST policy (S3 API reference, "PostObject" and "Browser-Based Uploads Using POST").
 * Fields come first; the `file` field is the data and ends the form.
 */
import busboy from 'busboy'
import type { Readable } from 'node:stream'
import { isS3sseError } from '../../errors.js'
import { s3Error } from '../../s3/errors.js'
import { checksumHeader, createDigest, parseChecksumAlgorithm } from '../../s3/checksums.js'
import { checksumFromHeaders } from '../body.js'
import { storedHeadersFrom, validateKey } from '../../s3/objects.js'
import { evaluatePostPolicy, postObjectKey } from '../../s3/post-policy.js'
import { parseTagging } from '../../s3/tagging.js'
import { s3Document } from '../../s3/xml.js'
import { verifyOptions } from '../auth/index.js'
import { verifyPostPolicyV2 } from '../auth/sigv2.js'
import { ALGORITHM, verifyPostPolicySignature } from '../auth/sigv4.js'
import { checkTransport, etagIsPlainMd5, etagOf, etagProtection } from '../../s3/sse.js'
import { commitObject, discardStaged, objectRow } from '../commit.js'
import { encryptionFor, sseResponseHeaders } from '../encryption.js'
import { checkNotTimedOut, continueBody, sendEmpty, sendXml, type RequestContext } from '../http.js'
import type { ObjectRow, StoredChecksum } from '../meta/index.js'
import { stageObject, tapStream } from '../sealed.js'
import { lookupUser } from '../state.js'
import { requireBucket } from './common.js'

/** Largest form field (the policy is one): larger ones are refused, never silently cut. */
const MAX_FIELD_SIZE = 64 * 1024

interface FormFile {
  stream: Readable
  filename?: string
}

interface Form {
  fields: Map<string, string>
  file: FormFile
  /** Stops parsing: the request body is no longer fed to the parser (sendError then drains or closes it). */
  abandon(): void
}

/** A form part the parser could not take: S3's MalformedPOSTRequest, with busboy's reason as the cause. */
function malformedForm(cause: unknown): Error {
  return isS3sseError(cause) && !String(cause.code).startsWith('S3SSE_') ? cause : s3Error('MalformedPOSTRequest', undefined, cause)
}

/**
 * Reads fields up to the file; resolves with both (the file stream still unread). Every
 * stream busboy hands out gets an error listener at once: a form cut short makes busboy
 * destroy its file stream with an error, and that must never become an unhandled 'error'
 * event, whether or not anyone is still reading it.
 */
function readForm(ctx: RequestContext): Promise<Form> {
  return new Promise((resolve, reject) => {
    let bb: busboy.Busboy
    try {
      bb = busboy({ headers: ctx.req.headers, limits: { fieldSize: MAX_FIELD_SIZE, fields: 100, files: 1, parts: 101 } })
    } catch (err) {
      reject(s3Error('MalformedPOSTRequest', undefined, err))
      return
    }
    const abandon = () => {
      ctx.req.unpipe(bb)
      bb.removeAllListeners('file').removeAllListeners('field')
      bb.on('error', () => undefined)
      bb.destroy()
    }
    const fail = (err: Error) => {
      abandon()
      reject(err)
    }
    const fields = new Map<string, string>()
    let gotFile = false
    bb.on('field', (name: string | undefined, value, info) => {
      if (gotFile) return
      if (name === undefined || name === '') return fail(s3Error('MalformedPOSTRequest', 'Every form field needs a name.'))
      if (info.valueTruncated) {
        return fail(s3Error('MaxPostPreDataLengthExceededError', `The form field ${name} is longer than ${MAX_FIELD_SIZE} bytes.`))
      }
      fields.set(name.toLowerCase(), value)
    })
    bb.on('file', (name: string | undefined, stream, info) => {
      stream.on('error', () => undefined)
      if (gotFile || (name ?? '').toLowerCase() !== 'file') {
        stream.resume()
        return
      }
      gotFile = true
      resolve({ fields, file: { stream, filename: info.filename }, abandon })
    })
    bb.on('error', (err) => reject(malformedForm(err)))
    bb.on('close', () => {
      if (!gotFile) reject(s3Error('InvalidArgument', 'POST requires exactly one file upload per request.'))
    })
    // A request cut off (by the client, or by the idle timeout) before the file part.
    ctx.req.once('error', (err) => fail(ctx.timedOut ?? malformedForm(err)))
    continueBody(ctx)
    ctx.req.pipe(bb)
  })
}

/** The file part's bytes; busboy's errors (a form cut inside the file) are MalformedPOSTRequest. */
async function* fileBytes(ctx: RequestContext, stream: Readable): AsyncGenerator<Buffer> {
  try {
    for await (const chunk of stream) {
      checkNotTimedOut(ctx)
      yield chunk as Buffer
    }
  } catch (err) {
    throw ctx.timedOut ?? malformedForm(err)
  }
  checkNotTimedOut(ctx)
}

export async function postObject(ctx: RequestContext): Promise<void> {
  const bucket = await ctx.state.meta.getBucket(ctx.bucket)
  const { fields, file, abandon } = await readForm(ctx)
  let done = false
  try {
    const policy = fields.get('policy')
    const signature = fields.get('x-amz-signature')
    const credential = fields.get('x-amz-credential')
    const amzDate = fields.get('x-amz-date')
    // aws mode also takes a SigV2 policy (AWSAccessKeyId + signature), as Amazon S3 does.
    const v2 = ctx.state.config.mode === 'aws' && signature === undefined && fields.has('awsaccesskeyid') && fields.has('signature')
    let accessKey: string
    if (v2) {
      if (!policy) throw s3Error('AccessDenied', 'Bucket POST must contain a policy.')
      accessKey = await verifyPostPolicyV2(policy, fields.get('awsaccesskeyid')!, fields.get('signature')!, verifyOptions(ctx.state))
    } else {
      if (!policy || !signature || !credential || !amzDate) {
        throw s3Error('AccessDenied', 'Bucket POST must contain a policy and its SigV4 fields (x-amz-credential, x-amz-date, x-amz-signature).')
      }
      if (fields.get('x-amz-algorithm') !== ALGORITHM) throw s3Error('InvalidArgument', 'x-amz-algorithm must be AWS4-HMAC-SHA256.')
      accessKey = await verifyPostPolicySignature(policy, credential, amzDate, signature, verifyOptions(ctx.state))
    }
    ctx.user = await lookupUser(ctx.state, accessKey)
    ctx.signatureVersion = v2 ? 2 : 4
    if (!bucket) throw s3Error('NoSuchBucket')
    const template = fields.get('key')
    if (template === undefined) throw s3Error('InvalidArgument', 'Bucket POST must contain a field named \'key\'.')
    const key = postObjectKey(template, file.filename)
    validateKey(key)
    ctx.key = key
    const headerFields: Record<string, string> = {}
    for (const [name, value] of fields) headerFields[name] = value
    // s3:PutObject on the key, with the form's SSE fields as the condition values.
    await requireBucket(ctx, bucket.name, { action: 's3:PutObject', key, headers: headerFields })
    const limits = evaluatePostPolicy(policy, new Map([...fields, ['bucket', bucket.name]]), Date.now())

    const stored = storedHeadersFrom(headerFields)
    // The form's tagging field is a Tagging document (S3 API reference, PostObject).
    const tagging = fields.get('tagging')
    const tags = tagging === undefined ? [] : parseTagging(tagging)
    // SSE fields of the form are what headers are to PutObject.
    const encryption = encryptionFor(ctx.state, bucket, headerFields)
    // Encrypted data needs HTTPS and a SigV4 policy.
    checkTransport({ carriesKmsData: encryption?.algorithm === 'aws:kms', secure: ctx.secure, sigV4: !v2 })
    const protection = etagProtection(encryption)
    const md5 = etagIsPlainMd5(protection) ? createDigest('MD5') : undefined
    // Checksum fields are to a form what x-amz-checksum-* headers are to PutObject: a value is
    // verified over the plaintext; x-amz-checksum-algorithm alone asks for one to be stored.
    const given = checksumFromHeaders(headerFields)
    const named = parseChecksumAlgorithm(fields.get('x-amz-checksum-algorithm'))
    if (given && named && given.algorithm !== named) {
      throw s3Error('InvalidRequest', `Value for x-amz-checksum-algorithm (${named}) does not match the checksum field ${checksumHeader(given.algorithm)}.`)
    }
    const algorithm = given?.algorithm ?? named
    const digest = algorithm ? createDigest(algorithm) : undefined
    let size = 0
    const data = tapStream(fileBytes(ctx, file.stream), (chunk) => {
      size += chunk.length
      md5?.update(chunk)
      digest?.update(chunk)
      if (size > limits.maxSize) throw s3Error('EntityTooLarge', 'Your proposed upload exceeds the maximum allowed size')
    })
    const staged = await stageObject(ctx.state.blobs, data, { context: { bucket: bucket.name, key }, encryption })
    if ((file.stream as Readable & { truncated?: boolean }).truncated || size < limits.minSize) {
      await discardStaged(ctx.state, [staged.blob])
      throw s3Error('EntityTooSmall', 'Your proposed upload is smaller than the minimum allowed size')
    }
    const checksumValue = digest && (await digest.digest()).toString('base64')
    if (given && checksumValue !== given.value) {
      await discardStaged(ctx.state, [staged.blob])
      throw s3Error('BadDigest', `The ${checksumHeader(given.algorithm)} you specified did not match the calculated checksum.`)
    }
    const checksum: StoredChecksum | undefined = algorithm && checksumValue ? { algorithm, type: 'FULL_OBJECT', value: checksumValue } : undefined
    const row = objectRow({
      bucket: bucket.name,
      key,
      manifest: staged.result,
      blobs: [staged.blob.id],
      size,
      etag: etagOf('object', protection, md5 && (await md5.digest()).toString('hex')),
      headers: stored.headers,
      meta: stored.meta,
      checksum,
      keyName: encryption?.keyName,
      tags,
    })
    await commitObject(ctx.state, row, [staged.blob])
    respond(ctx, fields, row)
    done = true
  } finally {
    // Refused or failed: stop parsing; what is left of the body is drained or the connection closed.
    if (!done) abandon()
  }
}

function respond(ctx: RequestContext, fields: Map<string, string>, row: ObjectRow): void {
  const etag = `"${row.etag}"`
  const location = `/${row.bucket}/${encodeURIComponent(row.key).replace(/%2F/g, '/')}`
  const headers = {
    etag,
    location,
    ...(row.checksum ? { [checksumHeader(row.checksum.algorithm)]: row.checksum.value } : {}),
    ...sseResponseHeaders(ctx.state.config.mode, row.encryption),
  }
  const redirect = fields.get('success_action_redirect') ?? fields.get('redirect')
  if (redirect) {
    let target: URL | undefined
    try {
      target = new URL(redirect)
    } catch {
      target = undefined
    }
    if (target) {
      target.searchParams.set('bucket', row.bucket)
      target.searchParams.set('key', row.key)
      target.searchParams.set('etag', etag)
      sendEmpty(ctx, 303, { ...headers, location: target.toString() })
      return
    }
  }
  const status = fields.get('success_action_status')
  if (status === '201') {
    sendXml(ctx, 201, s3Document('PostResponse', { Location: location, Bucket: row.bucket, Key: row.key, ETag: etag }, false), headers)
  } else if (status === '200') {
    sendEmpty(ctx, 200, headers)
  } else {
    sendEmpty(ctx, 204, headers)
  }
}
