/**
 * Bucket replication as pure rules (S3 API reference: PutBucketReplication,
 * ReplicationConfiguration, ReplicationRule, Destination; S3 User Guide, "Replicating
 * objects"): the configuration XML, which rule a key falls under, and how a replica is
 * encrypted.
 *
 * What differs from Amazon S3, on purpose:
 * - Buckets here are unversioned, so replication works without versioning: a replica is the
 *   source's latest write, and the newest write of a key supersedes one still pending.
 * - Destinations are buckets on this server (`arn:aws:s3:::name`), one per key: of the
 *   Enabled rules whose prefix matches, the highest Priority wins.
 * - Deletes are not replicated (DeleteMarkerReplication is accepted only as Disabled).
 * - A replica's encryption follows the destination bucket's default encryption at the time
 *   it is written (the product brief); an object stored encrypted is never replicated into
 *   plaintext (see replicaEncryption).
 *
 * Errors are S3sseError whose code is the S3 error code.
 */
import { randomBytes } from 'node:crypto'
import { XMLBuilder } from 'fast-xml-parser'
import { elements, malformed, optionalText, parseConfigDocument, single, text, type XmlNode } from './config-xml.js'
import { S3sseError } from '../errors.js'
import { validateBucketName } from './objects.js'
import {
  etagIsPlainMd5,
  type EtagProtection,
  decideWriteEncryption,
  serviceKeyAlias,
  type BucketEncryption,
  type EncryptionDecision,
  type ServerMode,
  type StoredEncryption,
} from './sse.js'

/** Limits of a configuration (S3 API reference, PutBucketReplication / ReplicationRule). */
export const MAX_REPLICATION_RULES = 1000
export const MAX_RULE_ID_LENGTH = 255
export const MAX_RULE_PRIORITY = 2147483647
export const MAX_PREFIX_LENGTH = 1024
/** The only destination form accepted: a bucket on this server. */
export const DESTINATION_ARN_PREFIX = 'arn:aws:s3:::'
/** Storage classes S3 accepts for replicas; this server stores every replica the same way. */
export const REPLICA_STORAGE_CLASSES = [
  'STANDARD', 'REDUCED_REDUNDANCY', 'STANDARD_IA', 'ONEZONE_IA', 'INTELLIGENT_TIERING',
  'GLACIER', 'DEEP_ARCHIVE', 'OUTPOSTS', 'GLACIER_IR',
] as const

export type RuleStatus = 'Enabled' | 'Disabled'

/**
 * How a rule names its prefix, kept so GetBucketReplication answers in the shape it was
 * given: the legacy `Rule/Prefix`, `Filter/Prefix`, `Filter/And/Prefix`, or an empty `Filter`.
 */
export type PrefixForm = 'legacy' | 'filter' | 'and' | 'empty'

export interface ReplicationRule {
  id: string
  /** Required with Filter (the V2 schema); legacy rules may leave it out. */
  priority?: number
  status: RuleStatus
  prefix: string
  form: PrefixForm
  destination: {
    bucket: string
    storageClass?: string
    /** Filled in by the server when the configuration is stored: who owned the destination then. */
    owner?: string
  }
  /** SourceSelectionCriteria/SseKmsEncryptedObjects/Status, kept for GET; both kinds replicate here. */
  sseKmsEncryptedObjects?: RuleStatus
  /** Present when the request said DeleteMarkerReplication (only Disabled is accepted). */
  deleteMarkerReplication?: 'Disabled'
}

export interface ReplicationConfiguration {
  /** Accepted and returned, never used: replication runs inside the server. */
  role?: string
  rules: ReplicationRule[]
}

export type { ReplicationStatus } from './objects.js'

const XMLNS = 'http://s3.amazonaws.com/doc/2006-03-01/'
const err = (code: string, message: string) => new S3sseError(code, message)

function notImplemented(what: string): S3sseError {
  return err('NotImplemented', `${what} is not implemented by this server's replication.`)
}

