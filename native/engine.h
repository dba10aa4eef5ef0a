// The two AES-256-GCM engines of the addon behind one shape, and the package loop written
// once over them.
//
//   evp       OpenSSL's EVP interface inside Node (AES-NI, PCLMULQDQ, AVX code paths);
//   ipsec-mb  Intel's Multi-Buffer Crypto for IPsec, loaded at run time with dlopen when
//             libIPSec_MB.so.1 is present (VAES + VPCLMULQDQ + AVX-512 code paths), never
//             linked, so the addon loads where the library is missing.
//
// A cipher is keyed once per call (key schedule and GHASH key), then seals or opens one
// message per package with only the IV changing.
#pragma once

#include <openssl/crypto.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "packages.h"

namespace s3sse {

enum class EngineId : uintptr_t { Evp = 1, IpsecMb = 2 };

enum class Status { Ok, AuthFailed, CryptoFailure };

// What one call needs, copied out of JavaScript values so it can run off the main thread.
struct Job {
  EngineId engine = EngineId::Evp;
  Direction direction = Direction::Seal;
  uint8_t key[KEY_SIZE];
  uint8_t prefix[NONCE_PREFIX_SIZE];
  uint64_t firstPackage = 0;
  bool final = false;
  const uint8_t* in = nullptr;
  size_t inLength = 0;
  uint8_t* out = nullptr;
  size_t packageSize = PACKAGE_SIZE;
  uint64_t packages = 0;
  size_t outLength = 0;

  Status status = Status::Ok;
  uint64_t failedPackage = 0;

  Job() = default;
  Job(const Job&) = delete;
  Job& operator=(const Job&) = delete;
  ~Job() {
    OPENSSL_cleanse(key, sizeof key);
    OPENSSL_cleanse(prefix, sizeof prefix);
  }
};

// ---- the ipsec-mb library, loaded once per process ------------------------------------

struct IpsecMbInfo {
  bool available = false;
  // Why it is not available (empty when it is).
  std::string reason;
  std::string path;
  std::string version;
  // The architecture the manager was initialised for: "sse", "avx", "avx2", "avx512".
  std::string arch;
  // Whether its AES-GCM runs the VAES + VPCLMULQDQ code (AVX-512 arch on a CPU that has them).
  bool vaes = false;
  // Whether the architecture was forced (S3SSE_IPSEC_MB_ARCH) instead of chosen by the library.
  bool forced = false;
};

// Loads the library from `path` (a file name is searched the way dlopen searches) and
// initialises its manager for `arch` ("" or "auto": the best the CPU has). The first call in
// a process decides; later calls return that outcome.
const IpsecMbInfo& LoadIpsecMb(const std::string& path, const std::string& arch);
const IpsecMbInfo* IpsecMbState();

// ---- engines --------------------------------------------------------------------------

const char* EngineName(EngineId id);
bool EngineReady(EngineId id);

// Seals or opens every package of `job` on the calling thread.
void RunJob(Job& job);

// One GCM message with any 96-bit IV and AAD: the primitive under the packages.
// seal: out holds n + TAG_SIZE bytes; open: `in` holds n bytes and then the tag, out n bytes.
Status SealMessage(EngineId id, const uint8_t key[KEY_SIZE], const uint8_t iv[NONCE_SIZE], const uint8_t* aad,
                   size_t aadLength, const uint8_t* in, size_t n, uint8_t* out);
Status OpenMessage(EngineId id, const uint8_t key[KEY_SIZE], const uint8_t iv[NONCE_SIZE], const uint8_t* aad,
                   size_t aadLength, const uint8_t* in, size_t n, uint8_t* out);

inline void WriteNonce(uint8_t nonce[NONCE_SIZE], const uint8_t prefix[NONCE_PREFIX_SIZE], uint64_t number,
                       bool finalFlag) {
  std::memcpy(nonce, prefix, NONCE_PREFIX_SIZE);
  nonce[7] = static_cast<uint8_t>(number >> 24);
  nonce[8] = static_cast<uint8_t>(number >> 16);
  nonce[9] = static_cast<uint8_t>(number >> 8);
  nonce[10] = static_cast<uint8_t>(number);
  nonce[11] = finalFlag ? 1 : 0;
}

}  // namespace s3sse
