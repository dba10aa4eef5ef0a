/**
 * The serve flags that choose a fleet's stores (src/server/fleet.ts, src/server/cli.ts): what a
 * fleet turns on by default, and the mistakes refused with a message that says what to do.
 */
import { describe, expect, it } from 'vitest'
import { parseServeOptions } from '../../src/server/cli.js'
import { FLEET_REPLICATION, FLEET_SWEEP } from '../../src/server/fleet.js'

describe('serve flags for a fleet', () => {
  it('the embedded default is unchanged: files, SQLite, one sweep at start, no polling', () => {
    const { config, store, meta } = parseServeOptions([])
    expect(store).toEqual({ kind: 'files' })
    expect(meta).toEqual({ kind: 'sqlite' })
    expect(config.sweep).toBeUndefined()
    expect(config.replication).toEqual({})
    expect(config.publicUrl).toBeUndefined()
  })

  it('--store s3 and --meta postgres:// turn on the fleet sweep and queue settings', () => {
    const { config, store, meta } = parseServeOptions([
      '--store', 's3', '--store-endpoint', 'http://127.0.0.1:7480', '--store-bucket', 'blobs', '--store-prefix', 'p/',
      '--meta', 'postgres://u:p@127.0.0.1:5432/db', '--public-url', 'https://s3.example.com', '--key-cache-ttl-ms', '1000',
    ])
    expect(store).toEqual({ kind: 's3', endpoint: 'http://127.0.0.1:7480', bucket: 'blobs', prefix: 'p/' })
    expect(meta).toEqual({ kind: 'postgres', url: 'postgres://u:p@127.0.0.1:5432/db' })
    expect(config.sweep).toEqual(FLEET_SWEEP)
    expect(config.replication).toEqual(FLEET_REPLICATION)
    expect(config.keyCache).toEqual({ ttlMs: 1000, bucketKeyTtlMs: 1000 })
    expect(config.publicUrl).toBe('https://s3.example.com')
    const tuned = parseServeOptions(['--meta', 'postgres://x@h/db', '--sweep-grace-ms', '5000', '--sweep-settle-ms', '0', '--replication-poll-ms', '100'])
    expect(tuned.config.sweep).toEqual({ ...FLEET_SWEEP, graceMs: 5000, settleMs: 0 })
    expect(tuned.config.replication?.pollMs).toBe(100)
  })

  it('--job-lease-ms and --job-poll-ms tune the job runner (how soon a dead gateway\'s job is taken over); unset, its defaults stay', () => {
    expect(parseServeOptions([]).config.jobs).toEqual({})
    expect(parseServeOptions(['--job-lease-ms', '5000', '--job-poll-ms', '250']).config.jobs).toEqual({ leaseMs: 5000, pollMs: 250 })
    expect(() => parseServeOptions(['--job-lease-ms', '0'])).toThrow(/--job-lease-ms must be a whole number of at least 1/)
    expect(() => parseServeOptions(['--job-poll-ms', 'soon'])).toThrow(/--job-poll-ms must be a whole number/)
  })

  it('refuses half-given or misplaced fleet flags', () => {
    const bad = (argv: string[]) => {
      try {
        parseServeOptions(argv)
      } catch (e) {
        return (e as Error).message
      }
      return 'accepted'
    }
    expect(bad(['--store', 's3'])).toMatch(/--store s3 needs --store-bucket/)
    expect(bad(['--store', 'nfs'])).toMatch(/--store must be files or s3/)
    expect(bad(['--store-bucket', 'b'])).toMatch(/--store-bucket goes with --store s3/)
    expect(bad(['--meta', 'mysql://x'])).toMatch(/--meta must be sqlite or a postgres:\/\//)
    expect(bad(['--sweep-grace-ms', '10'])).toMatch(/goes with --store s3 or --meta postgres/)
    expect(bad(['--public-url', 'http://plain'])).toMatch(/--public-url must be https/)
    expect(bad(['--store', 's3', '--store-bucket', 'b', '--store-endpoint', 'rgw:7480'])).toMatch(/--store-endpoint must be http/)
  })
})
