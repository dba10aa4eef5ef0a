// Runs the CLI from src/ (through tsx) so end-to-end tests drive the real server process.
import { describeCliError, main } from '../../src/cli.js'

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
  },
  (err) => {
    process.stderr.write(`s3-sse: ${describeCliError(err)}\n`)
    process.exitCode = 1
  },
)