// ---------------------------------------------------------------- parsing

type Node = XmlNode

/** A `<X><Status>Enabled|Disabled</Status></X>` element. */
function statusOf(v: unknown, name: string, allowed: readonly string[] = ['Status']): RuleStatus {
  const node = elements(v, name, allowed)
  const s = text(single(node, 'Status', name, true), `${name}/Status`)
  if (s !== 'Enabled' && s !== 'Disabled') throw malformed(`${name}/Status must be Enabled or Disabled, not "${s}"`)
  return s
}

function checkPrefix(prefix: string, where: string): string {
  if (prefix.length > MAX_PREFIX_LENGTH) throw err('InvalidArgument', `${where} is longer than ${MAX_PREFIX_LENGTH} characters`)
  return prefix
}

/** Filter: exactly one of Prefix, Tag, And (And: Prefix and Tags). Tags are not supported. */
function parseFilter(v: unknown, where: string): { prefix: string; form: PrefixForm } {
  const filter = elements(v, `${where} Filter`, ['Prefix', 'Tag', 'And'])
  const given = Object.keys(filter)
  if (given.length === 0) return { prefix: '', form: 'empty' }
  if (given.length > 1) throw malformed(`${where} Filter takes exactly one of Prefix, Tag or And, not ${given.join(' and ')}`)
  if (filter.Tag) throw notImplemented('Filtering by object tags (Filter/Tag)')
  if (filter.And) {
    const and = elements(single(filter, 'And', `${where} Filter`, true), `${where} Filter/And`, ['Prefix', 'Tag'])
    if (and.Tag) throw notImplemented('Filtering by object tags (Filter/And/Tag)')
    return { prefix: checkPrefix(optionalText(and, 'Prefix', `${where} Filter/And`) ?? '', `${where} Filter/And/Prefix`), form: 'and' }
  }
  return { prefix: checkPrefix(text(single(filter, 'Prefix', `${where} Filter`, true), 'Prefix'), `${where} Filter/Prefix`), form: 'filter' }
}

function parseDestination(v: unknown, where: string): ReplicationRule['destination'] {
  const dest = elements(v, `${where} Destination`, [
    'Bucket', 'StorageClass', 'Account', 'AccessControlTranslation', 'EncryptionConfiguration', 'ReplicationTime', 'Metrics',
  ])
  if (dest.Account || dest.AccessControlTranslation) {
    throw notImplemented('Replicating to another account (Destination/Account, AccessControlTranslation)')
  }
  if (dest.EncryptionConfiguration) {
    throw notImplemented("Destination/EncryptionConfiguration (a replica's encryption follows the destination bucket's default encryption)")
  }
  if (dest.ReplicationTime || dest.Metrics) throw notImplemented('Replication Time Control and replication metrics (Destination/ReplicationTime, Metrics)')
  const arn = text(single(dest, 'Bucket', `${where} Destination`, true), 'Destination/Bucket').trim()
  const name = arn.startsWith(DESTINATION_ARN_PREFIX) ? arn.slice(DESTINATION_ARN_PREFIX.length) : undefined
  if (name === undefined || name === '' || name.includes(':') || name.includes('/')) {
    throw err('InvalidArgument', `${where}: Destination/Bucket must be the ARN of a bucket on this server, arn:aws:s3:::BUCKET-NAME, not "${arn}"`)
  }
  try {
    validateBucketName(name)
  } catch {
    throw err('InvalidArgument', `${where}: Destination/Bucket names "${name}", which is not a valid bucket name`)
  }
  const out: ReplicationRule['destination'] = { bucket: name }
  const storageClass = optionalText(dest, 'StorageClass', `${where} Destination`)
  if (storageClass !== undefined) {
    if (!(REPLICA_STORAGE_CLASSES as readonly string[]).includes(storageClass)) {
      throw err('InvalidStorageClass', `${where}: Destination/StorageClass "${storageClass}" is not one of ${REPLICA_STORAGE_CLASSES.join(', ')}`)
    }
    out.storageClass = storageClass
  }
  return out
}

