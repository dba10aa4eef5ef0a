/**
 * The encryption decision for a write (PutObject, CopyObject, PostObject,
 * CreateMultipartUpload): the one place that says "encrypt or not" and how.
 *
 * Today nothing is encrypted. The bucket-default-encryption issue fills this in from the
 * bucket's configuration, the request headers and the server mode; handlers only pass
 * the result on to the object layer.
 */
export type ServerMode = 'oss' | 'aws'

export interface EncryptionDecision {
  algorithm: 'aws:kms' | 'AES256'
  /** KMS key id or alias. */
  keyId: string
  /** Create the key by alias on first use (the bucket's service key in oss mode). */
  createKey?: boolean
  bucketKey?: boolean
  extraContext?: Record<string, string>
}

export interface EncryptionInput {
  bucket: string
  /** The bucket's stored settings (JSON kept with the bucket). */
  bucketSettings: Record<string, unknown>
  /** Request headers, lowercase names. */
  headers: Record<string, string | string[] | undefined>
  mode: ServerMode
}

export function decideEncryption(_input: EncryptionInput): EncryptionDecision | null {
  return null
}
