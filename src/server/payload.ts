/**
 * How a request's body is signed, as authentication found it (src/server/auth/ sets it on the
 * request context; src/server/body.ts verifies the body against it).
 */

/** Verifies the chunk signatures of a streaming SigV4 upload (auth/sigv4.ts implements it). */
export interface ChunkVerifier {
  verifyChunk(dataSha256Hex: string, signature: string): boolean
  /** The trailer signature covers the trailing header lines, `name:value\n` each. */
  verifyTrailer(canonicalTrailer: string, signature: string): boolean
}

export type PayloadMode =
  | { kind: 'sha256'; hash: string }
  | { kind: 'unsigned' }
  | { kind: 'streaming-signed'; trailer: boolean; signer: ChunkVerifier }
  | { kind: 'streaming-unsigned-trailer' }