const RULE_ELEMENTS = [
  'ID', 'Priority', 'Prefix', 'Filter', 'Status', 'Destination', 'DeleteMarkerReplication',
  'SourceSelectionCriteria', 'ExistingObjectReplication',
] as const

function parseRule(v: unknown, index: number): ReplicationRule {
  const where = `Rule ${index + 1}`
  const rule = elements(v, where, RULE_ELEMENTS)
  const statusText = text(single(rule, 'Status', where, true), 'Status')
  if (statusText !== 'Enabled' && statusText !== 'Disabled') throw malformed(`${where} Status must be Enabled or Disabled, not "${statusText}"`)

  const legacyPrefix = optionalText(rule, 'Prefix', where)
  const filterNode = single(rule, 'Filter', where, false)
  if (legacyPrefix !== undefined && filterNode !== undefined) throw malformed(`${where} has both Prefix and Filter; use Filter/Prefix`)
  let selection: { prefix: string; form: PrefixForm }
  if (filterNode !== undefined) selection = parseFilter(filterNode, where)
  else if (legacyPrefix !== undefined) selection = { prefix: checkPrefix(legacyPrefix, `${where} Prefix`), form: 'legacy' }
  else throw malformed(`${where} needs a Filter (or the older Rule/Prefix)`)

  const id = optionalText(rule, 'ID', where)
  if (id !== undefined && id.length > MAX_RULE_ID_LENGTH) throw err('InvalidArgument', `${where}: ID is longer than ${MAX_RULE_ID_LENGTH} characters`)

  let priority: number | undefined
  const priorityText = optionalText(rule, 'Priority', where)
  if (priorityText !== undefined) {
    if (!/^\d+$/.test(priorityText)) throw malformed(`${where} Priority must be a non-negative integer, not "${priorityText}"`)
    priority = Number(priorityText)
    if (priority > MAX_RULE_PRIORITY) throw err('InvalidArgument', `${where}: Priority ${priorityText} is above the maximum ${MAX_RULE_PRIORITY}`)
  } else if (selection.form !== 'legacy') {
    // With Filter, S3's newer schema requires a priority.
    throw err('InvalidArgument', `${where}: Priority must be specified for a rule with a Filter`)
  }

  const out: ReplicationRule = {
    id: id === undefined || id === '' ? randomBytes(12).toString('base64url') : id,
    status: statusText,
    prefix: selection.prefix,
    form: selection.form,
    destination: parseDestination(single(rule, 'Destination', where, true), where),
  }
  if (priority !== undefined) out.priority = priority

  const dmr = single(rule, 'DeleteMarkerReplication', where, false)
  if (dmr !== undefined) {
    if (statusOf(dmr, `${where} DeleteMarkerReplication`) === 'Enabled') {
      throw notImplemented('Delete marker replication (DeleteMarkerReplication Enabled): buckets here are unversioned and deletes are not replicated; set it to Disabled')
    }
    out.deleteMarkerReplication = 'Disabled'
  }
  const eor = single(rule, 'ExistingObjectReplication', where, false)
  if (eor !== undefined && statusOf(eor, `${where} ExistingObjectReplication`) === 'Enabled') {
    throw notImplemented('Replicating objects written before the configuration (ExistingObjectReplication Enabled)')
  }
  const ssc = single(rule, 'SourceSelectionCriteria', where, false)
  if (ssc !== undefined) {
    const criteria = elements(ssc, `${where} SourceSelectionCriteria`, ['SseKmsEncryptedObjects', 'ReplicaModifications'])
    const sse = single(criteria, 'SseKmsEncryptedObjects', `${where} SourceSelectionCriteria`, false)
    if (sse !== undefined) out.sseKmsEncryptedObjects = statusOf(sse, `${where} SseKmsEncryptedObjects`)
    const mods = single(criteria, 'ReplicaModifications', `${where} SourceSelectionCriteria`, false)
    if (mods !== undefined && statusOf(mods, `${where} ReplicaModifications`) === 'Enabled') {
      throw notImplemented('Replicating changes made to replicas (ReplicaModifications Enabled)')
    }
  }
  return out
}

