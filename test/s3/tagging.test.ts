/**
 * Object tagging rules (src/s3/tagging.ts) with S3's code and message for each broken rule.
 */
import { describe, expect, it } from 'vitest'
import { S3sseError } from '../../src/errors.js'
import { toS3Error } from '../../src/s3/errors.js'
import {
  copyTags,
  parseTagging,
  parseTaggingDirective,
  parseTaggingHeader,
  renderTagging,
  taggingCountHeader,
  validateTagSet,
} from '../../src/s3/tagging.js'

function failure(f: () => unknown): { status: number; code: string; message: string } {
  try {
    f()
  } catch (e) {
    expect(e).toBeInstanceOf(S3sseError)
    const s = toS3Error(e)
    return { status: s.status, code: s.code, message: s.message }
  }
  throw new Error('expected a failure')
}

const doc = (tags: string) => `<?xml version="1.0" encoding="UTF-8"?><Tagging xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><TagSet>${tags}</TagSet></Tagging>`
const tag = (k: string, v: string) => `<Tag><Key>${k}</Key><Value>${v}</Value></Tag>`

describe('tag sets', () => {
  it('parses a Tagging document, keeping spaces and order, decoding references', () => {
    expect(parseTagging(doc(tag('project', 'blue') + tag(' spaced key ', '  v ') + tag('a&#x2B;b', 'x&#61;y&#64;z')))).toEqual([
      { key: 'project', value: 'blue' },
      { key: ' spaced key ', value: '  v ' },
      { key: 'a+b', value: 'x=y@z' },
    ])
    expect(parseTagging(doc(''))).toEqual([])
    expect(parseTagging(doc(tag('empty', '')))).toEqual([{ key: 'empty', value: '' }])
  })

  it('counts Unicode characters and takes letters and digits of any script', () => {
    const k128 = 'ü'.repeat(128)
    const v256 = '日'.repeat(256)
    expect(validateTagSet([{ key: k128, value: v256 }])).toHaveLength(1)
    expect(validateTagSet([{ key: 'a+b-c=d.e_f:g/h@i j', value: '١٢٣ Ωμέγα' }])).toHaveLength(1)
  })

  it('answers each broken rule as S3 does', () => {
    const eleven = Array.from({ length: 11 }, (_, i) => ({ key: `k${i}`, value: 'v' }))
    const cases: Array<[string, () => unknown, number, string, string]> = [
      ['11 tags', () => validateTagSet(eleven), 400, 'BadRequest', 'Object tags cannot be greater than 10'],
      ['a 129-character key', () => validateTagSet([{ key: 'k'.repeat(129), value: '' }]), 400, 'InvalidTag', 'The TagKey you have provided is too long, max 128'],
      ['a 257-character value', () => validateTagSet([{ key: 'k', value: 'v'.repeat(257) }]), 400, 'InvalidTag', 'The TagValue you have provided is too long, max 256'],
      ['an empty key', () => validateTagSet([{ key: '', value: 'v' }]), 400, 'InvalidTag', 'The TagKey you have provided is invalid'],
      ['a key with *', () => validateTagSet([{ key: 'a*b', value: 'v' }]), 400, 'InvalidTag', 'The TagKey you have provided is invalid'],
      ["a key with '", () => validateTagSet([{ key: "it's", value: 'v' }]), 400, 'InvalidTag', 'The TagKey you have provided is invalid'],
      ['a value with &', () => validateTagSet([{ key: 'k', value: 'a&b' }]), 400, 'InvalidTag', 'The TagValue you have provided is invalid'],
      ['a value with a newline', () => validateTagSet([{ key: 'k', value: 'a\nb' }]), 400, 'InvalidTag', 'The TagValue you have provided is invalid'],
      ['an aws: key', () => validateTagSet([{ key: 'aws:created', value: 'v' }]), 400, 'InvalidTag', 'Your TagKey cannot be prefixed with aws:'],
      ['a repeated key', () => parseTagging(doc(tag('k', '1') + tag('k', '2'))), 400, 'InvalidTag', 'Cannot provide multiple Tags with the same key'],
    ]
    for (const [what, f, status, code, message] of cases) expect(failure(f), what).toEqual({ status, code, message })
    // Keys are case-sensitive: K and k are two tags.
    expect(validateTagSet([{ key: 'K', value: '' }, { key: 'k', value: '' }])).toHaveLength(2)
    expect(validateTagSet(eleven.slice(0, 10))).toHaveLength(10)
  })

  it('refuses a document of the wrong shape with MalformedXML', () => {
    for (const bad of [
      '<Tagging></Tagging>',
      '<Tags><TagSet></TagSet></Tags>',
      doc('<Tag><Key>k</Key></Tag>'),
      doc('<Tag><Value>v</Value></Tag>'),
      doc('<Tag><Key>k</Key><Key>j</Key><Value>v</Value></Tag>'),
      doc('<Tag><Key>k</Key><Value>v</Value><Extra/></Tag>'),
      doc('<Tag><Key><b>k</b></Key><Value>v</Value></Tag>'),
      '<Tagging><TagSet/><TagSet/></Tagging>',
      'not xml',
      '',
    ]) {
      expect(failure(() => parseTagging(bad)).code, bad).toBe('MalformedXML')
    }
  })
})

