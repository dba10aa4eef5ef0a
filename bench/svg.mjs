// The summary chart of `s3-sse bench`: horizontal bars of throughput, each beside the
// machine's limit (openssl speed), grouped by suite, with the machine under the chart.
// Plain SVG, no fonts or scripts to load, so the README can show it as an image.
import { fmt, gbps } from './lib.mjs'

const esc = (s) => String(s).replace(/[<>&"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c])

const COLORS = { crypto: '#2f6db3', objects: '#4c9a2a', server: '#c0582b', limit: '#9a9a9a' }

export function drawSummarySvg(record) {
  const rows = record.summary.filter((r) => r.bytesPerSecond && r.chart !== false)
  const limits = []
  if (record.openssl?.oneCore) limits.push({ name: 'openssl speed, 1 core (limit)', bytesPerSecond: record.openssl.oneCore, suite: 'limit' })
  if (record.openssl?.allCores) limits.push({ name: 'openssl speed, all cores (limit)', bytesPerSecond: record.openssl.allCores, suite: 'limit' })
  const bars = [...limits, ...rows]
  const max = Math.max(1, ...bars.map((b) => b.bytesPerSecond))
  const labelW = 330
  const barW = 420
  const rowH = 22
  const top = 46
  const width = labelW + barW + 90
  const m = record.machine
  const footer = m ? [`${m.cpu}, ${m.cores} cores (${m.flags.join(' ')})`, `Node ${m.node}, OpenSSL ${m.openssl}, ${m.platform}, ${m.date}`] : []
  const height = top + bars.length * rowH + 30 + footer.length * 16
  const out = []
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`)
  out.push(`<rect width="100%" height="100%" fill="#ffffff"/>`)
  out.push(`<text x="12" y="22" font-size="15" font-weight="bold">s3-sse bench: throughput (GB/s) against the machine's limit</text>`)
  bars.forEach((b, i) => {
    const y = top + i * rowH
    const w = Math.max(1, (b.bytesPerSecond / max) * barW)
    const color = COLORS[b.suite] ?? '#555555'
    out.push(`<text x="${labelW - 8}" y="${y + 14}" text-anchor="end">${esc(b.name)}</text>`)
    out.push(`<rect x="${labelW}" y="${y + 3}" width="${w.toFixed(1)}" height="${rowH - 6}" fill="${color}"${b.suite === 'limit' ? ' fill-opacity="0.6"' : ''}/>`)
    out.push(`<text x="${(labelW + w + 6).toFixed(1)}" y="${y + 14}">${fmt(gbps(b.bytesPerSecond), 2)}</text>`)
  })
  // The one-core limit as a dashed line across every bar.
  if (record.openssl?.oneCore) {
    const x = labelW + (record.openssl.oneCore / max) * barW
    out.push(`<line x1="${x.toFixed(1)}" y1="${top}" x2="${x.toFixed(1)}" y2="${top + bars.length * rowH}" stroke="#555555" stroke-dasharray="4 3"/>`)
  }
  footer.forEach((line, i) => out.push(`<text x="12" y="${top + bars.length * rowH + 24 + i * 16}" fill="#444444">${esc(line)}</text>`))
  out.push('</svg>')
  return out.join('\n') + '\n'
}
