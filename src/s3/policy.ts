/**
 * Bucket policies (S3 User Guide, "Bucket policies and user policies"; IAM User Guide,
 * "IAM JSON policy elements reference" and "Policy evaluation logic"): the JSON grammar
 * people use to require encryption and to share a bucket, parsed strictly, and a request
 * evaluated against it. Pure: the caller says who is asking, for what, and the condition
 * values of the request.
 *
 * Grammar: Version ("2012-10-17" or "2008-10-17"), Id, Statement (one or a list) of Sid,
 * Effect (Allow | Deny), Principal ("*", {"AWS": "*" | name | ARN | list}), Action or
 * NotAction, Resource or NotResource (wildcards * and ?), Condition with StringEquals,
 * StringNotEquals, StringLike, StringNotLike, StringEqualsIgnoreCase, Null, Bool, IpAddress,
 * NotIpAddress (each also …IfExists) on the keys below. Anything else is MalformedPolicy.
 *
 * Evaluation: an explicit Deny that applies wins over any Allow; otherwise an applying Allow
 * allows; otherwise the policy says nothing ('default') and the caller's own rule (the
 * bucket's owner) decides.
 */
import { BlockList, isIP } from 'node:net'
import { S3sseError } from '../errors.js'

export const POLICY_VERSIONS = ['2012-10-17', '2008-10-17'] as const
/** S3 limits a bucket policy to 20 KB. */
export const MAX_POLICY_BYTES = 20 * 1024

export type Effect = 'Allow' | 'Deny'

export interface Principal {
  /** Anyone ("*" or {"AWS": "*"}). */
  anyone: boolean
  /** This server's users, by name. */
  users: string[]
}

export interface ConditionClause {
  operator: ConditionOperator
  ifExists: boolean
  /** Lower-case condition key. */
  key: string
  values: string[]
}

export interface Statement {
  sid?: string
  effect: Effect
  principal: Principal
  actions: { not: boolean; patterns: string[] }
  resources: { not: boolean; patterns: string[] }
  conditions: ConditionClause[]
}

export interface BucketPolicy {
  version: string
  id?: string
  statements: Statement[]
}

export type ConditionOperator =
  | 'StringEquals' | 'StringNotEquals' | 'StringEqualsIgnoreCase' | 'StringNotEqualsIgnoreCase'
  | 'StringLike' | 'StringNotLike' | 'Null' | 'Bool' | 'IpAddress' | 'NotIpAddress'

const OPERATORS: readonly ConditionOperator[] = [
  'StringEquals', 'StringNotEquals', 'StringEqualsIgnoreCase', 'StringNotEqualsIgnoreCase',
  'StringLike', 'StringNotLike', 'Null', 'Bool', 'IpAddress', 'NotIpAddress',
]

/** Condition keys this server can give a value for (lower case; IAM keys are case-insensitive). */
export const CONDITION_KEYS = [
  'aws:securetransport',
  'aws:sourceip',
  'aws:username',
  'aws:principaltype',
  'aws:currenttime',
  's3:x-amz-server-side-encryption',
  's3:x-amz-server-side-encryption-aws-kms-key-id',
  's3:x-amz-server-side-encryption-customer-algorithm',
  's3:x-amz-content-sha256',
  's3:signatureversion',
  's3:authtype',
  's3:prefix',
  's3:delimiter',
  's3:max-keys',
] as const

/** S3 actions (IAM Service Authorization Reference, Amazon S3), for validating Action lists. */
export const S3_ACTIONS = [
  'AbortMultipartUpload', 'CreateBucket', 'DeleteBucket', 'DeleteBucketPolicy', 'DeleteObject', 'DeleteObjectTagging',
  'DeleteObjectVersion', 'DeleteObjectVersionTagging', 'GetBucketAcl', 'GetBucketLocation', 'GetBucketPolicy',
  'GetBucketPolicyStatus', 'GetBucketTagging', 'GetBucketVersioning', 'GetEncryptionConfiguration', 'GetObject',
  'GetObjectAcl', 'GetObjectAttributes', 'GetObjectTagging', 'GetObjectVersion', 'GetObjectVersionTagging',
  'GetReplicationConfiguration', 'ListAllMyBuckets', 'ListBucket', 'ListBucketMultipartUploads', 'ListBucketVersions',
  'ListMultipartUploadParts', 'PutBucketAcl', 'PutBucketPolicy', 'PutBucketTagging', 'PutBucketVersioning',
  'PutEncryptionConfiguration', 'PutObject', 'PutObjectAcl', 'PutObjectTagging', 'PutObjectVersionTagging',
  'PutReplicationConfiguration', 'ReplicateObject', 'RestoreObject',
] as const