/**
 * Parses a PutBucketReplication body for `sourceBucket` and checks everything that needs no
 * other bucket: the schema (MalformedXML), what this server does not do (NotImplemented),
 * limits and consistency (InvalidArgument / InvalidRequest). Whether each destination exists
 * and may be written by the caller is the server's check.
 */
export function parseReplicationConfiguration(xml: string, sourceBucket: string): ReplicationConfiguration {
  const root = elements(parseConfigDocument(xml, 'ReplicationConfiguration'), 'ReplicationConfiguration', ['Role', 'Rule'])
  const ruleNodes = root.Rule ?? []
  if (ruleNodes.length === 0) throw malformed('ReplicationConfiguration needs at least one Rule')
  if (ruleNodes.length > MAX_REPLICATION_RULES) {
    throw err('InvalidArgument', `A replication configuration has at most ${MAX_REPLICATION_RULES} rules; this one has ${ruleNodes.length}`)
  }
  const config: ReplicationConfiguration = { rules: ruleNodes.map(parseRule) }
  const role = optionalText(root, 'Role', 'ReplicationConfiguration')
  if (role !== undefined && role !== '') config.role = role
  checkRules(config.rules, sourceBucket)
  return config
}

/** Consistency of the rules together, and with the source bucket. */
function checkRules(rules: ReplicationRule[], sourceBucket: string): void {
  const ids = new Set<string>()
  for (const r of rules) {
    if (ids.has(r.id)) throw err('InvalidArgument', `Rule ID must be unique: "${r.id}" names more than one rule`)
    ids.add(r.id)
    if (r.destination.bucket === sourceBucket) {
      throw err('InvalidRequest', `Rule "${r.id}": the destination bucket must not be the source bucket (${sourceBucket})`)
    }
  }
  const legacy = rules.filter((r) => r.form === 'legacy')
  if (legacy.length > 0 && legacy.length < rules.length) {
    throw err('InvalidRequest', 'Rules with a Filter and rules with the older Rule/Prefix cannot be mixed in one configuration')
  }
  if (legacy.length > 0) {
    // The older schema has no priorities: two rules must never both match a key.
    for (let i = 0; i < legacy.length; i++) {
      for (let j = i + 1; j < legacy.length; j++) {
        const [a, b] = [legacy[i].prefix, legacy[j].prefix]
        if (a.startsWith(b) || b.startsWith(a)) {
          throw err('InvalidArgument', `Rules "${legacy[i].id}" and "${legacy[j].id}" have overlapping prefixes ("${a}", "${b}"); use Filter with Priority to order them`)
        }
      }
    }
  } else {
    const seen = new Map<number, string>()
    for (const r of rules) {
      const other = seen.get(r.priority!)
      if (other !== undefined) throw err('InvalidArgument', `Rules "${other}" and "${r.id}" have the same Priority ${r.priority}; priorities must be unique`)
      seen.set(r.priority!, r.id)
    }
  }
}

// ---------------------------------------------------------------- rendering

const builder = new XMLBuilder({ ignoreAttributes: false, suppressEmptyNode: false })

