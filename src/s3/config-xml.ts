/**
 * Strict parsing of the configuration documents clients PUT (ServerSideEncryptionConfiguration,
 * ReplicationConfiguration): every element is read as a list, so an element given twice is
 * seen wherever it is; unknown elements and stray text are refused; every failure is
 * MalformedXML with a message that names the element.
 */
import { XMLParser, XMLValidator } from 'fast-xml-parser'
import { S3sseError } from '../errors.js'

/** An element's children by name, each a list of occurrences. */
export type XmlNode = Record<string, unknown[]>

export function malformed(detail: string): S3sseError {
  return new S3sseError('MalformedXML', `The XML you provided was not well-formed or did not validate against our published schema: ${detail}`)
}

const parser = new XMLParser({
  ignoreAttributes: true,
  parseTagValue: false,
  trimValues: true,
  removeNSPrefix: true,
  isArray: (name) => name !== '?xml',
})

/** The one root element of `xml`, which must be named `rootName`. */
export function parseConfigDocument(xml: string, rootName: string): unknown {
  if (xml.trim() === '') throw malformed('the body is empty')
  if (XMLValidator.validate(xml) !== true) throw malformed('the body is not well-formed XML')
  let doc: Record<string, unknown[]>
  try {
    doc = parser.parse(xml) as Record<string, unknown[]>
  } catch {
    throw malformed('the body is not well-formed XML')
  }
  const roots = Object.keys(doc).filter((k) => k !== '?xml')
  if (roots.length !== 1 || roots[0] !== rootName || doc[rootName].length !== 1) {
    throw malformed(`the root element must be ${rootName}`)
  }
  return doc[rootName][0]
}

/** The children of an element, refusing text and any child not in `allowed`. */
export function elements(v: unknown, where: string, allowed: readonly string[]): XmlNode {
  if (v === '' || v === undefined) return {}
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw malformed(`${where} must contain elements`)
  const o = v as Record<string, unknown>
  for (const k of Object.keys(o)) {
    if (k === '#text') throw malformed(`${where} must not contain text`)
    if (!allowed.includes(k)) throw malformed(`${where} does not take ${k}`)
  }
  return o as XmlNode
}

/** The one occurrence of child `name` (or undefined when optional and absent). */
export function single(node: XmlNode, name: string, where: string, required: true): unknown
export function single(node: XmlNode, name: string, where: string, required: false): unknown | undefined
export function single(node: XmlNode, name: string, where: string, required: boolean): unknown | undefined {
  const list = node[name]
  if (list === undefined || list.length === 0) {
    if (required) throw malformed(`${where} needs ${name} (${name} is required)`)
    return undefined
  }
  if (list.length > 1) throw malformed(`${name} may appear only once in ${where}`)
  return list[0]
}

/** The text of an element (empty for `<X/>`); elements inside it are refused. */
export function text(v: unknown, name: string): string {
  if (typeof v === 'string') return v
  if (typeof v === 'object' && v !== null && Object.keys(v).length === 0) return ''
  throw malformed(`${name} must be text`)
}

export function optionalText(node: XmlNode, name: string, where: string): string | undefined {
  const v = single(node, name, where, false)
  return v === undefined ? undefined : text(v, name)
}