function malformed(message: string): S3sseError {
  return new S3sseError('MalformedPolicy', message)
}

// ---------------------------------------------------------------- wildcards

/** IAM wildcard match: * any run of characters, ? one character; `caseless` for action names. */
export function wildcardMatch(pattern: string, value: string, caseless = false): boolean {
  const p = caseless ? pattern.toLowerCase() : pattern
  const v = caseless ? value.toLowerCase() : value
  // Iterative glob with backtracking to the last '*': linear in practice, no regex built from input.
  let pi = 0
  let vi = 0
  let star = -1
  let mark = 0
  while (vi < v.length) {
    if (pi < p.length && (p[pi] === '?' || p[pi] === v[vi])) {
      pi++
      vi++
    } else if (pi < p.length && p[pi] === '*') {
      star = pi++
      mark = vi
    } else if (star >= 0) {
      pi = star + 1
      vi = ++mark
    } else {
      return false
    }
  }
  while (pi < p.length && p[pi] === '*') pi++
  return pi === p.length
}

// ---------------------------------------------------------------- parsing

export interface ParseOptions {
  /** The bucket the policy is for: every Resource must be in it. */
  bucket: string
  /** Whether a name is one of this server's users (principals must exist, as in IAM). */
  isUser: (name: string) => boolean
}

const stringList = (v: unknown, what: string): string[] => {
  const list = Array.isArray(v) ? v : [v]
  if (list.length === 0 || !list.every((x) => typeof x === 'string' && x !== '')) throw malformed(`${what} must be a string or a list of strings`)
  return list as string[]
}

/** A user named in a Principal: the bare name or an IAM user ARN (any account id). */
function principalName(s: string): string {
  const arn = /^arn:aws:iam::[^:]*:user\/(.+)$/.exec(s)
  return arn ? arn[1] : s
}

function parsePrincipal(v: unknown, opts: ParseOptions): Principal {
  if (v === '*') return { anyone: true, users: [] }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw malformed('Invalid principal in policy')
  const entries = Object.entries(v as Record<string, unknown>)
  if (entries.length === 0) throw malformed('Invalid principal in policy')
  const out: Principal = { anyone: false, users: [] }
  for (const [kind, value] of entries) {
    if (kind !== 'AWS') throw malformed(`Invalid principal in policy: ${kind} principals are not supported by this server`)
    for (const s of stringList(value, 'Principal AWS')) {
      if (s === '*') {
        out.anyone = true
        continue
      }
      const name = principalName(s)
      if (!opts.isUser(name)) throw malformed('Invalid principal in policy')
      out.users.push(name)
    }
  }
  return out
}

function parseActions(v: unknown): string[] {
  const list = stringList(v, 'Action')
  for (const a of list) {
    if (a === '*') continue
    const m = /^s3:([A-Za-z*?]+)$/i.exec(a)
    if (!m) throw malformed('Policy has invalid action')
    const name = m[1]
    if (!/[*?]/.test(name) && !S3_ACTIONS.some((k) => k.toLowerCase() === name.toLowerCase())) throw malformed('Policy has invalid action')
  }
  return list
}

function parseResources(v: unknown, bucket: string): string[] {
  const list = stringList(v, 'Resource')
  for (const r of list) {
    if (r === '*') continue
    const m = /^arn:aws:s3:::([^/]+)(\/.*)?$/.exec(r)
    if (!m || !wildcardMatch(m[1], bucket)) throw malformed('Policy has invalid resource')
  }
  return list
}

