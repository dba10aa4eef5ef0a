/**
 * Character data in XML request bodies, decoded the way XML 1.0 says (§2.2, §2.11, §4.1,
 * §4.6) — with bodies exactly as Go's encoding/xml writes them (EscapeText: `"` → `&#34;`,
 * `'` → `&#39;`, `&` → `&amp;`, `<` → `&lt;`, `>` → `&gt;`, tab → `&#x9;`, LF → `&#xA;`,
 * CR → `&#xD;`), which is what rclone, minio-go and aws-sdk-go send.
 */
import { describe, expect, it } from 'vitest'
import { S3sseError } from '../../src/errors.js'
import { parseBucketEncryption } from '../../src/s3/sse.js'
import { parseReplicationConfiguration } from '../../src/s3/replication.js'
import { decodeCharacterData, parseRequestXml } from '../../src/s3/xml-read.js'
import { parseCompleteMultipart, parseCreateBucket, parseDeleteObjects } from '../../src/s3/xml.js'

function code(fn: () => unknown): string | undefined {
  try {
    fn()
    return undefined
  } catch (err) {
    return err instanceof S3sseError ? err.code : String(err)
  }
}

/** What Go's xml.EscapeText writes for a string (encoding/xml, escapeText with escapeNewline). */
function goEscape(s: string): string {
  return s.replace(/[&<>"'\t\n\r]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&#34;', "'": '&#39;', '\t': '&#x9;', '\n': '&#xA;', '\r': '&#xD;' })[c]!)
}

describe('character references', () => {
  it('decodes the predefined entities and decimal and hex references', () => {
    expect(decodeCharacterData('&lt;&gt;&amp;&apos;&quot;')).toBe(`<>&'"`)
    expect(decodeCharacterData('&#34;&#39;&#x41;&#65;')).toBe(`"'AA`)
    expect(decodeCharacterData('&#x1F600;&#128512;')).toBe('\u{1F600}\u{1F600}')
    expect(decodeCharacterData('&#x9;&#xA;&#xD;')).toBe('\t\n\r')
  })

  it('decodes once: an escaped reference stays a reference', () => {
    expect(decodeCharacterData('&amp;#34;')).toBe('&#34;')
    expect(decodeCharacterData('&amp;amp;')).toBe('&amp;')
  })

  it('normalises literal line ends but keeps an escaped CR', () => {
    expect(decodeCharacterData('a\r\nb\rc')).toBe('a\nb\nc')
    expect(decodeCharacterData('a&#xD;&#xA;b')).toBe('a\r\nb')
  })

  it('refuses unknown entities, bare ampersands and references to non-characters', () => {
    for (const bad of ['&nbsp;', '&copy;', 'a & b', '&', '&#;', '&#x;', '&#0;', '&#x1;', '&#xD800;', '&#xFFFE;', '&#x110000;', '&#99999999;', '&#xZZ;']) {
      expect(code(() => decodeCharacterData(bad)), bad).toBe('MalformedXML')
    }
  })

  it('keeps CDATA verbatim and joins it with the text around it', () => {
    const doc = parseRequestXml('<Delete><Object><Key>a&amp;<![CDATA[&amp;<x>]]>b</Key></Object></Delete>')
    expect(doc.root).toEqual({ Object: [{ Key: ['a&&amp;<x>b'] }] })
  })

  it('refuses a DOCTYPE (no entity declarations in request bodies)', () => {
    const xml = '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x "boom">]><Delete><Object><Key>&x;</Key></Object></Delete>'
    expect(code(() => parseDeleteObjects(xml))).toBe('MalformedXML')
  })

  it('accepts a byte-order mark and comments', () => {
    expect(parseDeleteObjects('\uFEFF<Delete><!-- c --><Object><Key>k</Key></Object></Delete>').keys).toEqual(['k'])
  })
})

describe('request bodies as Go writes them', () => {
  it('CompleteMultipartUpload from rclone 1.60 (captured with --dump bodies)', () => {
    const body =
      '<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Part><ETag>&#34;11b6a93598cf765a1d3361bb07a157b4&#34;</ETag>' +
      '<PartNumber>1</PartNumber></Part><Part><ETag>&#34;06126401d6866fc4c1904566a7e88de4&#34;</ETag><PartNumber>2</PartNumber></Part></CompleteMultipartUpload>'
    expect(parseCompleteMultipart(body)).toEqual([
      { partNumber: 1, etag: '"11b6a93598cf765a1d3361bb07a157b4"', checksums: {} },
      { partNumber: 2, etag: '"06126401d6866fc4c1904566a7e88de4"', checksums: {} },
    ])
  })

  it('DeleteObjects with keys that need escaping', () => {
    const keys = ["it's.txt", 'say "hi".txt', 'a&b<c>.txt', 'tab\there', 'line\nbreak', 'cr\rkey', ' spaced ']
    const body =
      '<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/">' +
      keys.map((k) => `<Object><Key>${goEscape(k)}</Key></Object>`).join('') +
      '<Quiet>false</Quiet></Delete>'
    expect(body).toContain('<Key>it&#39;s.txt</Key>')
    expect(parseDeleteObjects(body)).toEqual({ quiet: false, keys })
  })

  it('CreateBucketConfiguration and the configuration documents', () => {
    expect(parseCreateBucket('<CreateBucketConfiguration><LocationConstraint>us&#45;east&#x2D;1</LocationConstraint></CreateBucketConfiguration>'))
      .toEqual({ locationConstraint: 'us-east-1' })
    const enc = parseBucketEncryption(
      '<ServerSideEncryptionConfiguration><Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>aws&#58;kms</SSEAlgorithm>' +
        '<KMSMasterKeyID>alias/team&#39;s</KMSMasterKeyID></ApplyServerSideEncryptionByDefault></Rule></ServerSideEncryptionConfiguration>',
      'aws',
    )
    expect(enc).toMatchObject({ algorithm: 'aws:kms', kmsMasterKeyId: "alias/team's" })
    const rep = parseReplicationConfiguration(
      '<ReplicationConfiguration><Role></Role><Rule><ID>r&#34;1</ID><Status>Enabled</Status><Prefix>it&#39;s/</Prefix>' +
        '<Destination><Bucket>arn:aws:s3:::target</Bucket></Destination></Rule></ReplicationConfiguration>',
      'source',
    )
    expect(rep.rules[0]).toMatchObject({ id: 'r"1', prefix: "it's/" })
  })

  it('a malformed reference anywhere in a body is MalformedXML', () => {
    expect(code(() => parseDeleteObjects('<Delete><Object><Key>a&nbsp;b</Key></Object></Delete>'))).toBe('MalformedXML')
    expect(code(() => parseCompleteMultipart('<CompleteMultipartUpload><Part><ETag>&#0;</ETag><PartNumber>1</PartNumber></Part></CompleteMultipartUpload>'))).toBe('MalformedXML')
    expect(code(() => parseBucketEncryption('<ServerSideEncryptionConfiguration><Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>aws:kms&bogus;</SSEAlgorithm></ApplyServerSideEncryptionByDefault></Rule></ServerSideEncryptionConfiguration>', 'aws'))).toBe('MalformedXML')
  })

  it('an element given twice where one is allowed is MalformedXML', () => {
    expect(code(() => parseDeleteObjects('<Delete><Object><Key>a</Key><Key>b</Key></Object></Delete>'))).toBe('MalformedXML')
    expect(code(() => parseCompleteMultipart('<CompleteMultipartUpload><Part><ETag>x</ETag><PartNumber>1</PartNumber><PartNumber>2</PartNumber></Part></CompleteMultipartUpload>'))).toBe('MalformedXML')
  })
})
