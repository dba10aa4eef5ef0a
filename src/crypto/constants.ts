/** Plaintext bytes in a package (the last package of a stream may be shorter). */
export const PACKAGE_SIZE = 65536
/** AES-GCM authentication tag appended to every package (NIST SP 800-38D, 128-bit tag). */
export const TAG_SIZE = 16
/** AES-256 key. */
export const KEY_SIZE = 32
/** Leading bytes of every package nonce; then uint32 package number and one flag byte. */
export const NONCE_PREFIX_SIZE = 7
/** The GCM nonce: prefix ‖ uint32_be(package) ‖ flag (96 bits, the size GCM is built for). */
export const NONCE_SIZE = 12
/** Packages are numbered with a uint32; a stream never wraps around. */
export const MAX_PACKAGE_NUMBER = 0xffffffff
/** Largest package size a stream may declare (GCM allows far more; this bounds memory). */
export const MAX_PACKAGE_SIZE = 16 * 1024 * 1024
/** Random salt per stream, input to the stream key derivation. */
export const SALT_SIZE = 32
/** Final-package flag, last byte of the nonce. */
export const FLAG_FINAL = 0x01
export const FLAG_NOT_FINAL = 0x00