function parseCondition(v: unknown): ConditionClause[] {
  if (v === undefined) return []
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw malformed('Invalid policy syntax: Condition must be an object')
  const out: ConditionClause[] = []
  for (const [opName, block] of Object.entries(v as Record<string, unknown>)) {
    const ifExists = opName.endsWith('IfExists') && opName !== 'IfExists'
    const base = (ifExists ? opName.slice(0, -'IfExists'.length) : opName) as ConditionOperator
    if (!OPERATORS.includes(base) || (ifExists && base === 'Null')) throw malformed(`Invalid Condition type : ${opName}`)
    if (typeof block !== 'object' || block === null || Array.isArray(block)) throw malformed(`Invalid policy syntax: ${opName} must be an object`)
    for (const [rawKey, rawValues] of Object.entries(block as Record<string, unknown>)) {
      const key = rawKey.toLowerCase()
      if (!(CONDITION_KEYS as readonly string[]).includes(key)) throw malformed(`Policy has an invalid condition key: ${rawKey}`)
      const list = (Array.isArray(rawValues) ? rawValues : [rawValues]).map((x) => (typeof x === 'boolean' || typeof x === 'number' ? String(x) : x))
      if (list.length === 0 || !list.every((x) => typeof x === 'string')) throw malformed(`Invalid policy syntax: values of ${rawKey} must be strings`)
      const values = list as string[]
      if ((base === 'Null' || base === 'Bool') && !values.every((x) => x === 'true' || x === 'false')) {
        throw malformed(`Invalid policy syntax: ${opName} takes true or false`)
      }
      if (base === 'IpAddress' || base === 'NotIpAddress') {
        for (const cidr of values) if (!parseCidr(cidr)) throw malformed(`Invalid policy syntax: ${cidr} is not an IP address or CIDR block`)
      }
      out.push({ operator: base, ifExists, key, values })
    }
  }
  return out
}

function parseStatement(v: unknown, opts: ParseOptions): Statement {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw malformed('Invalid policy syntax: a Statement must be an object')
  const s = v as Record<string, unknown>
  const known = ['Sid', 'Effect', 'Principal', 'NotPrincipal', 'Action', 'NotAction', 'Resource', 'NotResource', 'Condition']
  for (const k of Object.keys(s)) if (!known.includes(k)) throw malformed(`Unknown field ${k}`)
  if (s.NotPrincipal !== undefined) throw malformed('NotPrincipal is not supported by this server')
  if (s.Sid !== undefined && typeof s.Sid !== 'string') throw malformed('Invalid policy syntax: Sid must be a string')
  if (s.Effect !== 'Allow' && s.Effect !== 'Deny') throw malformed('Invalid effect: ' + String(s.Effect))
  if (s.Principal === undefined) throw malformed('Missing required field Principal')
  if ((s.Action === undefined) === (s.NotAction === undefined)) throw malformed('Missing required field Action (exactly one of Action and NotAction)')
  if ((s.Resource === undefined) === (s.NotResource === undefined)) throw malformed('Missing required field Resource (exactly one of Resource and NotResource)')
  return {
    ...(s.Sid !== undefined ? { sid: s.Sid as string } : {}),
    effect: s.Effect,
    principal: parsePrincipal(s.Principal, opts),
    actions: { not: s.NotAction !== undefined, patterns: parseActions(s.Action ?? s.NotAction) },
    resources: { not: s.NotResource !== undefined, patterns: parseResources(s.Resource ?? s.NotResource, opts.bucket) },
    conditions: parseCondition(s.Condition),
  }
}

/** PutBucketPolicy's body; every failure is MalformedPolicy with what is wrong. */
export function parseBucketPolicy(json: string, opts: ParseOptions): BucketPolicy {
  if (Buffer.byteLength(json, 'utf8') > MAX_POLICY_BYTES) throw malformed('Policies must be at most 20 KB')
  if (!json.trimStart().startsWith('{')) throw malformed("Policies must be valid JSON and the first byte must be '{'")
  let doc: unknown
  try {
    doc = JSON.parse(json)
  } catch {
    throw malformed('This policy contains invalid Json')
  }
  const d = doc as Record<string, unknown>
  for (const k of Object.keys(d)) if (!['Version', 'Id', 'Statement'].includes(k)) throw malformed(`Unknown field ${k}`)
  const version = d.Version ?? '2008-10-17'
  if (typeof version !== 'string' || !(POLICY_VERSIONS as readonly string[]).includes(version)) throw malformed('The policy must contain a valid version string')
  if (d.Id !== undefined && typeof d.Id !== 'string') throw malformed('Invalid policy syntax: Id must be a string')
  if (d.Statement === undefined) throw malformed('Missing required field Statement')
  const list = Array.isArray(d.Statement) ? d.Statement : [d.Statement]
  if (list.length === 0) throw malformed('Missing required field Statement')
  const statements = list.map((s) => parseStatement(s, opts))
  const sids = statements.map((s) => s.sid).filter((s): s is string => s !== undefined)
  if (new Set(sids).size !== sids.length) throw malformed('Statement IDs (SID) in a single policy must be unique')
  return { version, ...(d.Id !== undefined ? { id: d.Id as string } : {}), statements }
}

