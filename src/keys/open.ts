/**
 * The one place a KMS is chosen by name: `embedded` (the keyring of a data dir), `aws` (the
 * AWS KMS API: Amazon KMS or `s3-sse kms serve`) or `pkcs11` (an HSM). `s3-sse serve` and the
 * `s3-sse kms` admin commands take the same flags and come here.
 */
import { S3sseError } from '../errors.js'
import { openEmbeddedKms } from './embedded.js'
import type { KmsAdmin } from './kms.js'
import type { Pkcs11Mechanism } from './pkcs11.js'

export const KMS_KINDS = ['embedded', 'aws', 'pkcs11'] as const
export type KmsKind = typeof KMS_KINDS[number]

export interface KmsSelection {
  kind: KmsKind
  endpoint?: string
  region?: string
  caFile?: string
  pkcs11Module?: string
  pkcs11Token?: string
  pkcs11PinFile?: string
  pkcs11Mechanism?: Pkcs11Mechanism
  pkcs11Sessions?: number
  /** aws: how object contexts are sent (AwsKmsOptions.contextStyle). */
  contextStyle?: 'plain' | 's3-arn'
}

/** The flags, for node:util parseArgs. */
export const KMS_OPTIONS = {
  kms: { type: 'string' },
  'kms-endpoint': { type: 'string' },
  'kms-region': { type: 'string' },
  'kms-ca-file': { type: 'string' },
  'kms-context': { type: 'string' },
  'pkcs11-module': { type: 'string' },
  'pkcs11-token': { type: 'string' },
  'pkcs11-pin-file': { type: 'string' },
  'pkcs11-mechanism': { type: 'string' },
  'pkcs11-sessions': { type: 'string' },
} as const

export const KMS_OPTIONS_USAGE = `  --kms embedded|aws|pkcs11   where master keys live (embedded: DATA_DIR/kms/keyring)
  --kms-endpoint URL   aws: the AWS KMS API endpoint (default: Amazon KMS of the region)
  --kms-region R       aws: the region to sign for (AWS_REGION, else us-east-1)
  --kms-ca-file F      aws: PEM certificates to trust for the endpoint (or AWS_CA_BUNDLE)
  --kms-context plain|s3-arn   aws: send object contexts as they are ({bucket, key}) or as
                       Amazon S3 does ({"aws:s3:arn": …}); fixed for a data dir's life (plain)
                       aws credentials: the standard AWS chain (AWS_ACCESS_KEY_ID…, AWS_PROFILE, ~/.aws)
  --pkcs11-module F    pkcs11: the module, e.g. /usr/lib/softhsm/libsofthsm2.so
  --pkcs11-token L     pkcs11: the token label
  --pkcs11-pin-file F  pkcs11: a file holding the user PIN
  --pkcs11-mechanism kwp|gcm   pkcs11: force the data-key wrapping (default: KWP if offered)
  --pkcs11-sessions N  pkcs11: sessions in the pool (4)
`

type Values = { [K in keyof typeof KMS_OPTIONS]?: string }

