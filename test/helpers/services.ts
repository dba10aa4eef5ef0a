/**
 * The external services the fleet suites run against — PostgreSQL 15 and Ceph RGW, started by
 * scripts/services/*.sh (`.ci/run` starts both and exports their endpoints):
 *
 *   S3SSE_TEST_PG_URL          postgres://user:pass@127.0.0.1:PORT/db (a role allowed to CREATEDB)
 *   S3SSE_TEST_RGW_ENDPOINT    http://127.0.0.1:PORT
 *   S3SSE_TEST_RGW_ACCESS_KEY / S3SSE_TEST_RGW_SECRET_KEY   RGW's own S3 credentials
 *
 * A suite whose service is not configured is skipped and says why; with
 * S3SSE_REQUIRE_SERVICES=1 (CI) it fails instead.
 */
import { randomBytes } from 'node:crypto'
import { describe } from 'vitest'
import pg from 'pg'

export interface Rgw {
  endpoint: string
  accessKey: string
  secretKey: string
}

export const requireServices = process.env.S3SSE_REQUIRE_SERVICES === '1'

const HOW = 'start them with scripts/services/postgres.sh and scripts/services/ceph-rgw.sh and export what .ci/run exports'

export function pgUrl(): string | undefined {
  return process.env.S3SSE_TEST_PG_URL || undefined
}

export function rgw(): Rgw | undefined {
  const endpoint = process.env.S3SSE_TEST_RGW_ENDPOINT
  const accessKey = process.env.S3SSE_TEST_RGW_ACCESS_KEY
  const secretKey = process.env.S3SSE_TEST_RGW_SECRET_KEY
  return endpoint && accessKey && secretKey ? { endpoint, accessKey, secretKey } : undefined
}

/**
 * Which of `needs` are missing. When any is, the suite is skipped with a line saying which and
 * how to provide them — or, under S3SSE_REQUIRE_SERVICES=1, this throws so the file fails.
 */
export function missingServices(suite: string, needs: Array<'postgres' | 'rgw'>): string | undefined {
  const missing = needs.filter((n) => (n === 'postgres' ? !pgUrl() : !rgw()))
  if (missing.length === 0) return undefined
  const vars = missing.map((m) => (m === 'postgres' ? 'S3SSE_TEST_PG_URL' : 'S3SSE_TEST_RGW_ENDPOINT/_ACCESS_KEY/_SECRET_KEY')).join(', ')
  const why = `${suite}: ${missing.join(' and ')} not configured (${vars} unset); ${HOW}`
  if (requireServices) throw new Error(`S3SSE_REQUIRE_SERVICES=1 but ${why}`)
  process.stderr.write(`SKIPPED ${why}\n`)
  return why
}

/** A describe that is skipped, naming why, when its services are missing (fails under S3SSE_REQUIRE_SERVICES=1). */
export function describeWithServices(name: string, needs: Array<'postgres' | 'rgw'>, body: () => void): void {
  const why = missingServices(name, needs)
  if (why) describe.skip(`${name} (skipped: ${why})`, body)
  else describe(name, body)
}

/** A fresh, empty database on the test server (dropped by `drop`). */
export async function freshDatabase(tag = 't'): Promise<{ url: string; name: string; drop(): Promise<void> }> {
  const base = pgUrl()
  if (!base) throw new Error('S3SSE_TEST_PG_URL is not set')
  const name = `s3sse_${tag}_${randomBytes(6).toString('hex')}`
  const admin = new pg.Client({ connectionString: base })
  await admin.connect()
  try {
    await admin.query(`CREATE DATABASE ${name}`)
  } finally {
    await admin.end()
  }
  const u = new URL(base)
  u.pathname = `/${name}`
  return {
    url: u.toString(),
    name,
    async drop() {
      const c = new pg.Client({ connectionString: base })
      await c.connect()
      try {
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
      } finally {
        await c.end()
      }
    },
  }
}