// ---------------------------------------------------------------- evaluation

export interface PolicyRequest {
  /** The authenticated user's name (root included; anonymous requests do not reach here). */
  user: string
  /** `s3:GetObject`, … */
  action: string
  /** `arn:aws:s3:::bucket` or `arn:aws:s3:::bucket/key`. */
  resource: string
  /** Condition key (lower case) → the request's value(s); absent keys are left out. */
  context: Record<string, string | string[] | undefined>
}

export type PolicyDecision = 'Allow' | 'Deny' | 'default'

function parseCidr(s: string): { net: string; prefix: number; type: 'ipv4' | 'ipv6' } | undefined {
  const [addr, bits, ...rest] = s.trim().split('/')
  if (rest.length > 0) return undefined
  const family = isIP(addr)
  if (family === 0) return undefined
  const max = family === 4 ? 32 : 128
  const prefix = bits === undefined ? max : /^\d+$/.test(bits) ? Number(bits) : NaN
  if (!(prefix >= 0 && prefix <= max)) return undefined
  return { net: addr, prefix, type: family === 4 ? 'ipv4' : 'ipv6' }
}

/** An address as the socket reports it: IPv4-mapped IPv6 (::ffff:a.b.c.d) is IPv4. */
function normaliseIp(ip: string): { address: string; type: 'ipv4' | 'ipv6' } | undefined {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip)
  const address = mapped ? mapped[1] : ip
  const family = isIP(address)
  return family === 0 ? undefined : { address, type: family === 4 ? 'ipv4' : 'ipv6' }
}

function inAnyCidr(ip: string, cidrs: string[]): boolean {
  const a = normaliseIp(ip)
  if (!a) return false
  const list = new BlockList()
  for (const c of cidrs) {
    const p = parseCidr(c)!
    list.addSubnet(p.net, p.prefix, p.type)
  }
  return list.check(a.address, a.type)
}

function clauseHolds(c: ConditionClause, ctx: PolicyRequest['context']): boolean {
  const raw = ctx[c.key]
  const given = raw === undefined ? [] : Array.isArray(raw) ? raw : [raw]
  if (c.operator === 'Null') return c.values.some((v) => (v === 'true') === (given.length === 0))
  if (given.length === 0) {
    // A missing key: …IfExists holds, negated operators hold, the rest do not (IAM evaluation logic).
    if (c.ifExists) return true
    return c.operator === 'StringNotEquals' || c.operator === 'StringNotEqualsIgnoreCase' || c.operator === 'StringNotLike' || c.operator === 'NotIpAddress'
  }
  const any = (test: (g: string, v: string) => boolean) => given.some((g) => c.values.some((v) => test(g, v)))
  switch (c.operator) {
    case 'StringEquals':
      return any((g, v) => g === v)
    case 'StringNotEquals':
      return !any((g, v) => g === v)
    case 'StringEqualsIgnoreCase':
      return any((g, v) => g.toLowerCase() === v.toLowerCase())
    case 'StringNotEqualsIgnoreCase':
      return !any((g, v) => g.toLowerCase() === v.toLowerCase())
    case 'StringLike':
      return any((g, v) => wildcardMatch(v, g))
    case 'StringNotLike':
      return !any((g, v) => wildcardMatch(v, g))
    case 'Bool':
      return any((g, v) => g.toLowerCase() === v)
    case 'IpAddress':
      return given.some((g) => inAnyCidr(g, c.values))
    case 'NotIpAddress':
      return !given.some((g) => inAnyCidr(g, c.values))
  }
}

