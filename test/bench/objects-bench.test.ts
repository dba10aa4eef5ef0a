import { describe, expect, it } from 'vitest'

// The object benchmark as a product: it runs (on a small object here), checks its own output
// and reports every measure. Timings are never asserted; only that they exist.
describe('bench/objects.mjs', () => {
  it('runs on an 8 MiB object, checks its results and summarizes them', async () => {
    // @ts-expect-error plain JavaScript module without types
    const bench = await import('../../bench/objects.mjs')
    const r = await bench.runObjectsBench({ size: 8 * 1024 * 1024 })
    expect(r.checks).toContain('1-byte range read exactly one package')
    expect(r.checks).toContain('1000 writes without bucket keys: 1000 KMS calls')
    expect(r.rows.map((x: { what: string }) => x.what)).toContain('sealObject, SSE-KMS')
    for (const row of r.rows) expect(row.bytesPerSecond).toBeGreaterThan(0)
    expect(r.range.bytesRead).toBe(65536 + 16)
    expect(r.kms.bucketKeys.kmsCallsForWrites).toBe(1)
    expect(r.kms.bucketKeys.kmsCallsForReads).toBe(1)
    expect(r.kms.perObjectKeys.kmsCallsForReads).toBe(1000)
    const rows = bench.summarize(r)
    expect(rows.map((x: { name: string }) => x.name)).toEqual([
      expect.stringMatching(/^sealObject 8 MiB SSE-KMS in memory, RSS \+\d+ MiB$/),
      expect.stringMatching(/^openObject 8 MiB SSE-KMS in memory, RSS \+\d+ MiB$/),
      '1-byte range from the middle of 8 MiB',
      'KMS calls per 1000 writes to one bucket',
    ])
    expect(rows[3].value).toBe('1000 → 1 with bucket keys')
  })
})
