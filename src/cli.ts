import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { describeBackendReport, loadBackend } from './crypto/loader.js'
import { kmsMigrate, migrateStoreCommand, serve, userCommand } from './server/cli.js'
import { kmsCommand } from './keys/cli.js'
import { isS3sseError } from './errors.js'
import { kmsServe } from './kms-server/cli.js'
import { kmsUsageCommand } from './server/admin/cli.js'
import { jobCommand } from './server/jobs/cli.js'

const USAGE = `usage: s3-sse <command> [options]

commands:
  serve         the S3-compatible HTTPS server (s3-sse serve --help)
  user          add | list | remove users of the server (--data-dir DIR, or a fleet's --meta postgres://…)
  migrate-store copy an embedded data dir into a fleet's backend bucket and PostgreSQL (docs/DEPLOY.md)
  backend       which crypto backend loads here, and why any faster one did not
  kms           manage KMS keys: s3-sse kms list|create|describe|rotate|disable|enable (s3-sse kms help);
                  s3-sse kms serve: the embedded keyring as an AWS KMS API server;
                  s3-sse kms usage [KEY]: objects per key version, from the running server
  job           jobs of the running server: start encrypt|rewrap|scrub, list, status, pause,
                  resume, cancel (s3-sse job --help)
  bench         benchmark crypto, objects and server against the machine's limit
                  [--only crypto|objects|server|kms] [--quick] [--out DIR (default bench/results)]
  version       the package version
  help          this text
`

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
  return pkg.version
}

/** A failed command's one line: the stable code of an s3-sse error (what docs and scripts look for), then its message. */
export function describeCliError(err: unknown): string {
  if (isS3sseError(err) && String(err.code).startsWith('S3SSE_')) return `${err.code}: ${err.message}`
  return err instanceof Error ? err.message : String(err)
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
    case 'serve':
      return serve(rest)
    case 'migrate-store':
      return migrateStoreCommand(rest)
    case 'user':
      return userCommand(rest)
    case 'kms':
      // `kms serve` is a server (src/kms-server/); the other kms commands manage keys (src/keys/).
      // `kms migrate` works on a data dir's objects (src/server/); `kms usage` asks the running
      // server, whose metadata store knows which key version each object uses.
      if (rest[0] === 'serve') return kmsServe(rest.slice(1))
      if (rest[0] === 'migrate') return kmsMigrate(rest.slice(1))
      if (rest[0] === 'usage') return kmsUsageCommand(rest.slice(1))
      return kmsCommand(rest)
    case 'job':
      return jobCommand(rest)
    case 'bench':
      return bench(rest)
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

async function bench(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { only: { type: 'string' }, quick: { type: 'boolean' }, out: { type: 'string' } },
  })
  loadBackend()
  process.stderr.write(describeBackendReport() + '\n')
  // bench/ ships beside dist/ and is plain JavaScript: load it by URL, not through tsc.
  const runner = (await import(new URL('../bench/run.mjs', import.meta.url).href)) as {
    runBench(opts: { only?: string; quick?: boolean; out?: string }): Promise<unknown>
  }
  await runner.runBench({ only: values.only, quick: values.quick, out: values.out })
  return 0
}
