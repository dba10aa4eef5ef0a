/**
 * Object tagging (S3 User Guide, "Categorizing your storage using tags"; S3 API reference:
 * PutObjectTagging, GetObjectTagging, PutObject `x-amz-tagging`, CopyObject
 * `x-amz-tagging-directive`): the tag-set rules and S3's answer to each broken one, the XML
 * body, the header form and the response pieces. Pure functions.
 *
 * - at most 10 tags per object (more: 400 BadRequest);
 * - a key is 1 … 128 Unicode characters, a value 0 … 256, counted in code points;
 * - both are letters, digits and spaces in any script, and `+ - = . _ : / @`;
 * - keys are case-sensitive and unique (InvalidTag "Cannot provide multiple Tags with the
 *   same key"; in the header form, InvalidArgument); `aws:` keys are the system's.
 */
import { XMLBuilder } from 'fast-xml-parser'
import { S3sseError } from '../errors.js'
import { elements, parseConfigDocument, single, text } from './config-xml.js'
import { S3_XMLNS } from './xml.js'

export interface Tag {
  key: string
  value: string
}
export type TagSet = Tag[]

export const MAX_TAGS = 10
export const MAX_TAG_KEY_LENGTH = 128
export const MAX_TAG_VALUE_LENGTH = 256

/** Letters, digits and spaces of any script, and + - = . _ : / @ (S3's tag character set). */
const TAG_CHARS = /^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$/u

const HEADER_MESSAGE = "The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query parameters without tag name duplicates."

function invalidTag(message: string): S3sseError {
  return new S3sseError('InvalidTag', message)
}

const length = (s: string) => [...s].length

/** S3's checks on a tag set, in S3's order of complaint; the set is returned unchanged. */
export function validateTagSet(tags: TagSet): TagSet {
  if (tags.length > MAX_TAGS) throw new S3sseError('BadRequest', `Object tags cannot be greater than ${MAX_TAGS}`)
  const seen = new Set<string>()
  for (const { key, value } of tags) {
    if (length(key) > MAX_TAG_KEY_LENGTH) throw invalidTag(`The TagKey you have provided is too long, max ${MAX_TAG_KEY_LENGTH}`)
    if (length(value) > MAX_TAG_VALUE_LENGTH) throw invalidTag(`The TagValue you have provided is too long, max ${MAX_TAG_VALUE_LENGTH}`)
    if (key === '' || !TAG_CHARS.test(key)) throw invalidTag('The TagKey you have provided is invalid')
    if (!TAG_CHARS.test(value)) throw invalidTag('The TagValue you have provided is invalid')
    if (key.toLowerCase().startsWith('aws:')) throw invalidTag('Your TagKey cannot be prefixed with aws:')
    if (seen.has(key)) throw invalidTag('Cannot provide multiple Tags with the same key')
    seen.add(key)
  }
  return tags
}

/**
 * A `Tagging` document (PutObjectTagging's body, PostObject's `tagging` field):
 * `<Tagging><TagSet><Tag><Key/><Value/></Tag>…</TagSet></Tagging>`. Structure errors are
 * MalformedXML; rule errors as validateTagSet.
 */
export function parseTagging(xml: string): TagSet {
  const root = elements(parseConfigDocument(xml, 'Tagging', true), 'Tagging', ['TagSet'])
  const tagSet = elements(single(root, 'TagSet', 'Tagging', true), 'TagSet', ['Tag'])
  const tags = (tagSet.Tag ?? []).map((t) => {
    const tag = elements(t, 'Tag', ['Key', 'Value'])
    return { key: text(single(tag, 'Key', 'Tag', true), 'Key'), value: text(single(tag, 'Value', 'Tag', true), 'Value') }
  })
  return validateTagSet(tags)
}

/** Decodes one component of a URL query string; a bad escape is the header's error. */
function decodeComponent(s: string): string {
  try {
    return decodeURIComponent(s.replace(/\+/g, '%20'))
  } catch {
    throw new S3sseError('InvalidArgument', HEADER_MESSAGE)
  }
}

/**
 * `x-amz-tagging` (PutObject, CreateMultipartUpload, CopyObject with REPLACE): URL query
 * parameters `k1=v1&k2=v2`. A repeated key or a bad escape is InvalidArgument; the rules
 * as validateTagSet. An empty header is no tags.
 */
export function parseTaggingHeader(value: string | undefined): TagSet {
  if (value === undefined || value.trim() === '') return []
  const tags: TagSet = []
  const seen = new Set<string>()
  for (const pair of value.split('&')) {
    if (pair === '') continue
    const eq = pair.indexOf('=')
    const key = decodeComponent(eq < 0 ? pair : pair.slice(0, eq))
    const val = eq < 0 ? '' : decodeComponent(pair.slice(eq + 1))
    if (seen.has(key)) throw new S3sseError('InvalidArgument', HEADER_MESSAGE)
    seen.add(key)
    tags.push({ key, value: val })
  }
  return validateTagSet(tags)
}

const builder = new XMLBuilder({ ignoreAttributes: false, suppressEmptyNode: false })

/** GetObjectTagging's body. */
export function renderTagging(tags: TagSet): string {
  return builder.build({
    '?xml': { '@_version': '1.0', '@_encoding': 'UTF-8' },
    Tagging: { '@_xmlns': S3_XMLNS, TagSet: { Tag: tags.map((t) => ({ Key: t.key, Value: t.value })) } },
  }) as string
}

/** GET/HEAD: `x-amz-tagging-count` when the object has tags (S3 leaves it out otherwise). */
export function taggingCountHeader(tags: TagSet | undefined): Record<string, string> {
  return tags && tags.length > 0 ? { 'x-amz-tagging-count': String(tags.length) } : {}
}

export type TaggingDirective = 'COPY' | 'REPLACE'

/** CopyObject: the copy keeps the source's tags (COPY, the default) or takes the request's (REPLACE). */
export function parseTaggingDirective(value: string | undefined): TaggingDirective {
  if (value === undefined) return 'COPY'
  const v = value.trim().toUpperCase()
  if (v !== 'COPY' && v !== 'REPLACE') throw new S3sseError('InvalidArgument', 'Unknown tagging directive.')
  return v
}

/** The tags a copy gets. */
export function copyTags(directive: TaggingDirective, source: TagSet | undefined, header: string | undefined): TagSet {
  return directive === 'REPLACE' ? parseTaggingHeader(header) : [...(source ?? [])]
}
