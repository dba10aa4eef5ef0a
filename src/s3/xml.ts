/**
 * S3 XML documents: building responses and parsing request bodies (S3 API reference,
 * namespace http://s3.amazonaws.com/doc/2006-03-01/). Pure functions over plain values.
 */
import { XMLBuilder } from 'fast-xml-parser'
import { s3Error } from './errors.js'
import { parseRequestXml, type XmlElement, type XmlTree } from './xml-read.js'

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

/** The root element's children; MalformedXML unless the root is `name`. Text exact (keys may begin or end with spaces). */
function rootOf(xml: string, name: string): XmlElement {
  const doc = parseRequestXml(xml)
  if (doc.rootName !== name) throw s3Error('MalformedXML')
  if (doc.root === '') return {}
  if (typeof doc.root === 'string' || doc.root['#text'] !== undefined) throw s3Error('MalformedXML')
  return doc.root
}

/** The occurrences of child `name` (none: an empty list). */
function all(node: XmlElement, name: string): XmlTree[] {
  const v = node[name]
  return Array.isArray(v) ? v : []
}

/** The text of the one child `name`, or undefined when absent; twice, or holding elements: MalformedXML. */
function text(node: XmlElement, name: string): string | undefined {
  const list = all(node, name)
  if (list.length === 0) return undefined
  if (list.length > 1 || typeof list[0] !== 'string') throw s3Error('MalformedXML')
  return list[0]
}

function element(v: XmlTree): XmlElement {
  if (v === '') return {}
  if (typeof v === 'string' || v['#text'] !== undefined) throw s3Error('MalformedXML')
  return v
}

/** CreateBucketConfiguration → LocationConstraint ('' when absent). An empty body is allowed. */
export function parseCreateBucket(xml: string): { locationConstraint: string } {
  if (xml.trim() === '') return { locationConstraint: '' }
  const root = rootOf(xml, 'CreateBucketConfiguration')
  return { locationConstraint: text(root, 'LocationConstraint')?.trim() ?? '' }
}

export interface CompletePart {
  partNumber: number
  etag: string
  checksums: Record<string, string>
}

const CHECKSUM_ELEMENTS = ['ChecksumCRC32', 'ChecksumCRC32C', 'ChecksumCRC64NVME', 'ChecksumSHA1', 'ChecksumSHA256']

/** CompleteMultipartUpload → its parts, in the order given (order is checked by the caller). */
export function parseCompleteMultipart(xml: string): CompletePart[] {
  const root = rootOf(xml, 'CompleteMultipartUpload')
  const parts = all(root, 'Part')
  if (parts.length === 0) throw s3Error('MalformedXML', 'The XML you provided did not contain any parts.')
  return parts.map((p) => {
    const part = element(p)
    const numberText = text(part, 'PartNumber')?.trim()
    const etag = text(part, 'ETag')?.trim()
    if (numberText === undefined || etag === undefined || !/^\d+$/.test(numberText)) throw s3Error('MalformedXML')
    const checksums: Record<string, string> = {}
    for (const name of CHECKSUM_ELEMENTS) {
      const v = text(part, name)
      if (v !== undefined) checksums[name.slice('Checksum'.length)] = v.trim()
    }
    return { partNumber: Number(numberText), etag, checksums }
  })
}

/** Delete (DeleteObjects) → keys and the Quiet flag; at most 1000 keys (S3 API reference). */
export function parseDeleteObjects(xml: string): { quiet: boolean; keys: string[] } {
  const root = rootOf(xml, 'Delete')
  const objects = all(root, 'Object')
  if (objects.length === 0 || objects.length > 1000) throw s3Error('MalformedXML')
  const keys = objects.map((o) => {
    const key = text(element(o), 'Key')
    if (key === undefined || key === '') throw s3Error('MalformedXML')
    return key
  })
  return { quiet: text(root, 'Quiet')?.trim() === 'true', keys }
}
