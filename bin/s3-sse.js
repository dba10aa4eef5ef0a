#!/usr/bin/env node
import('../dist/cli.js').then(async (m) => {
  try {
    const code = await m.main(process.argv.slice(2))
    if (typeof code === 'number') process.exitCode = code
  } catch (err) {
    process.stderr.write(`s3-sse: ${m.describeCliError(err)}\n`)
    process.exitCode = 1
  }
}, (err) => {
  process.stderr.write(`s3-sse: ${err && err.message ? err.message : String(err)}\n`)
  process.exitCode = 1
})
