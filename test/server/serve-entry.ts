// Runs the CLI from src/ (through tsx) so end-to-end tests drive the real server process.
import { main } from '../../src/cli.js'

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
  },
  (err) => {
    process.stderr.write(`s3-sse: ${err instanceof Error ? err.message : String(err)}\n`)
    process.exitCode = 1
  },
)
