/**
 * The one reader of XML request bodies (CreateBucketConfiguration, CompleteMultipartUpload,
 * Delete, the configuration documents, Tagging): well-formedness from fast-xml-parser, and
 * character data decoded here by the rules of XML 1.0 itself, because clients rely on all
 * of them — Go's encoding/xml (rclone, minio-go, aws-sdk-go) writes `"` as `&#34;`,
 * `'` as `&#39;` and a newline as `&#xA;`.
 *
 * - the five predefined entities and decimal/hex character references are decoded
 *   (XML 1.0 §4.1, §4.6); a reference to anything else, or to a code point that is not
 *   an XML Char (§2.2), is MalformedXML;
 * - CDATA sections are kept verbatim; line ends are normalised to LF (§2.11) before
 *   references are decoded, so `&#xD;` survives as CR;
 * - a DOCTYPE is refused: request bodies have no use for entity declarations.
 *
 * The result is a tree of plain values: an element with child elements is an object of
 * child name → list of occurrences (with '#text' when it also holds non-blank text); an
 * element without child elements is its decoded text.
 */
import { XMLParser, XMLValidator } from 'fast-xml-parser'
import { S3sseError } from '../errors.js'

export type XmlTree = string | XmlElement
export interface XmlElement {
  [child: string]: XmlTree[] | string
}

const MALFORMED = 'The XML you provided was not well-formed or did not validate against our published schema'

export function malformedXml(detail?: string): S3sseError {
  return new S3sseError('MalformedXML', detail === undefined ? MALFORMED : `${MALFORMED}: ${detail}`)
}

const parser = new XMLParser({
  preserveOrder: true,
  ignoreAttributes: true,
  parseTagValue: false,
  trimValues: false,
  // Entities are decoded below, exactly once and strictly; the parser's own decoding is lenient.
  processEntities: false,
  htmlEntities: false,
  cdataPropName: '#cdata',
  removeNSPrefix: true,
  ignoreDeclaration: true,
  ignorePiTags: true,
})

const PREDEFINED: Record<string, string> = { lt: '<', gt: '>', amp: '&', apos: "'", quot: '"' }

/** XML 1.0 §2.2: Char ::= #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF] */
function isXmlChar(cp: number): boolean {
  return cp === 0x9 || cp === 0xa || cp === 0xd || (cp >= 0x20 && cp <= 0xd7ff) || (cp >= 0xe000 && cp <= 0xfffd) || (cp >= 0x10000 && cp <= 0x10ffff)
}

function normaliseLineEnds(raw: string): string {
  return raw.replace(/\r\n?/g, '\n')
}

/**
 * Decodes the references in raw character data (no CDATA inside). A bare `&`, an unknown
 * entity, or a reference to a non-Char is MalformedXML.
 */
export function decodeCharacterData(raw: string): string {
  const text = normaliseLineEnds(raw)
  if (!text.includes('&')) return text
  let out = ''
  let i = 0
  for (;;) {
    const amp = text.indexOf('&', i)
    if (amp < 0) return out + text.slice(i)
    out += text.slice(i, amp)
    const semi = text.indexOf(';', amp)
    if (semi < 0) throw malformedXml('an "&" does not start a reference')
    const ref = text.slice(amp + 1, semi)
    let cp: number | undefined
    if (/^#[0-9]{1,7}$/.test(ref)) cp = Number(ref.slice(1))
    else if (/^#x[0-9A-Fa-f]{1,6}$/.test(ref)) cp = parseInt(ref.slice(2), 16)
    if (cp !== undefined) {
      if (!isXmlChar(cp)) throw malformedXml(`&${ref}; is not a character XML allows`)
      out += String.fromCodePoint(cp)
    } else if (Object.prototype.hasOwnProperty.call(PREDEFINED, ref)) {
      out += PREDEFINED[ref]
    } else {
      throw malformedXml(`&${ref.slice(0, 20)}; is not a predefined entity or a character reference`)
    }
    i = semi + 1
  }
}

type OrderedNode = Record<string, unknown>

function convert(children: OrderedNode[], trim: boolean): XmlTree {
  const element: XmlElement = {}
  let text = ''
  let hasChildren = false
  for (const node of children) {
    if ('#text' in node) {
      text += decodeCharacterData(String(node['#text']))
      continue
    }
    if ('#cdata' in node) {
      const inner = node['#cdata'] as OrderedNode[]
      for (const t of inner) text += normaliseLineEnds(String(t['#text'] ?? ''))
      continue
    }
    const name = Object.keys(node).find((k) => k !== ':@')
    if (name === undefined) continue
    hasChildren = true
    const value = convert(node[name] as OrderedNode[], trim)
    const list = element[name]
    if (Array.isArray(list)) list.push(value)
    else element[name] = [value]
  }
  if (!hasChildren) return trim ? text.trim() : text
  if (text.trim() !== '') element['#text'] = text
  return element
}

export interface ParsedDocument {
  rootName: string
  root: XmlTree
}

/**
 * Parses a request body into its root element. `trim`: text-only elements lose surrounding
 * whitespace (configuration documents); without it text is exact (object keys may begin or
 * end with spaces).
 */
export function parseRequestXml(xml: string, opts: { trim?: boolean } = {}): ParsedDocument {
  const body = xml.replace(/^\uFEFF/, '')
  if (body.trim() === '') throw malformedXml('the body is empty')
  if (/<!DOCTYPE/i.test(body)) throw malformedXml('a DOCTYPE is not allowed')
  if (XMLValidator.validate(body) !== true) throw malformedXml('the body is not well-formed XML')
  let nodes: OrderedNode[]
  try {
    nodes = parser.parse(body) as OrderedNode[]
  } catch {
    throw malformedXml('the body is not well-formed XML')
  }
  const elements = nodes.filter((n) => !('#text' in n) && !('#cdata' in n))
  if (elements.length !== 1) throw malformedXml('a document has exactly one root element')
  const rootName = Object.keys(elements[0]).find((k) => k !== ':@')!
  return { rootName, root: convert(elements[0][rootName] as OrderedNode[], opts.trim ?? false) }
}
