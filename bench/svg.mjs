// The summary chart of `s3-sse bench`, two panels of horizontal bars:
//   1. crypto and object throughput (GB/s) beside the machine's limits measured in the same
//      run (openssl speed on one core and on all cores, ipsec-mb's one-shot GCM on one core,
//      memcpy of 64 MiB), each also drawn as a dashed line;
//   2. the server, encrypted (SSE-KMS) beside plaintext for each scenario, on its own MB/s
//      scale, so the cost of encryption is visible where HTTPS dominates.
// Plain SVG with the machine and versions under it; no fonts or scripts to load.
import { fmt, gbps } from './lib.mjs'

const esc = (s) => String(s).replace(/[<>&"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c])

const COLORS = { crypto: '#2f6db3', objects: '#4c9a2a', limit: '#9a9a9a', plaintext: '#e0a15a', 'sse-kms': '#c0582b' }
const LABEL_W = 330
const BAR_W = 420
const ROW_H = 22
/** One colour per limit line: openssl 1 core, openssl all cores, ipsec-mb one-shot, memcpy. */
const LIMIT_COLORS = ['#555555', '#8a8a8a', '#7a3fa0', '#b08a00']

function bar(out, y, label, value, max, color, text, opacity = 1) {
  const w = Math.max(1, (value / max) * BAR_W)
  out.push(`<text x="${LABEL_W - 8}" y="${y + 14}" text-anchor="end">${esc(label)}</text>`)
  out.push(`<rect x="${LABEL_W}" y="${y + 3}" width="${w.toFixed(1)}" height="${ROW_H - 6}" fill="${color}"${opacity < 1 ? ` fill-opacity="${opacity}"` : ''}/>`)
  out.push(`<text x="${(LABEL_W + w + 6).toFixed(1)}" y="${y + 14}">${esc(text)}</text>`)
}

export function drawSummarySvg(record) {
  const out = []
  let y = 46
  const o = record.openssl
  // The limits measured in the run; older records carry only openssl speed.
  const limits = record.limits?.length ? record.limits : [
    ...(o?.oneCore ? [{ name: 'openssl speed, 1 core', bytesPerSecond: o.oneCore }] : []),
    ...(o?.allCores ? [{ name: 'openssl speed, all cores', bytesPerSecond: o.allCores }] : []),
  ]
  const top = [
    ...limits.map((l) => ({ name: `${l.name} (limit)`, bytesPerSecond: l.bytesPerSecond, suite: 'limit' })),
    ...record.summary.filter((r) => r.bytesPerSecond && r.chart !== false && r.suite !== 'server'),
  ]
  const server = record.summary.filter((r) => r.bytesPerSecond && r.chart !== false && r.suite === 'server')

  const body = []
  if (top.length > 0) {
    const max = Math.max(...top.map((b) => b.bytesPerSecond))
    body.push(`<text x="12" y="${y + 4}" font-weight="bold">Crypto and objects, GB/s (dashed lines: the limits above, measured in the same run)</text>`)
    y += 14
    const y0 = y
    for (const b of top) {
      bar(body, y, b.name, b.bytesPerSecond, max, COLORS[b.suite] ?? '#555555', fmt(gbps(b.bytesPerSecond), 2), b.suite === 'limit' ? 0.6 : 1)
      y += ROW_H
    }
    // One dashed line per limit across the whole panel, numbered at its foot (the bars above name them).
    limits.forEach((l, i) => {
      const x = LABEL_W + (l.bytesPerSecond / max) * BAR_W
      const color = LIMIT_COLORS[i % LIMIT_COLORS.length]
      body.push(`<line x1="${x.toFixed(1)}" y1="${y0}" x2="${x.toFixed(1)}" y2="${y}" stroke="${color}" stroke-dasharray="4 3"/>`)
      body.push(`<text x="${x.toFixed(1)}" y="${y + 11}" text-anchor="middle" font-size="10" fill="${color}">${i + 1}</text>`)
      body.push(`<text x="4" y="${y0 + i * ROW_H + 14}" font-size="10" fill="${color}">${i + 1}</text>`)
    })
    y += 24
  }
  if (server.length > 0) {
    const max = Math.max(...server.map((b) => b.bytesPerSecond))
    body.push(`<text x="12" y="${y + 4}" font-weight="bold">Server over HTTPS with the AWS SDK, MB/s: SSE-KMS (dark) beside plaintext (light)</text>`)
    y += 14
    // Pair the variants of each scenario: "server <variant>: <scenario>".
    const scenarios = new Map()
    for (const r of server) {
      const m = /^server ([^:]+): (.*)$/.exec(r.name)
      const [variant, scenario] = m ? [m[1], m[2]] : ['', r.name]
      if (!scenarios.has(scenario)) scenarios.set(scenario, [])
      scenarios.get(scenario).push({ variant, r })
    }
    for (const [scenario, rows] of scenarios) {
      rows.sort((a, b) => (a.variant === 'plaintext' ? -1 : 1) - (b.variant === 'plaintext' ? -1 : 1))
      for (const { variant, r } of rows) {
        const ratio = variant !== 'plaintext' && r.vsReference != null ? ` (${fmt(r.vsReference)}×)` : ''
        bar(body, y, `${scenario}, ${variant}`, r.bytesPerSecond, max, COLORS[variant] ?? '#555555', `${fmt(r.bytesPerSecond / 1e6, 0)}${ratio}`)
        y += ROW_H
      }
    }
    y += 8
  }
  const m = record.machine
  const footer = m ? [`${m.cpu}, ${m.cores} cores (${m.flags.join(' ')})`, `Node ${m.node}, OpenSSL ${m.openssl}, ${m.platform}, ${m.date}`] : []
  footer.forEach((line, i) => body.push(`<text x="12" y="${y + 16 + i * 16}" fill="#444444">${esc(line)}</text>`))
  const height = y + 24 + footer.length * 16
  const width = LABEL_W + BAR_W + 110
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`)
  out.push(`<rect width="100%" height="100%" fill="#ffffff"/>`)
  out.push(`<text x="12" y="22" font-size="15" font-weight="bold">s3-sse bench: throughput against the machine's limit</text>`)
  out.push(...body, '</svg>')
  return out.join('\n') + '\n'
}
