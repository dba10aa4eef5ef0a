/**
 * Strict parsing of the configuration documents clients PUT (ServerSideEncryptionConfiguration,
 * ReplicationConfiguration): every element is read as a list, so an element given twice is
 * seen wherever it is; unknown elements and stray text are refused; every failure is
 * MalformedXML with a message that names the element.
 */
import type { S3sseError } from '../errors.js'
import { malformedXml, parseRequestXml } from './xml-read.js'

/** An element's children by name, each a list of occurrences. */
export type XmlNode = Record<string, unknown[]>

export function malformed(detail: string): S3sseError {
  return malformedXml(detail)
}

/**
 * The one root element of `xml`, which must be named `rootName`. Text is trimmed unless
 * `exactText` (tag keys and values keep their spaces).
 */
export function parseConfigDocument(xml: string, rootName: string, exactText = false): unknown {
  const doc = parseRequestXml(xml, { trim: !exactText })
  if (doc.rootName !== rootName) throw malformed(`the root element must be ${rootName}`)
  return doc.root
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
