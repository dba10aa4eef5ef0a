/**
 * Replication rules as pure functions: the PutBucketReplication body, which rule a key
 * falls under, and the encryption and ETag of a replica.
 */
import { describe, expect, it } from 'vitest'
import { S3sseError } from '../../src/index.js'
import {
  MAX_REPLICATION_RULES,
  parseReplicationConfiguration,
  renderReplicationConfiguration,
  replicaEncryption,
  replicaEtag,
  replicationRuleFor,
} from '../../src/s3/replication.js'
import { serviceKeyAlias } from '../../src/s3/sse.js'

const config = (rules: string, role = '') =>
  `<?xml version="1.0" encoding="UTF-8"?><ReplicationConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">${role}${rules}</ReplicationConfiguration>`
const dest = (bucket = 'dst', extra = '') => `<Destination><Bucket>arn:aws:s3:::${bucket}</Bucket>${extra}</Destination>`
const rule = (body: string) => `<Rule>${body}</Rule>`
const v2 = (id: string, priority: number, prefix: string, more = '') =>
  rule(`<ID>${id}</ID><Priority>${priority}</Priority><Filter><Prefix>${prefix}</Prefix></Filter><Status>Enabled</Status>${dest()}${more}`)

function failure(f: () => unknown): S3sseError {
  try {
    f()
  } catch (e) {
    expect(e).toBeInstanceOf(S3sseError)
    return e as S3sseError
  }
  throw new Error('expected a failure')
}

const parse = (xml: string) => parseReplicationConfiguration(xml, 'src')