describe('x-amz-tagging header', () => {
  it('reads URL query parameters', () => {
    expect(parseTaggingHeader('project=blue&team=a%20b&x=1%2B1&flag=&plus=a+b')).toEqual([
      { key: 'project', value: 'blue' },
      { key: 'team', value: 'a b' },
      { key: 'x', value: '1+1' },
      { key: 'flag', value: '' },
      { key: 'plus', value: 'a b' },
    ])
    expect(parseTaggingHeader(undefined)).toEqual([])
    expect(parseTaggingHeader('')).toEqual([])
  })

  it('refuses repeated keys and bad escapes (InvalidArgument) and applies the tag rules', () => {
    const msg = "The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query parameters without tag name duplicates."
    expect(failure(() => parseTaggingHeader('a=1&a=2'))).toEqual({ status: 400, code: 'InvalidArgument', message: msg })
    expect(failure(() => parseTaggingHeader('a=%E0%A4%A'))).toEqual({ status: 400, code: 'InvalidArgument', message: msg })
    expect(failure(() => parseTaggingHeader(Array.from({ length: 11 }, (_, i) => `k${i}=v`).join('&'))).code).toBe('BadRequest')
    expect(failure(() => parseTaggingHeader('[{Key=a,Value=b}]')).code).toBe('InvalidTag')
  })
})

describe('responses and copies', () => {
  it('renders GetObjectTagging, which reads back to the same set', () => {
    const tags = [{ key: 'a+b', value: 'ü / @' }, { key: 'empty', value: '' }]
    const xml = renderTagging(tags)
    expect(xml).toContain('<Tagging xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><TagSet><Tag><Key>a+b</Key><Value>ü / @</Value></Tag><Tag><Key>empty</Key><Value></Value></Tag>')
    expect(parseTagging(xml)).toEqual(tags)
    expect(parseTagging(renderTagging([]))).toEqual([])
  })

  it('x-amz-tagging-count only when there are tags', () => {
    expect(taggingCountHeader([{ key: 'a', value: '' }, { key: 'b', value: '' }])).toEqual({ 'x-amz-tagging-count': '2' })
    expect(taggingCountHeader([])).toEqual({})
    expect(taggingCountHeader(undefined)).toEqual({})
  })

  it('x-amz-tagging-directive: COPY keeps the source tags, REPLACE takes the header', () => {
    const src = [{ key: 'a', value: '1' }]
    expect(parseTaggingDirective(undefined)).toBe('COPY')
    expect(parseTaggingDirective('replace')).toBe('REPLACE')
    expect(failure(() => parseTaggingDirective('MERGE'))).toMatchObject({ code: 'InvalidArgument' })
    expect(copyTags('COPY', src, 'b=2')).toEqual(src)
    expect(copyTags('REPLACE', src, 'b=2')).toEqual([{ key: 'b', value: '2' }])
    expect(copyTags('REPLACE', src, undefined)).toEqual([])
  })
})
