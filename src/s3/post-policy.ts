/**
 * POST policy evaluation for browser uploads (S3 API reference, "Creating a POST policy"):
 * expiration, and every condition against the form fields; every form field must be
 * covered by a condition. Pure: fields in, error or the allowed size range out.
 */
import { s3Error } from './errors.js'

export interface PolicyResult {
  /** content-length-range, inclusive. */
  minSize: number
  maxSize: number
}

/** Bounds on the decoded policy (S3 keeps a form's fields before the file under 20 KB). */
export const MAX_POLICY_SIZE = 64 * 1024
export const MAX_POLICY_DEPTH = 4

/** The deepest nesting of arrays and objects in JSON text (brackets inside strings do not count). */
function nestingDepth(text: string): number {
  let depth = 0
  let max = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      if (c === 0x5c) i++ // backslash: skip the escaped character
      else if (c === 0x22) inString = false
    } else if (c === 0x22) inString = true
    else if (c === 0x5b || c === 0x7b) max = Math.max(max, ++depth)
    else if (c === 0x5d || c === 0x7d) depth--
  }
  return max
}

/** Fields that never need a condition (SigV4's x-amz-signature; SigV2's AWSAccessKeyId and signature). */
const EXEMPT = new Set(['x-amz-signature', 'file', 'policy', 'awsaccesskeyid', 'signature'])

function denied(reason: string): Error {
  return s3Error('AccessDenied', `Invalid according to Policy: ${reason}`)
}

/**
 * @param fields form fields by lowercase name (the bucket under `bucket`), as sent
 * @param now epoch ms
 */
export function evaluatePostPolicy(policyBase64: string, fields: Map<string, string>, now: number): PolicyResult {
  const text = Buffer.from(policyBase64, 'base64').toString('utf8')
  if (text.length > MAX_POLICY_SIZE) throw s3Error('InvalidPolicyDocument', `Invalid Policy: longer than ${MAX_POLICY_SIZE} bytes.`)
  // A policy is an object of a conditions array of arrays or objects: nothing deeper parses
  // into a valid one, and a deep nest must not reach a recursive parser or printer.
  if (nestingDepth(text) > MAX_POLICY_DEPTH) throw s3Error('InvalidPolicyDocument', 'Invalid Policy: nested too deeply.')
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    throw s3Error('InvalidPolicyDocument', 'Invalid Policy: Invalid JSON.')
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw s3Error('InvalidPolicyDocument', 'Invalid Policy: the policy must be a JSON object.')
  }
  const policy = parsed as { expiration?: unknown; conditions?: unknown }
  if (typeof policy.expiration !== 'string' || Number.isNaN(Date.parse(policy.expiration))) {
    throw s3Error('InvalidPolicyDocument', 'Invalid Policy: Invalid \'expiration\' value.')
  }
  if (Date.parse(policy.expiration) < now) throw denied('Policy expired.')
  if (!Array.isArray(policy.conditions)) throw s3Error('InvalidPolicyDocument', 'Invalid Policy: Policy missing conditions.')

  const covered = new Set<string>()
  let minSize = 0
  let maxSize = Number.MAX_SAFE_INTEGER
  const check = (op: string, rawName: string, value: string) => {
    const name = rawName.replace(/^\$/, '').toLowerCase()
    covered.add(name)
    const actual = fields.get(name) ?? ''
    if (op === 'eq' && actual !== value) throw denied(`Policy Condition failed: ["eq", "$${name}", "${value}"]`)
    if (op === 'starts-with') {
      // Content-Type may list several values; each must start with the prefix.
      const values = name === 'content-type' ? actual.split(',').map((v) => v.trim()) : [actual]
      if (!values.every((v) => v.startsWith(value))) throw denied(`Policy Condition failed: ["starts-with", "$${name}", "${value}"]`)
    }
  }
  for (const cond of policy.conditions as unknown[]) {
    if (Array.isArray(cond)) {
      const [op, a, b] = cond as unknown[]
      const opName = String(op).toLowerCase()
      if (opName === 'content-length-range') {
        minSize = Number(a)
        maxSize = Number(b)
        if (!Number.isInteger(minSize) || !Number.isInteger(maxSize) || minSize < 0 || maxSize < minSize) {
          throw s3Error('InvalidPolicyDocument', 'Invalid Policy: Invalid content-length-range.')
        }
        continue
      }
      if ((opName !== 'eq' && opName !== 'starts-with') || typeof a !== 'string' || typeof b !== 'string') {
        throw s3Error('InvalidPolicyDocument', `Invalid Policy: Invalid condition ${JSON.stringify(cond).slice(0, 200)}.`)
      }
      check(opName, a, b)
    } else if (cond !== null && typeof cond === 'object') {
      const entries = Object.entries(cond as Record<string, unknown>)
      if (entries.length !== 1 || typeof entries[0][1] !== 'string') {
        throw s3Error('InvalidPolicyDocument', `Invalid Policy: Invalid condition ${JSON.stringify(cond).slice(0, 200)}.`)
      }
      check('eq', entries[0][0], entries[0][1] as string)
    } else {
      throw s3Error('InvalidPolicyDocument', 'Invalid Policy: Invalid condition.')
    }
  }
  for (const name of fields.keys()) {
    if (EXEMPT.has(name) || name.startsWith('x-ignore-') || name === 'bucket' || covered.has(name)) continue
    throw denied(`Extra input fields: ${name}`)
  }
  return { minSize, maxSize }
}

/** The key field may embed `${filename}`, replaced by the uploaded file's name. */
export function postObjectKey(template: string, filename: string | undefined): string {
  return template.split('${filename}').join(filename ?? '')
}