describe('PutBucketReplication body', () => {
  it('reads the newer schema: ID, Priority, Filter/Prefix, Status, Destination, StorageClass, DeleteMarkerReplication, SseKmsEncryptedObjects, Role', () => {
    const c = parse(config(
      rule(`<ID>logs</ID><Priority>7</Priority><Filter><Prefix>logs/</Prefix></Filter><Status>Enabled</Status>
        <SourceSelectionCriteria><SseKmsEncryptedObjects><Status>Enabled</Status></SseKmsEncryptedObjects></SourceSelectionCriteria>
        ${dest('dst', '<StorageClass>STANDARD_IA</StorageClass>')}<DeleteMarkerReplication><Status>Disabled</Status></DeleteMarkerReplication>`),
      '<Role>arn:aws:iam::123456789012:role/replication</Role>',
    ))
    expect(c).toEqual({
      role: 'arn:aws:iam::123456789012:role/replication',
      rules: [{
        id: 'logs', priority: 7, status: 'Enabled', prefix: 'logs/', form: 'filter',
        destination: { bucket: 'dst', storageClass: 'STANDARD_IA' },
        sseKmsEncryptedObjects: 'Enabled', deleteMarkerReplication: 'Disabled',
      }],
    })
  })

  it('reads Filter/And/Prefix, an empty Filter, and the older Rule/Prefix (without Priority); a missing ID is generated', () => {
    const and = parse(config(rule(`<Priority>1</Priority><Filter><And><Prefix>a/</Prefix></And></Filter><Status>Disabled</Status>${dest()}`)))
    expect(and.rules[0]).toMatchObject({ prefix: 'a/', form: 'and', status: 'Disabled', priority: 1 })
    expect(and.rules[0].id).toMatch(/^[A-Za-z0-9_-]{16}$/)
    expect(parse(config(rule(`<ID>x</ID><Priority>0</Priority><Filter/><Status>Enabled</Status>${dest()}`))).rules[0]).toMatchObject({ prefix: '', form: 'empty' })
    const legacy = parse(config(rule(`<ID>old</ID><Prefix>docs/</Prefix><Status>Enabled</Status>${dest()}`)))
    expect(legacy.rules[0]).toEqual({ id: 'old', status: 'Enabled', prefix: 'docs/', form: 'legacy', destination: { bucket: 'dst' } })
  })

  it('renders what it read, in the same shape', () => {
    for (const body of [
      v2('a', 3, 'x/', '<DeleteMarkerReplication><Status>Disabled</Status></DeleteMarkerReplication>') + v2('b', 9, ''),
      rule(`<ID>and</ID><Priority>2</Priority><Filter><And><Prefix>p</Prefix></And></Filter><Status>Enabled</Status>${dest('dst2', '<StorageClass>GLACIER</StorageClass>')}`),
      rule(`<ID>e</ID><Priority>2</Priority><Filter></Filter><Status>Disabled</Status>${dest()}`),
      rule(`<ID>old</ID><Prefix>q/</Prefix><Status>Enabled</Status>${dest()}`) + rule(`<ID>old2</ID><Prefix>r/</Prefix><Status>Enabled</Status>${dest()}`),
    ]) {
      const first = parse(config(body, '<Role>role-arn</Role>'))
      expect(parse(renderReplicationConfiguration(first))).toEqual(first)
    }
  })

  it('schema errors are MalformedXML and say what is wrong', () => {
    const cases: Array<[string, RegExp]> = [
      ['', /empty/],
      ['<ReplicationConfiguration><Rule>', /well-formed/],
      ['<Replication/>', /root element/],
      [config(''), /at least one Rule/],
      [config(rule(`<ID>a</ID><Priority>1</Priority><Filter><Prefix/></Filter>${dest()}`)), /needs Status/],
      [config(rule(`<ID>a</ID><Priority>1</Priority><Filter><Prefix/></Filter><Status>On</Status>${dest()}`)), /Status must be Enabled or Disabled/],
      [config(rule('<ID>a</ID><Priority>1</Priority><Filter><Prefix/></Filter><Status>Enabled</Status>')), /needs Destination/],
      [config(rule('<ID>a</ID><Priority>1</Priority><Filter><Prefix/></Filter><Status>Enabled</Status><Destination/>')), /needs Bucket/],
      [config(rule(`<ID>a</ID><Status>Enabled</Status>${dest()}`)), /needs a Filter/],
      [config(rule(`<ID>a</ID><Prefix>x</Prefix><Priority>1</Priority><Filter><Prefix/></Filter><Status>Enabled</Status>${dest()}`)), /both Prefix and Filter/],
      [config(rule(`<ID>a</ID><Priority>high</Priority><Filter><Prefix/></Filter><Status>Enabled</Status>${dest()}`)), /Priority must be a non-negative integer/],
      [config(rule(`<ID>a</ID><ID>b</ID><Priority>1</Priority><Filter><Prefix/></Filter><Status>Enabled</Status>${dest()}`)), /ID may appear only once/],
      [config(rule(`<ID>a</ID><Priority>1</Priority><Filter><Prefix/><And><Prefix/></And></Filter><Status>Enabled</Status>${dest()}`)), /exactly one of Prefix, Tag or And/],
      [config(rule(`<ID>a</ID><Priority>1</Priority><Filter><Prefix/></Filter><Status>Enabled</Status><Colour>red</Colour>${dest()}`)), /does not take Colour/],
    ]
    for (const [xml, message] of cases) {
      const e = failure(() => parse(xml))
      expect(e.code, xml).toBe('MalformedXML')
      expect(e.message, xml).toMatch(message)
    }
  })

  it('limits and consistency are InvalidArgument or InvalidRequest, naming the rule', () => {
    const cases: Array<[string, string, RegExp]> = [
      [config(v2('same', 1, 'a') + v2('same', 2, 'b')), 'InvalidArgument', /ID must be unique: "same"/],
      [config(v2('a', 5, 'a') + v2('b', 5, 'b')), 'InvalidArgument', /"a" and "b" have the same Priority 5/],
      [config(rule(`<ID>a</ID><Filter><Prefix/></Filter><Status>Enabled</Status>${dest()}`)), 'InvalidArgument', /Priority must be specified/],
      [config(rule(`<ID>a</ID><Priority>2147483648</Priority><Filter><Prefix/></Filter><Status>Enabled</Status>${dest()}`)), 'InvalidArgument', /above the maximum/],
      [config(rule(`<ID>${'i'.repeat(256)}</ID><Priority>1</Priority><Filter><Prefix/></Filter><Status>Enabled</Status>${dest()}`)), 'InvalidArgument', /longer than 255/],
      [config(rule(`<ID>a</ID><Priority>1</Priority><Filter><Prefix>${'p'.repeat(1025)}</Prefix></Filter><Status>Enabled</Status>${dest()}`)), 'InvalidArgument', /longer than 1024/],
      [config(rule(`<ID>a</ID><Priority>1</Priority><Filter><Prefix/></Filter><Status>Enabled</Status><Destination><Bucket>dst</Bucket></Destination>`)), 'InvalidArgument', /arn:aws:s3:::BUCKET-NAME, not "dst"/],
      [config(rule(`<ID>a</ID><Priority>1</Priority><Filter><Prefix/></Filter><Status>Enabled</Status><Destination><Bucket>arn:aws:s3:eu-west-1:123:dst</Bucket></Destination>`)), 'InvalidArgument', /a bucket on this server/],
      [config(rule(`<ID>a</ID><Priority>1</Priority><Filter><Prefix/></Filter><Status>Enabled</Status>${dest('Bad_Name')}`)), 'InvalidArgument', /not a valid bucket name/],
      [config(rule(`<ID>a</ID><Priority>1</Priority><Filter><Prefix/></Filter><Status>Enabled</Status>${dest('src')}`)), 'InvalidRequest', /must not be the source bucket/],
      [config(v2('new', 1, 'a') + rule(`<ID>old</ID><Prefix>b</Prefix><Status>Enabled</Status>${dest()}`)), 'InvalidRequest', /cannot be mixed/],
      [config(rule(`<ID>x</ID><Prefix>logs/</Prefix><Status>Enabled</Status>${dest()}`) + rule(`<ID>y</ID><Prefix>logs/2024/</Prefix><Status>Enabled</Status>${dest()}`)), 'InvalidArgument', /"x" and "y" have overlapping prefixes/],
      [config(rule(`<ID>a</ID><Priority>1</Priority><Filter><Prefix/></Filter><Status>Enabled</Status>${dest('dst', '<StorageClass>COLD</StorageClass>')}`)), 'InvalidStorageClass', /"COLD" is not one of/],
    ]
    for (const [xml, code, message] of cases) {
      const e = failure(() => parse(xml))
      expect(e.code, xml.slice(0, 200)).toBe(code)
      expect(e.message, xml.slice(0, 200)).toMatch(message)
    }
    const many = Array.from({ length: MAX_REPLICATION_RULES + 1 }, (_, i) => v2(`r${i}`, i, `p${i}/`)).join('')
    const e = failure(() => parse(config(many)))
    expect(e.code).toBe('InvalidArgument')
    expect(e.message).toMatch(/at most 1000 rules; this one has 1001/)
    expect(parse(config(many.slice(0, many.lastIndexOf('<Rule>')))).rules).toHaveLength(1000)
  })

  it('what this server does not do is NotImplemented, saying what', () => {
    const cases: Array<[string, RegExp]> = [
      [`<Filter><Tag><Key>k</Key><Value>v</Value></Tag></Filter><Status>Enabled</Status>${dest()}`, /object tags/],
      [`<Filter><And><Prefix>a</Prefix><Tag><Key>k</Key><Value>v</Value></Tag></And></Filter><Status>Enabled</Status>${dest()}`, /object tags/],
      [`<Filter/><Status>Enabled</Status>${dest()}<DeleteMarkerReplication><Status>Enabled</Status></DeleteMarkerReplication>`, /Delete marker replication.*deletes are not replicated/],
      [`<Filter/><Status>Enabled</Status>${dest('dst', '<EncryptionConfiguration><ReplicaKmsKeyID>k</ReplicaKmsKeyID></EncryptionConfiguration>')}`, /follows the destination bucket's default encryption/],
      [`<Filter/><Status>Enabled</Status>${dest('dst', '<Account>123456789012</Account>')}`, /another account/],
      [`<Filter/><Status>Enabled</Status>${dest('dst', '<ReplicationTime><Status>Enabled</Status><Time><Minutes>15</Minutes></Time></ReplicationTime>')}`, /Replication Time Control/],
      [`<Filter/><Status>Enabled</Status>${dest()}<ExistingObjectReplication><Status>Enabled</Status></ExistingObjectReplication>`, /written before the configuration/],
      [`<Filter/><Status>Enabled</Status><SourceSelectionCriteria><ReplicaModifications><Status>Enabled</Status></ReplicaModifications></SourceSelectionCriteria>${dest()}`, /changes made to replicas/],
    ]
    for (const [body, message] of cases) {
      const e = failure(() => parse(config(rule(`<ID>a</ID><Priority>1</Priority>${body}`))))
      expect(e.code, body).toBe('NotImplemented')
      expect(e.message, body).toMatch(message)
    }
    // The same elements with Disabled are accepted.
    expect(parse(config(rule(`<ID>a</ID><Priority>1</Priority><Filter/><Status>Enabled</Status>${dest()}<ExistingObjectReplication><Status>Disabled</Status></ExistingObjectReplication>`))).rules).toHaveLength(1)
  })
})

describe('which rule a key falls under', () => {
  const c = parse(config(
    v2('all', 1, '') +
    v2('logs', 5, 'logs/') +
    rule(`<ID>off</ID><Priority>9</Priority><Filter><Prefix>logs/debug/</Prefix></Filter><Status>Disabled</Status>${dest('other')}`) +
    v2('important', 7, 'logs/important/'),
  ))

  it('the highest Priority among Enabled rules whose prefix matches', () => {
    expect(replicationRuleFor(c, 'photo.jpg')?.id).toBe('all')
    expect(replicationRuleFor(c, 'logs/a')?.id).toBe('logs')
    expect(replicationRuleFor(c, 'logs/important/a')?.id).toBe('important')
    expect(replicationRuleFor(c, 'logs/debug/a')?.id).toBe('logs') // the Disabled rule is skipped
    expect(replicationRuleFor(c, 'Logs/a')?.id).toBe('all') // prefixes are case-sensitive
  })

  it('nothing without a configuration or a matching Enabled rule', () => {
    expect(replicationRuleFor(undefined, 'k')).toBeNull()
    const only = parse(config(v2('x', 1, 'x/')))
    expect(replicationRuleFor(only, 'y/1')).toBeNull()
  })
})

describe('how a replica is encrypted', () => {
  const kmsDefault = { algorithm: 'aws:kms' as const, bucketKeyEnabled: false }
  const sourceKms = { algorithm: 'aws:kms' as const, keyId: 'some-key' }

  it('oss mode: an encrypted target encrypts every replica under its own service key, whatever the source', () => {
    for (const source of [undefined, sourceKms]) {
      expect(replicaEncryption({ mode: 'oss', destination: 'dst', destinationDefault: kmsDefault, source })).toEqual({
        algorithm: 'aws:kms', keyId: serviceKeyAlias('dst'), createKey: true, bucketKey: false,
      })
    }
  })

  it('oss mode: a plain target keeps a plain source plain, and an encrypted source encrypted under the target service key', () => {
    expect(replicaEncryption({ mode: 'oss', destination: 'dst', destinationDefault: null, source: undefined })).toBeNull()
    expect(replicaEncryption({ mode: 'oss', destination: 'dst', destinationDefault: null, source: sourceKms })).toEqual({
      algorithm: 'aws:kms', keyId: serviceKeyAlias('dst'), createKey: true, bucketKey: false,
    })
  })

  it("aws mode: the target's default decides; a plain target keeps the source's algorithm", () => {
    expect(replicaEncryption({ mode: 'aws', destination: 'dst', destinationDefault: { algorithm: 'AES256', bucketKeyEnabled: false }, source: undefined }))
      .toMatchObject({ algorithm: 'AES256' })
    expect(replicaEncryption({ mode: 'aws', destination: 'dst', destinationDefault: { algorithm: 'aws:kms', kmsMasterKeyId: 'team', bucketKeyEnabled: true }, source: undefined }))
      .toEqual({ algorithm: 'aws:kms', keyId: 'team', keyName: 'team', createKey: false, bucketKey: true })
    expect(replicaEncryption({ mode: 'aws', destination: 'dst', destinationDefault: null, source: { algorithm: 'AES256', keyId: 'k' } }))
      .toMatchObject({ algorithm: 'AES256' })
    expect(replicaEncryption({ mode: 'aws', destination: 'dst', destinationDefault: null, source: sourceKms })).toMatchObject({ algorithm: 'aws:kms' })
    expect(replicaEncryption({ mode: 'aws', destination: 'dst', destinationDefault: null, source: undefined })).toBeNull()
  })

  it("a replica's ETag is the source's unless an MD5 ETag would end up on an SSE-KMS replica", () => {
    const md5 = '0123456789abcdef0123456789abcdef'
    expect(replicaEtag({ etag: md5, protection: 'plain' }, 'plain')).toBe(md5)
    expect(replicaEtag({ etag: md5, protection: 'plain' }, 'AES256')).toBe(md5)
    expect(replicaEtag({ etag: md5, protection: 'AES256' }, 'AES256')).toBe(md5)
    expect(replicaEtag({ etag: 'opaque-1', protection: 'aws:kms' }, 'aws:kms')).toBe('opaque-1')
    expect(replicaEtag({ etag: 'opaque-1', protection: 'aws:kms' }, 'AES256')).toBe('opaque-1')
    const fresh = replicaEtag({ etag: md5, protection: 'plain' }, 'aws:kms')
    expect(fresh).toMatch(/^[0-9a-f]{32}-1$/)
    expect(fresh).not.toContain(md5)
    expect(replicaEtag({ etag: md5, protection: 'AES256' }, 'aws:kms')).toMatch(/^[0-9a-f]{32}-1$/)
    expect(replicaEtag({ etag: `${md5}-3`, protection: 'plain' }, 'aws:kms')).toMatch(/^[0-9a-f]{32}-3$/)
    expect(() => replicaEtag({ etag: 'x', protection: 'aws:kms' }, 'plain')).toThrow(/never stores an encrypted object as plaintext/)
  })
})
