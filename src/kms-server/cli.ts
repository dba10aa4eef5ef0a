/**
 * `s3-sse kms serve`: runs the KMS server until SIGTERM / SIGINT, then stops gracefully.
 */
import { parseArgs } from 'node:util'
import { resolve } from 'node:path'
import { S3sseError } from '../errors.js'
import { DEFAULT_KMS_PORT, startKmsServer } from './server.js'

export const KMS_SERVE_USAGE = `usage: s3-sse kms serve --data-dir DIR [options]

The embedded keyring of DIR (DIR/kms/) as a network KMS: HTTPS, SigV4 (service kms) with the
data dir's users (root: S3SSE_ACCESS_KEY/S3SSE_SECRET_KEY or DIR/root-credentials.json; others
from s3-sse user add), and the AWS KMS JSON 1.1 protocol. Point s3-sse serve --kms aws, the
AWS SDKs or aws kms --endpoint-url at it.

  --data-dir DIR        the keyring's data directory (required)
  --host ADDR           address to listen on (127.0.0.1)
  --port N              HTTPS port (${DEFAULT_KMS_PORT}; 0 or auto picks a free one)
  --tls-cert FILE       certificate (PEM); without it a self-signed one is made in DIR
  --tls-key FILE        its private key (PEM)
  --region NAME         the region clients sign for and ARNs name (us-east-1)
  --account-id ID       the 12-digit account in ARNs (000000000000)
  --max-rps N           requests a second before ThrottlingException (unlimited)
`

export async function kmsServe(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(KMS_SERVE_USAGE)
    return 0
  }
  const { values } = parseArgs({
    args: argv,
    options: {
      'data-dir': { type: 'string' },
      host: { type: 'string' },
      port: { type: 'string' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      region: { type: 'string' },
      'account-id': { type: 'string' },
      'max-rps': { type: 'string' },
    },
    strict: true,
  })
  if (!values['data-dir']) {
    process.stderr.write(`s3-sse kms serve: --data-dir DIR is required\n${KMS_SERVE_USAGE}`)
    return 2
  }
  const port = values.port === undefined ? DEFAULT_KMS_PORT : values.port === 'auto' ? 0 : Number(values.port)
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new S3sseError('S3SSE_BAD_ARGUMENT', `--port must be a port number, got "${values.port}"`)
  const rps = values['max-rps'] === undefined ? undefined : Number(values['max-rps'])
  if (rps !== undefined && !(rps > 0)) throw new S3sseError('S3SSE_BAD_ARGUMENT', `--max-rps must be a positive number, got "${values['max-rps']}"`)

  let requested: string | undefined
  let onStop: ((signal: string) => void) | undefined
  const onSignal = (signal: string) => (onStop ? onStop(signal) : (requested ??= signal))
  const onTerm = () => onSignal('SIGTERM')
  const onInt = () => onSignal('SIGINT')
  process.on('SIGTERM', onTerm)
  process.on('SIGINT', onInt)
  let server
  try {
    server = await startKmsServer({
      dataDir: resolve(values['data-dir']),
      host: values.host,
      port,
      tlsCert: values['tls-cert'],
      tlsKey: values['tls-key'],
      region: values.region,
      account: values['account-id'],
      maxRequestsPerSecond: rps,
    })
  } catch (e) {
    process.off('SIGTERM', onTerm)
    process.off('SIGINT', onInt)
    throw e
  }
  const running = server
  const out = (s: string) => process.stdout.write(s + '\n')
  out(`keyring: ${running.kms.paths.keyring}`)
  out(`TLS certificate: ${running.tls.certPath}${running.tls.created ? ' (self-signed, created now; trust this file in clients)' : ''}`)
  const root = running.rootCredentials
  if (root.created) {
    out('root credentials (generated now, shown once; stored 0600 in the data dir):')
    out(`  access key: ${root.user.accessKey}`)
    out(`  secret key: ${root.user.secretKey}`)
  } else {
    out(`root access key: ${root.user.accessKey} (from ${root.source === 'env' ? 'S3SSE_ACCESS_KEY' : 'the data dir'})`)
  }
  out(`s3-sse kms listening on ${running.url}`)
  await new Promise<void>((done) => {
    onStop = (signal: string) => {
      onStop = () => undefined
      out(`${signal}: finishing in-flight requests`)
      process.off('SIGTERM', onTerm)
      process.off('SIGINT', onInt)
      running.close().then(() => {
        out('stopped')
        done()
      })
    }
    if (requested) onStop(requested)
  })
  return 0
}
