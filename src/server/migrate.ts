/**
 * `s3-sse kms migrate`: moves a data dir's objects from its embedded keyring to another KMS
 * (docs/KMS.md). Nothing is re-encrypted: each object's data key is unwrapped by the keyring
 * and wrapped by the target (object layer `rewrap` with `toKms`), the manifest is
 * re-authenticated, and the row is committed over hard-linked copies of its sealed blobs, so
 * the write path's "data durable → row committed → replaced data dropped" holds here too.
 * Run it with the server stopped; it is safe to run again.
 */
import { S3sseError, isS3sseError } from '../errors.js'
import { openEmbeddedKms, type EmbeddedKms } from '../keys/embedded.js'
import type { Kms } from '../keys/kms.js'
import { decodeManifest, encodeManifest, rewrap } from '../object/index.js'
import type { BucketEncryption } from '../s3/sse.js'
import { withEmbeddedDefaults } from './defaults.js'
import type { ObjectRow } from './meta/index.js'

export interface MigrateReport {
  buckets: number
  /** Objects whose data key now lives in the target. */
  moved: number
  /** Encrypted objects whose key is not in the keyring (moved by an earlier run). */
  skipped: number
  plaintext: number
  /** Embedded key id → the target's key id. */
  keys: Record<string, string>
}

const PAGE = 1000

export async function migrateKms(dataDir: string, target: Kms, log: (line: string) => void = () => {}): Promise<MigrateReport> {
  const from = await openEmbeddedKms(dataDir, { create: false })
  const deps = await withEmbeddedDefaults(dataDir, { kms: from }).catch(async (e) => {
    await from.close()
    throw e
  })
  const report: MigrateReport = { buckets: 0, moved: 0, skipped: 0, plaintext: 0, keys: {} }
  try {
    const { meta, blobs } = deps
    const buckets = await meta.listBuckets()
    // An open multipart upload holds its wrapped key in its upload record, which only the
    // upload's own requests change: it must end first.
    for (const b of buckets) {
      const open = await meta.listUploads(b.name, '', '', '', 1)
      if (open.length > 0) {
        throw new S3sseError('S3SSE_BAD_ARGUMENT', `bucket ${b.name} has open multipart uploads (${open[0].key}): complete or abort them, then migrate`)
      }
    }
    const targetKey = targetKeys(from, target, report)
    for (const b of buckets) {
      report.buckets++
      let after = ''
      for (;;) {
        const page = await meta.listObjects(b.name, after, '', PAGE)
        for (const summary of page) {
          const row = await meta.getObject(b.name, summary.key)
          if (row) await migrateObject(row)
        }
        if (page.length < PAGE) break
        after = page[page.length - 1].key
      }
      // A configuration that names an embedded key by id names its counterpart now.
      const enc = b.settings.encryption as BucketEncryption | undefined
      if (enc?.kmsMasterKeyId !== undefined) {
        const mapped = await targetKey(enc.kmsMasterKeyId)
        if (mapped && mapped.byId) {
          await meta.updateBucketSettings(b.name, (s) => {
            (s.encryption as BucketEncryption).kmsMasterKeyId = mapped.keyId
          })
        }
      }
      log(`bucket ${b.name}: done`)
    }
    return report

    async function migrateObject(row: ObjectRow): Promise<void> {
      const m = decodeManifest(row.manifest)
      if (!m.encryption) {
        report.plaintext++
        return
      }
      const mapped = await targetKey(m.encryption.keyId)
      if (!mapped) {
        report.skipped++
        return
      }
      const ctx = { bucket: row.bucket, key: row.key }
      const moved = await rewrap(m, { kms: from, toKms: target, from: ctx, to: ctx, keyId: mapped.keyId })
      const staged = await blobs.copy(row.blobs)
      let committed = false
      try {
        await blobs.publish(staged)
        const next: ObjectRow = {
          ...row,
          manifest: encodeManifest(moved),
          blobs: staged.map((s) => s.id),
          ...(row.encryption ? { encryption: { ...row.encryption, keyId: (await targetKey(row.encryption.keyId))?.byId ? mapped.keyId : row.encryption.keyId } } : {}),
        }
        delete next.replication
        const result = await meta.commitObject(next, {
          precondition: (current) => {
            if (!current || !Buffer.from(current.manifest).equals(Buffer.from(row.manifest))) {
              throw new S3sseError('S3SSE_BAD_ARGUMENT', `${row.bucket}/${row.key} changed during the migration`)
            }
          },
        })
        if (result.status !== 'committed') throw new S3sseError('S3SSE_BAD_ARGUMENT', `${row.bucket}/${row.key}: ${result.status}`)
        committed = true
        await blobs.remove(result.unused)
        report.moved++
      } finally {
        if (!committed) await blobs.discard(staged)
      }
    }
  } finally {
    await deps.close()
    await from.close()
  }
}

/**
 * The target key for an embedded key reference: a key of the same alias (created there on
 * first use), or `s3-sse/migrated/<id>` for a key without one. Null when the keyring does not
 * know the reference (an object an earlier run moved). `byId` says the reference was the key's
 * id rather than its alias, so what names it must change.
 */
function targetKeys(from: EmbeddedKms, target: Kms, report: MigrateReport) {
  const memo = new Map<string, Promise<{ keyId: string; byId: boolean } | null>>()
  return (ref: string) => {
    let p = memo.get(ref)
    if (!p) {
      p = (async () => {
        let info
        try {
          info = await from.describeKey(ref)
        } catch (e) {
          if (isS3sseError(e, 'S3SSE_KMS_KEY_NOT_FOUND')) return null
          throw e
        }
        const made = await target.ensureKey(info.alias ?? `s3-sse/migrated/${info.keyId}`)
        report.keys[info.keyId] = made.keyId
        return { keyId: made.keyId, byId: ref === info.keyId || ref.endsWith(`key/${info.keyId}`) }
      })()
      memo.set(ref, p)
    }
    return p
  }
}