/** GetBucketReplication body: the configuration in the shape it was given. */
export function renderReplicationConfiguration(config: ReplicationConfiguration): string {
  const rules = config.rules.map((r) => {
    const rule: Record<string, unknown> = { ID: r.id }
    if (r.priority !== undefined) rule.Priority = r.priority
    if (r.form === 'legacy') rule.Prefix = r.prefix
    else if (r.form === 'filter') rule.Filter = { Prefix: r.prefix }
    else if (r.form === 'and') rule.Filter = { And: { Prefix: r.prefix } }
    else rule.Filter = ''
    rule.Status = r.status
    if (r.sseKmsEncryptedObjects) rule.SourceSelectionCriteria = { SseKmsEncryptedObjects: { Status: r.sseKmsEncryptedObjects } }
    rule.Destination = {
      Bucket: DESTINATION_ARN_PREFIX + r.destination.bucket,
      ...(r.destination.storageClass ? { StorageClass: r.destination.storageClass } : {}),
    }
    if (r.deleteMarkerReplication) rule.DeleteMarkerReplication = { Status: r.deleteMarkerReplication }
    return rule
  })
  return builder.build({
    '?xml': { '@_version': '1.0', '@_encoding': 'UTF-8' },
    ReplicationConfiguration: { '@_xmlns': XMLNS, ...(config.role !== undefined ? { Role: config.role } : {}), Rule: rules },
  }) as string
}

/** GetBucketReplication when nothing is set (S3: 404). */
export function replicationNotFound(): S3sseError {
  return err('ReplicationConfigurationNotFoundError', 'The replication configuration was not found')
}

// ---------------------------------------------------------------- which rule, which encryption

/**
 * The rule a newly written key falls under: of the Enabled rules whose prefix the key
 * starts with, the one with the highest Priority. Null: the write is not replicated.
 */
export function replicationRuleFor(config: ReplicationConfiguration | undefined | null, key: string): ReplicationRule | null {
  let best: ReplicationRule | null = null
  for (const r of config?.rules ?? []) {
    if (r.status !== 'Enabled' || !key.startsWith(r.prefix)) continue
    if (best === null || (r.priority ?? 0) > (best.priority ?? 0)) best = r
  }
  return best
}

export interface ReplicaEncryptionInput {
  mode: ServerMode
  /** The destination bucket, and its default encryption at the time the replica is written. */
  destination: string
  destinationDefault: BucketEncryption | null
  /** How the source object is stored (undefined: plaintext). */
  source: StoredEncryption | undefined
}

/**
 * How a replica is stored. The destination bucket's default encryption decides, exactly as
 * for a write into it without SSE headers (the brief: a target bucket with default
 * encryption holds encrypted replicas whether or not the source was encrypted). When the
 * destination has none and the source is encrypted, the replica stays encrypted: data stored
 * encrypted is never written out as plaintext by replication. In oss mode it is then kept
 * under the destination bucket's service key; in aws mode under the source's algorithm, as
 * if the replica were written with that x-amz-server-side-encryption header.
 */
export function replicaEncryption(input: ReplicaEncryptionInput): EncryptionDecision | null {
  const { mode, destination, destinationDefault, source } = input
  const decision = decideWriteEncryption({ mode, bucket: destination, bucketDefault: destinationDefault, headers: {} })
  if (decision || !source) return decision
  if (mode === 'oss') return { algorithm: 'aws:kms', keyId: serviceKeyAlias(destination), createKey: true, bucketKey: false }
  return decideWriteEncryption({ mode, bucket: destination, bucketDefault: null, headers: { sse: source.algorithm } })
}

/**
 * The ETag of a replica: the source's when it says as much about the data as the replica's
 * protection allows (an MD5 stays an MD5 for plaintext and SSE-S3; an opaque value stays
 * opaque); a fresh opaque one in the shape etagOf gives encrypted objects (`hex-N`, never an
 * MD5 look-alike) when a plaintext or SSE-S3 source becomes an SSE-KMS replica, whose ETag
 * must not reveal the MD5. An SSE-KMS source replicated as SSE-S3 keeps its opaque ETag: the
 * data key is re-wrapped, the plaintext never read, so its MD5 is not known.
 */
export function replicaEtag(source: { etag: string; protection: EtagProtection }, replica: EtagProtection): string {
  if (source.protection !== 'plain' && replica === 'plain') throw new Error('replication never stores an encrypted object as plaintext')
  if (!etagIsPlainMd5(source.protection) || etagIsPlainMd5(replica)) return source.etag
  const parts = /-\d+$/.exec(source.etag)?.[0] ?? '-1'
  return randomBytes(16).toString('hex') + parts
}
