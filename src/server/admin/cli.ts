/**
 * `s3-sse kms usage [KEY]`: how many objects (and open multipart uploads) of the running server
 * have their data keys wrapped under each version of each KMS key, from its admin API. A key
 * version nothing uses any more can be retired: after `s3-sse job start rewrap`, the old
 * versions (or, with --to-key, the old key) show 0 and the key can be disabled.
 */
import { parseArgs } from 'node:util'
import { isS3sseError } from '../../errors.js'
import type { KeyUsage } from '../meta/index.js'
import { adminRequest, AdminError, CONNECTION_OPTIONS, CONNECTION_USAGE, resolveConnection } from './client.js'

export const KMS_USAGE_USAGE = `usage: s3-sse kms usage [KEY] [--json] [connection options]

  Objects and open multipart uploads per KMS key version, from the running server.
  KEY (a key id or alias) shows that key only.

${CONNECTION_USAGE}`

interface KeyListing {
  keyId: string
  alias: string | null
  current: number
  versions: number
  enabled: boolean
}

export async function kmsUsageCommand(argv: string[], io = { out: (t: string) => process.stdout.write(t), err: (t: string) => process.stderr.write(t) }, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let parsed
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, options: { ...CONNECTION_OPTIONS, json: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h', default: false } } })
  } catch (e) {
    io.err(`s3-sse kms usage: ${(e as Error).message}\n${KMS_USAGE_USAGE}`)
    return 2
  }
  const { values, positionals } = parsed
  if (values.help) {
    io.out(KMS_USAGE_USAGE)
    return 0
  }
  if (positionals.length > 1) {
    io.err(`s3-sse kms usage: takes at most one KEY\n${KMS_USAGE_USAGE}`)
    return 2
  }
  const wanted = positionals[0]?.replace(/^alias\//, '')
  try {
    const conn = resolveConnection({ endpoint: values.endpoint, dataDir: values['data-dir'], ca: values.ca, region: values.region }, env)
    const answer = (await adminRequest(conn, 'GET', '/kms/usage')) as { usage: KeyUsage[]; keys?: KeyListing[] }
    const keys = new Map((answer.keys ?? []).map((k) => [k.keyId, k]))
    const matches = (keyId: string) => wanted === undefined || keyId === wanted || keys.get(keyId)?.alias?.replace(/^alias\//, '') === wanted
    const rows = answer.usage.filter((u) => matches(u.keyId))
    // Versions of a known key that nothing uses show as 0, so "can I disable it" has an answer.
    for (const k of keys.values()) {
      if (!matches(k.keyId)) continue
      for (let v = 1; v <= k.versions; v++) {
        if (!rows.some((r) => r.keyId === k.keyId && r.version === v)) rows.push({ keyId: k.keyId, version: v, objects: 0, bytes: 0, uploads: 0 })
      }
    }
    rows.sort((a, b) => (a.keyId < b.keyId ? -1 : a.keyId > b.keyId ? 1 : a.version - b.version))
    if (wanted !== undefined && rows.length === 0) {
      io.err(`s3-sse kms usage: no objects use a key ${positionals[0]} (and the KMS lists no such key)\n`)
      return 1
    }
    if (values.json) {
      io.out(JSON.stringify({ usage: rows.map((r) => ({ ...r, alias: keys.get(r.keyId)?.alias ?? null, current: keys.has(r.keyId) ? keys.get(r.keyId)!.current === r.version : null })) }, null, 2) + '\n')
      return 0
    }
    if (rows.length === 0) {
      io.out('no encrypted objects\n')
      return 0
    }
    const table = [['KEY ID', 'ALIAS', 'VERSION', 'OBJECTS', 'BYTES', 'UPLOADS'],
      ...rows.map((r) => {
        const k = keys.get(r.keyId)
        const version = `${r.version}${k ? (k.current === r.version ? ' (current)' : '') + (k.enabled ? '' : ' (disabled)') : ''}`
        return [r.keyId, k?.alias ?? '-', version, String(r.objects), String(r.bytes), String(r.uploads)]
      })]
    const widths = table[0].map((_, i) => Math.max(...table.map((r) => r[i].length)))
    io.out(table.map((r) => r.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd()).join('\n') + '\n')
    return 0
  } catch (e) {
    const why = e instanceof AdminError || isS3sseError(e) ? `${e.message} (${(e as { code: string }).code})` : (e as Error).message
    io.err(`s3-sse kms usage: ${why}\n`)
    return 1
  }
}
