/**
 * S3 XML documents: building responses and parsing request bodies (S3 API reference,
 * namespace http://s3.amazonaws.com/doc/2006-03-01/). Pure functions over plain values.
 */
import { XMLBuilder, XMLParser, XMLValidator } from 'fast-xml-parser'
import { s3Error } from './errors.js'

export const S3_XMLNS = 'http://s3.amazonaws.com/doc/2006-03-01/'

const builder = new XMLBuilder({ ignoreAttributes: false, suppressEmptyNode: false, suppressBooleanAttributes: false })

type XmlValue = string | number | boolean | null | undefined | XmlObject | XmlValue[]
interface XmlObject {
  [name: string]: XmlValue
}

/** One S3 document: XML declaration, root element in the S3 namespace, children in order. */
export function s3Document(root: string, body: XmlObject | string, namespace = true): string {
  const element: XmlObject | string =
    typeof body === 'string'
      ? namespace
        ? { '#text': body, '@_xmlns': S3_XMLNS }
        : body
      : namespace
        ? { '@_xmlns': S3_XMLNS, ...body }
        : body
  return builder.build({ '?xml': { '@_version': '1.0', '@_encoding': 'UTF-8' }, [root]: element }) as string
}

export function errorDocument(code: string, message: string, extra: Record<string, string | undefined>): string {
  return s3Document('Error', { Code: code, Message: message, ...extra }, false)
}

/** ISO 8601 with milliseconds, the form S3 uses in XML (LastModified, Initiated). */
export function xmlDate(ms: number): string {
  return new Date(ms).toISOString()
}

/**
 * `encoding-type=url` (ListObjects, ListObjectVersions, ListMultipartUploads): key-like
 * values are URL-encoded the way S3 does, spaces as '+', so clients that decode with
 * form rules (botocore) and with percent rules both get the key back.
 */
export function encodeKeyForXml(value: string, encodingType: string | undefined): string {
  if (encodingType !== 'url') return value
  return encodeURIComponent(value).replace(/%20/g, '+').replace(/%2F/g, '/')
}

// ---------------------------------------------------------------- parsing request bodies

const parser = new XMLParser({
  ignoreAttributes: true,
  parseTagValue: false,
  // Keys may begin or end with spaces: keep text exactly (element-only whitespace lands in '#text').
  trimValues: false,
  removeNSPrefix: true,
  isArray: (name) => name === 'Part' || name === 'Object',
})

function parseXml(xml: string): Record<string, unknown> {
  if (xml.trim() === '') throw s3Error('MalformedXML')
  const valid = XMLValidator.validate(xml)
  if (valid !== true) throw s3Error('MalformedXML')
  try {
    return parser.parse(xml) as Record<string, unknown>
  } catch (err) {
    throw s3Error('MalformedXML', undefined, err)
  }
}

function rootOf(doc: Record<string, unknown>, name: string): Record<string, unknown> {
  const root = doc[name]
  if (root === '' || root === undefined) {
    if (root === '') return {}
    throw s3Error('MalformedXML')
  }
  if (typeof root !== 'object' || root === null) throw s3Error('MalformedXML')
  return root as Record<string, unknown>
}

function text(v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined
  if (typeof v === 'string') return v
  if (typeof v === 'number' || typeof v === 'boolean') return String(v)
  if (typeof v === 'object' && Object.keys(v as object).length === 0) return ''
  throw s3Error('MalformedXML')
}

/** CreateBucketConfiguration → LocationConstraint ('' when absent). An empty body is allowed. */
export function parseCreateBucket(xml: string): { locationConstraint: string } {
  if (xml.trim() === '') return { locationConstraint: '' }
  const root = rootOf(parseXml(xml), 'CreateBucketConfiguration')
  return { locationConstraint: text(root.LocationConstraint)?.trim() ?? '' }
}

export interface CompletePart {
  partNumber: number
  etag: string
  checksums: Record<string, string>
}

const CHECKSUM_ELEMENTS = ['ChecksumCRC32', 'ChecksumCRC32C', 'ChecksumCRC64NVME', 'ChecksumSHA1', 'ChecksumSHA256']

/** CompleteMultipartUpload → its parts, in the order given (order is checked by the caller). */
export function parseCompleteMultipart(xml: string): CompletePart[] {
  const root = rootOf(parseXml(xml), 'CompleteMultipartUpload')
  const parts = (root.Part as unknown[] | undefined) ?? []
  if (parts.length === 0) throw s3Error('MalformedXML', 'The XML you provided did not contain any parts.')
  return parts.map((p) => {
    if (typeof p !== 'object' || p === null) throw s3Error('MalformedXML')
    const part = p as Record<string, unknown>
    const numberText = text(part.PartNumber)?.trim()
    const etag = text(part.ETag)?.trim()
    if (numberText === undefined || etag === undefined || !/^\d+$/.test(numberText)) throw s3Error('MalformedXML')
    const checksums: Record<string, string> = {}
    for (const name of CHECKSUM_ELEMENTS) {
      const v = text(part[name])
      if (v !== undefined) checksums[name.slice('Checksum'.length)] = v.trim()
    }
    return { partNumber: Number(numberText), etag, checksums }
  })
}

/** Delete (DeleteObjects) → keys and the Quiet flag; at most 1000 keys (S3 API reference). */
export function parseDeleteObjects(xml: string): { quiet: boolean; keys: string[] } {
  const root = rootOf(parseXml(xml), 'Delete')
  const objects = (root.Object as unknown[] | undefined) ?? []
  if (objects.length === 0 || objects.length > 1000) throw s3Error('MalformedXML')
  const keys = objects.map((o) => {
    if (typeof o !== 'object' || o === null) throw s3Error('MalformedXML')
    const key = text((o as Record<string, unknown>).Key)
    if (key === undefined || key === '') throw s3Error('MalformedXML')
    return key
  })
  return { quiet: text(root.Quiet)?.trim() === 'true', keys }
}
