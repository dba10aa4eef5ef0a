/**
 * Debian's Chromium, driven by playwright-core (never `playwright install`: no browser is
 * downloaded). The servers' self-signed certificates are trusted by their public keys with
 * `--ignore-certificate-errors-spki-list`, so pages load over real, verified TLS: any other
 * certificate is still refused (not `ignoreHTTPSErrors`, which would accept anything).
 * Chromium honours that flag only with a user-data-dir; Playwright's launch() gives it a
 * fresh one of its own and removes it on close.
 */
import { createHash, createPublicKey } from 'node:crypto'
import { existsSync } from 'node:fs'
import { chromium, type Browser } from 'playwright-core'

export const CHROMIUM = '/usr/bin/chromium'

export const QUIET_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
]

/** base64 SHA-256 of a certificate's SubjectPublicKeyInfo (what Chromium's SPKI list takes). */
export function spkiHash(certPem: Buffer | string): string {
  const der = createPublicKey(certPem).export({ type: 'spki', format: 'der' })
  return createHash('sha256').update(der).digest('base64')
}

export async function launchChromium(trustedCerts: Array<Buffer | string>): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)`)
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [...QUIET_FLAGS, `--ignore-certificate-errors-spki-list=${trustedCerts.map(spkiHash).join(',')}`],
  })
}
