import { parseArgs } from 'node:util'
import { isS3sseError } from '../errors.js'
import type { KeyInfo } from './kms.js'
import { KMS_OPTIONS, KMS_OPTIONS_USAGE, openKms, parseKmsSelection } from './open.js'

export const KMS_USAGE = `usage: s3-sse kms <command> [--data-dir DIR | --kms aws|pkcs11 …] [options]

commands (on the embedded KMS of DIR, DIR/kms/keyring, or on the KMS --kms names):
  list                     every key: id, alias, versions, state
  create [--alias NAME] [--description TEXT]
                           a new master key (creates the keyring on first use)
  describe KEY             one key (KEY: key id, alias/NAME or NAME)
  rotate KEY               add a version and make it current; old versions keep decrypting
  disable KEY | enable KEY stop or resume all use of a key
  alias NAME KEY           give KEY one more alias
  serve                    the embedded keyring as an AWS KMS API server (s3-sse kms serve --help)
  migrate                  move a data dir's objects to --kms aws|pkcs11 (s3-sse kms migrate --help)
  usage [KEY]              objects per key version, asked of the running server
                           (s3-sse kms usage --help); rewrap jobs move them

options:
  --data-dir DIR           the server's data directory (the embedded KMS; required for it)
  --json                   print JSON instead of text
${KMS_OPTIONS_USAGE}
The root key comes from S3SSE_KMS_ROOT_KEY (base64, 32 bytes) or DIR/kms/root.key.
`

export interface Io {
  out: (text: string) => void
  err: (text: string) => void
}

const processIo: Io = {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
}

function describe(k: KeyInfo): string {
  return [
    `key id:      ${k.keyId}`,
    `alias:       ${k.alias ?? '-'}`,
    ...(k.description !== undefined ? [`description: ${k.description}`] : []),
    `created:     ${k.createdAt}`,
    `state:       ${k.enabled ? 'enabled' : 'disabled'}`,
    `version:     ${k.current} of ${k.versions}`,
  ].join('\n') + '\n'
}

function table(keys: KeyInfo[]): string {
  if (keys.length === 0) return 'no keys\n'
  const rows = [['KEY ID', 'ALIAS', 'VERSION', 'STATE', 'CREATED'],
    ...keys.map((k) => [k.keyId, k.alias ?? '-', `${k.current}/${k.versions}`, k.enabled ? 'enabled' : 'disabled', k.createdAt])]
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)))
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd()).join('\n') + '\n'
}

/** `s3-sse kms …`; returns the exit code (0 ok, 1 failed, 2 usage). */
export async function kmsCommand(argv: string[], io: Io = processIo): Promise<number> {
  let parsed
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        'data-dir': { type: 'string' },
        alias: { type: 'string' },
        description: { type: 'string' },
        json: { type: 'boolean', default: false },
        ...KMS_OPTIONS,
        help: { type: 'boolean', short: 'h', default: false },
      },
    })
  } catch (e) {
    io.err(`s3-sse kms: ${(e as Error).message}\n${KMS_USAGE}`)
    return 2
  }
  const { values, positionals } = parsed
  const [command, target, ...extra] = positionals
  if (values.help || command === undefined || command === 'help') {
    io.out(KMS_USAGE)
    return command === undefined && !values.help ? 2 : 0
  }
  const needsKey = ['describe', 'rotate', 'disable', 'enable'].includes(command)
  if (!['list', 'create', 'alias', ...(needsKey ? [command] : [])].includes(command)) {
    io.err(`s3-sse kms: unknown command "${command}"\n${KMS_USAGE}`)
    return 2
  }
  const arity = command === 'alias' ? 2 : needsKey ? 1 : 0
  if ([target, ...extra].filter((a) => a !== undefined).length !== arity) {
    io.err(`s3-sse kms ${command}: ${arity === 2 ? 'takes NAME and KEY' : arity === 1 ? 'takes one KEY' : 'takes no arguments'}\n${KMS_USAGE}`)
    return 2
  }
  let selection
  try {
    selection = parseKmsSelection(values)
  } catch (e) {
    io.err(`s3-sse kms: ${(e as Error).message}\n${KMS_USAGE}`)
    return 2
  }
  if (selection.kind === 'embedded' && !values['data-dir']) {
    io.err(`s3-sse kms: --data-dir DIR is required\n${KMS_USAGE}`)
    return 2
  }
  try {
    const kms = await openKms(selection, { dataDir: values['data-dir'], create: command === 'create' })
    try {
      const print = (v: KeyInfo | KeyInfo[]) =>
        io.out(values.json ? JSON.stringify(v, null, 2) + '\n' : Array.isArray(v) ? table(v) : describe(v))
      switch (command) {
        case 'list': print(await kms.listKeys()); break
        case 'create': print(await kms.createKey({ alias: values.alias, description: values.description })); break
        case 'describe': print(await kms.describeKey(target!)); break
        case 'rotate': print(await kms.rotateKey(target!)); break
        case 'disable': print(await kms.disableKey(target!)); break
        case 'enable': print(await kms.enableKey(target!)); break
        case 'alias': print(await kms.createAlias(target!, extra[0])); break
      }
    } finally {
      await kms.close()
    }
    return 0
  } catch (e) {
    io.err(`s3-sse kms ${command}: ${isS3sseError(e) ? `${e.message} (${e.code})` : (e as Error).message}\n`)
    return 1
  }
}
