/**
 * The S3 end-to-end suite of the embedded default (test/server/s3-api.test.ts), unchanged, run
 * against a fleet: three `s3-sse serve` processes with --store s3 (Ceph RGW) and --meta
 * postgres://, behind HAProxy, every request on a connection of its own so round robin spreads
 * them over the gateways. Only its checks of the data dir's files are left out there.
 */
import { describe, it } from 'vitest'
import { missingServices } from '../helpers/services.js'

const why = missingServices('S3 API suite on a 3-gateway fleet', ['postgres', 'rgw'])
if (why) {
  describe.skip(`S3 API suite on a 3-gateway fleet (skipped: ${why})`, () => it('runs', () => undefined))
} else {
  process.env.S3SSE_TEST_FLEET = '3'
  await import('../server/s3-api.test.js')
}