function statementApplies(s: Statement, req: PolicyRequest): boolean {
  const principal = s.principal.anyone || s.principal.users.includes(req.user)
  if (!principal) return false
  const actionHit = s.actions.patterns.some((p) => p === '*' || wildcardMatch(p, req.action, true))
  if (actionHit === s.actions.not) return false
  const resourceHit = s.resources.patterns.some((p) => p === '*' || wildcardMatch(p, req.resource))
  if (resourceHit === s.resources.not) return false
  return s.conditions.every((c) => clauseHolds(c, req.context))
}

/** What a policy says about one request: an applying Deny wins, then an applying Allow. */
export function evaluatePolicy(policy: BucketPolicy | undefined, req: PolicyRequest): PolicyDecision {
  if (!policy) return 'default'
  let allowed = false
  for (const s of policy.statements) {
    if (!statementApplies(s, req)) continue
    if (s.effect === 'Deny') return 'Deny'
    allowed = true
  }
  return allowed ? 'Allow' : 'default'
}

/** The ARN of a bucket or an object in it, as Resource patterns name them. */
export function resourceArn(bucket: string, key?: string): string {
  return key === undefined || key === '' ? `arn:aws:s3:::${bucket}` : `arn:aws:s3:::${bucket}/${key}`
}

/**
 * The IAM actions an S3 operation needs, on the bucket or the object (S3 User Guide,
 * "Amazon S3 actions"): a copy also needs s3:GetObject on its source, DeleteObjects
 * s3:DeleteObject on each key.
 */
export const OPERATION_ACTIONS: Record<string, { action: string; on: 'bucket' | 'object' }> = {
  ListObjects: { action: 's3:ListBucket', on: 'bucket' },
  ListObjectsV2: { action: 's3:ListBucket', on: 'bucket' },
  ListObjectVersions: { action: 's3:ListBucketVersions', on: 'bucket' },
  ListMultipartUploads: { action: 's3:ListBucketMultipartUploads', on: 'bucket' },
  HeadBucket: { action: 's3:ListBucket', on: 'bucket' },
  DeleteBucket: { action: 's3:DeleteBucket', on: 'bucket' },
  GetBucketLocation: { action: 's3:GetBucketLocation', on: 'bucket' },
  GetBucketVersioning: { action: 's3:GetBucketVersioning', on: 'bucket' },
  GetBucketEncryption: { action: 's3:GetEncryptionConfiguration', on: 'bucket' },
  PutBucketEncryption: { action: 's3:PutEncryptionConfiguration', on: 'bucket' },
  DeleteBucketEncryption: { action: 's3:PutEncryptionConfiguration', on: 'bucket' },
  GetBucketReplication: { action: 's3:GetReplicationConfiguration', on: 'bucket' },
  PutBucketReplication: { action: 's3:PutReplicationConfiguration', on: 'bucket' },
  DeleteBucketReplication: { action: 's3:PutReplicationConfiguration', on: 'bucket' },
  GetBucketPolicy: { action: 's3:GetBucketPolicy', on: 'bucket' },
  PutBucketPolicy: { action: 's3:PutBucketPolicy', on: 'bucket' },
  DeleteBucketPolicy: { action: 's3:DeleteBucketPolicy', on: 'bucket' },
  DeleteObjects: { action: 's3:DeleteObject', on: 'object' },
  PostObject: { action: 's3:PutObject', on: 'object' },
  PutObject: { action: 's3:PutObject', on: 'object' },
  CopyObject: { action: 's3:PutObject', on: 'object' },
  GetObject: { action: 's3:GetObject', on: 'object' },
  HeadObject: { action: 's3:GetObject', on: 'object' },
  DeleteObject: { action: 's3:DeleteObject', on: 'object' },
  CreateMultipartUpload: { action: 's3:PutObject', on: 'object' },
  UploadPart: { action: 's3:PutObject', on: 'object' },
  UploadPartCopy: { action: 's3:PutObject', on: 'object' },
  CompleteMultipartUpload: { action: 's3:PutObject', on: 'object' },
  AbortMultipartUpload: { action: 's3:AbortMultipartUpload', on: 'object' },
  ListParts: { action: 's3:ListMultipartUploadParts', on: 'object' },
  GetObjectTagging: { action: 's3:GetObjectTagging', on: 'object' },
  PutObjectTagging: { action: 's3:PutObjectTagging', on: 'object' },
  DeleteObjectTagging: { action: 's3:DeleteObjectTagging', on: 'object' },
}
