/**
 * The console's static files: the top-level `console/` folder of the package, found from
 * this module (src/server/console/ when run from source, dist/server/console/ when
 * installed; both are three levels below the package root). Only the files listed here are
 * served, so no request path ever reaches the file system.
 */
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

export const CONSOLE_DIR = fileURLToPath(new URL('../../../console/', import.meta.url))

export interface Asset {
  body: Buffer
  contentType: string
  etag: string
}

export const ASSET_TYPES: Readonly<Record<string, string>> = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'console.css': 'text/css; charset=utf-8',
  'favicon.svg': 'image/svg+xml',
}

const cache = new Map<string, Asset>()

/** The asset `name` (a key of ASSET_TYPES), read once; undefined for any other name. */
export function asset(name: string): Asset | undefined {
  if (!Object.hasOwn(ASSET_TYPES, name)) return undefined
  let a = cache.get(name)
  if (!a) {
    const body = readFileSync(CONSOLE_DIR + name)
    a = { body, contentType: ASSET_TYPES[name], etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"` }
    cache.set(name, a)
  }
  return a
}