export function parseKmsSelection(values: Values): KmsSelection {
  const kind = (values.kms ?? 'embedded') as KmsKind
  if (!KMS_KINDS.includes(kind)) throw new S3sseError('S3SSE_BAD_ARGUMENT', `--kms must be one of ${KMS_KINDS.join(', ')}, got "${values.kms}"`)
  const awsOnly = ['kms-endpoint', 'kms-region', 'kms-ca-file', 'kms-context'] as const
  const p11Only = ['pkcs11-module', 'pkcs11-token', 'pkcs11-pin-file', 'pkcs11-mechanism', 'pkcs11-sessions'] as const
  for (const f of awsOnly) if (values[f] !== undefined && kind !== 'aws') throw new S3sseError('S3SSE_BAD_ARGUMENT', `--${f} goes with --kms aws`)
  for (const f of p11Only) if (values[f] !== undefined && kind !== 'pkcs11') throw new S3sseError('S3SSE_BAD_ARGUMENT', `--${f} goes with --kms pkcs11`)
  if (kind === 'pkcs11') {
    for (const f of ['pkcs11-module', 'pkcs11-token', 'pkcs11-pin-file'] as const) {
      if (!values[f]) throw new S3sseError('S3SSE_BAD_ARGUMENT', `--kms pkcs11 needs --${f}`)
    }
  }
  const contextStyle = values['kms-context']
  if (contextStyle !== undefined && contextStyle !== 'plain' && contextStyle !== 's3-arn') throw new S3sseError('S3SSE_BAD_ARGUMENT', `--kms-context must be plain or s3-arn, got "${contextStyle}"`)
  const mechanism = values['pkcs11-mechanism']
  if (mechanism !== undefined && mechanism !== 'kwp' && mechanism !== 'gcm') throw new S3sseError('S3SSE_BAD_ARGUMENT', `--pkcs11-mechanism must be kwp or gcm, got "${mechanism}"`)
  const sessions = values['pkcs11-sessions']
  if (sessions !== undefined && !(/^\d+$/.test(sessions) && Number(sessions) >= 1 && Number(sessions) <= 256)) {
    throw new S3sseError('S3SSE_BAD_ARGUMENT', `--pkcs11-sessions must be 1 to 256, got "${sessions}"`)
  }
  return {
    kind,
    ...(values['kms-endpoint'] ? { endpoint: values['kms-endpoint'] } : {}),
    ...(values['kms-region'] ? { region: values['kms-region'] } : {}),
    ...(values['kms-ca-file'] ? { caFile: values['kms-ca-file'] } : {}),
    ...(contextStyle ? { contextStyle } : {}),
    ...(values['pkcs11-module'] ? { pkcs11Module: values['pkcs11-module'] } : {}),
    ...(values['pkcs11-token'] ? { pkcs11Token: values['pkcs11-token'] } : {}),
    ...(values['pkcs11-pin-file'] ? { pkcs11PinFile: values['pkcs11-pin-file'] } : {}),
    ...(mechanism ? { pkcs11Mechanism: mechanism } : {}),
    ...(sessions ? { pkcs11Sessions: Number(sessions) } : {}),
  }
}

export type OpenedKms = KmsAdmin

/** Opens the selected KMS; for `embedded`, the keyring of `dataDir` (created unless `create: false`). */
export async function openKms(sel: KmsSelection, opts: { dataDir?: string; create?: boolean } = {}): Promise<OpenedKms> {
  switch (sel.kind) {
    case 'embedded':
      if (!opts.dataDir) throw new S3sseError('S3SSE_BAD_ARGUMENT', 'the embedded KMS needs a data dir')
      return openEmbeddedKms(opts.dataDir, { create: opts.create ?? true })
    case 'aws': {
      const { readFileSync } = await import('node:fs')
      let ca: Buffer | undefined
      if (sel.caFile) {
        try {
          ca = readFileSync(sel.caFile)
        } catch (e) {
          throw new S3sseError('S3SSE_BAD_ARGUMENT', `cannot read --kms-ca-file ${sel.caFile}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`)
        }
      }
      // Loaded on demand: the SDK is large, and the embedded KMS never needs it.
      const { AwsKms } = await import('./aws.js')
      return new AwsKms({ ...(sel.contextStyle ? { contextStyle: sel.contextStyle } : {}), ...(sel.endpoint ? { endpoint: sel.endpoint } : {}), ...(sel.region ? { region: sel.region } : {}), ...(ca ? { ca } : {}) })
    }
    case 'pkcs11': {
      const { openPkcs11Kms } = await import('./pkcs11.js')
      return openPkcs11Kms({
        module: sel.pkcs11Module!, token: sel.pkcs11Token!, pinFile: sel.pkcs11PinFile!,
        ...(sel.pkcs11Mechanism ? { mechanism: sel.pkcs11Mechanism } : {}),
        ...(sel.pkcs11Sessions ? { sessions: sel.pkcs11Sessions } : {}),
      })
    }
  }
}
