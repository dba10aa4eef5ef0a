/**
 * TLS material: a certificate and key given on the command line, or a self-signed one
 * for localhost / 127.0.0.1 / ::1 (and *.s3.localhost for virtual-hosted buckets) created in
 * the data dir on first start. Clients trust it by its path (printed at start).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { generate } from 'selfsigned'
import { S3sseError } from '../errors.js'
import { writePrivateFile } from './credentials.js'

export const SELF_SIGNED_CERT = 'tls-cert.pem'
export const SELF_SIGNED_KEY = 'tls-key.pem'

export interface TlsMaterial {
  cert: string
  key: string
  certPath: string
  /** True when this start created the self-signed certificate. */
  created: boolean
}

export async function loadTls(dataDir: string, given?: { certPath?: string; keyPath?: string }): Promise<TlsMaterial> {
  if (given?.certPath || given?.keyPath) {
    if (!given.certPath || !given.keyPath) {
      throw new S3sseError('S3SSE_BAD_ARGUMENT', 'Give both --tls-cert and --tls-key, or neither.')
    }
    return { cert: readFileSync(given.certPath, 'utf8'), key: readFileSync(given.keyPath, 'utf8'), certPath: given.certPath, created: false }
  }
  const certPath = join(dataDir, SELF_SIGNED_CERT)
  const keyPath = join(dataDir, SELF_SIGNED_KEY)
  if (existsSync(certPath) && existsSync(keyPath)) {
    return { cert: readFileSync(certPath, 'utf8'), key: readFileSync(keyPath, 'utf8'), certPath, created: false }
  }
  mkdirSync(dataDir, { recursive: true, mode: 0o700 })
  const now = new Date()
  const pems = await generate([{ name: 'commonName', value: 'localhost' }, { name: 'organizationName', value: 's3-sse self-signed' }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notBeforeDate: new Date(now.getTime() - 24 * 3600 * 1000),
    notAfterDate: new Date(now.getTime() + 825 * 24 * 3600 * 1000),
    extensions: [
      // Its own trust anchor: clients pass this file as the CA bundle.
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', digitalSignature: true, keyCertSign: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: [
          { type: 2, value: 'localhost' },
          { type: 2, value: '*.localhost' },
          // TLS clients refuse a wildcard directly under a top-level name (RFC 6125 §7.2),
          // so virtual-hosted buckets over HTTPS use <bucket>.s3.localhost.
          { type: 2, value: 's3.localhost' },
          { type: 2, value: '*.s3.localhost' },
          { type: 7, ip: '127.0.0.1' },
          { type: 7, ip: '::1' },
        ],
      },
    ],
  })
  writePrivateFile(keyPath, pems.private)
  writeFileSync(certPath, pems.cert, { mode: 0o600 })
  return { cert: pems.cert, key: pems.private, certPath, created: true }
}
