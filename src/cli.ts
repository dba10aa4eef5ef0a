import { readFileSync } from 'node:fs'
import { describeBackendReport, loadBackend } from './crypto/loader.js'
import { kmsCommand } from './keys/cli.js'

const USAGE = `usage: s3-sse <command> [options]

commands:
  backend       which crypto backend loads here, and why any faster one did not
  kms           manage the embedded KMS keys: s3-sse kms list|create|describe|rotate --data-dir DIR
  version       the package version
  help          this text
`

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
  return pkg.version
}

/** Runs one CLI command; returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv
  switch (command) {
    case 'backend': {
      loadBackend()
      process.stdout.write(describeBackendReport() + '\n')
      return 0
    }
    case 'kms':
      return kmsCommand(rest)
    case 'version':
    case '--version':
      process.stdout.write(version() + '\n')
      return 0
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE)
      return command === undefined ? 1 : 0
    default:
      process.stderr.write(`s3-sse: unknown command "${command}" ${rest.length ? '' : ''}\n${USAGE}`)
      return 2
  }
}
