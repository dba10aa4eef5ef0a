// The EVP and ipsec-mb ciphers and the package loop over them (see engine.h).
//
// Opening verifies each tag before that package's plaintext is released, and wipes the
// package on failure (NIST SP 800-38D 7.2 step 8: no plaintext without a valid tag).

#include "engine.h"

#include <openssl/evp.h>

#include <mutex>

#if defined(__linux__) && (defined(__x86_64__) || defined(__i386__)) && defined(__has_include)
#if __has_include(<intel-ipsec-mb.h>)
#define S3SSE_HAVE_IPSEC_MB 1
#include <dlfcn.h>
#include <intel-ipsec-mb.h>
#endif
#endif

namespace s3sse {
namespace {

// A readable byte for pointers of empty inputs: the libraries check pointers even at length 0.
const uint8_t kEmpty[1] = {0};
inline const uint8_t* NonNull(const uint8_t* p) { return p != nullptr ? p : kEmpty; }

// ---- EVP ------------------------------------------------------------------------------

class EvpCipher {
 public:
  bool Init(Direction direction, const uint8_t key[KEY_SIZE]) {
    ctx_ = EVP_CIPHER_CTX_new();
    if (ctx_ == nullptr) return false;
    const int ok = direction == Direction::Seal ? EVP_EncryptInit_ex(ctx_, EVP_aes_256_gcm(), nullptr, key, nullptr)
                                                : EVP_DecryptInit_ex(ctx_, EVP_aes_256_gcm(), nullptr, key, nullptr);
    return ok == 1;
  }

  bool Seal(const uint8_t nonce[NONCE_SIZE], const uint8_t* aad, size_t aadLength, const uint8_t* in, size_t n,
            uint8_t* out) {
    int len = 0;
    int tail = 0;
    if (EVP_EncryptInit_ex(ctx_, nullptr, nullptr, nullptr, nonce) != 1) return false;
    if (aadLength > 0 && EVP_EncryptUpdate(ctx_, nullptr, &len, aad, static_cast<int>(aadLength)) != 1) return false;
    len = 0;
    if (n > 0 && EVP_EncryptUpdate(ctx_, out, &len, in, static_cast<int>(n)) != 1) return false;
    if (EVP_EncryptFinal_ex(ctx_, out + len, &tail) != 1) return false;
    return EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_GCM_GET_TAG, TAG_SIZE, out + n) == 1;
  }

  // EVP_DecryptFinal_ex is where GCM compares the tag.
  Status Open(const uint8_t nonce[NONCE_SIZE], const uint8_t* aad, size_t aadLength, const uint8_t* in, size_t n,
              uint8_t* out) {
    int len = 0;
    int tail = 0;
    bool ok = EVP_DecryptInit_ex(ctx_, nullptr, nullptr, nullptr, nonce) == 1;
    if (ok && aadLength > 0) ok = EVP_DecryptUpdate(ctx_, nullptr, &len, aad, static_cast<int>(aadLength)) == 1;
    len = 0;
    if (ok && n > 0) ok = EVP_DecryptUpdate(ctx_, out, &len, in, static_cast<int>(n)) == 1;
    if (ok) ok = EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_GCM_SET_TAG, TAG_SIZE, const_cast<uint8_t*>(in + n)) == 1;
    if (!ok) {
      OPENSSL_cleanse(out, n);
      return Status::CryptoFailure;
    }
    if (EVP_DecryptFinal_ex(ctx_, out + len, &tail) != 1) {
      OPENSSL_cleanse(out, n);
      return Status::AuthFailed;
    }
    return Status::Ok;
  }

  ~EvpCipher() { EVP_CIPHER_CTX_free(ctx_); }  // clears the key schedule

 private:
  EVP_CIPHER_CTX* ctx_ = nullptr;
};

// ---- ipsec-mb -------------------------------------------------------------------------

IpsecMbInfo* g_imb = nullptr;
std::mutex g_imbMutex;

#ifdef S3SSE_HAVE_IPSEC_MB

// What the engine calls, taken once from the manager initialised for the chosen architecture.
struct ImbApi {
  aes_gcm_pre_t pre = nullptr;
  aes_gcm_enc_dec_t enc = nullptr;
  aes_gcm_enc_dec_t dec = nullptr;
};
ImbApi g_api;

class ImbCipher {
 public:
  bool Init(Direction, const uint8_t key[KEY_SIZE]) {
    // Key expansion and the GHASH key powers, once per call.
    g_api.pre(key, &keys_);
    return true;
  }

  bool Seal(const uint8_t nonce[NONCE_SIZE], const uint8_t* aad, size_t aadLength, const uint8_t* in, size_t n,
            uint8_t* out) {
    g_api.enc(&keys_, &ctx_, out, NonNull(in), n, nonce, NonNull(aad), aadLength, out + n, TAG_SIZE);
    return true;
  }

  // ipsec-mb computes the tag of the ciphertext; comparing it is ours, in constant time.
  Status Open(const uint8_t nonce[NONCE_SIZE], const uint8_t* aad, size_t aadLength, const uint8_t* in, size_t n,
              uint8_t* out) {
    uint8_t tag[TAG_SIZE];
    g_api.dec(&keys_, &ctx_, n > 0 ? out : tag, NonNull(in), n, nonce, NonNull(aad), aadLength, tag, TAG_SIZE);
    const bool good = CRYPTO_memcmp(tag, in + n, TAG_SIZE) == 0;
    OPENSSL_cleanse(tag, sizeof tag);
    if (!good) {
      OPENSSL_cleanse(out, n);
      return Status::AuthFailed;
    }
    return Status::Ok;
  }

  ~ImbCipher() {
    OPENSSL_cleanse(&keys_, sizeof keys_);
    OPENSSL_cleanse(&ctx_, sizeof ctx_);
  }

 private:
  alignas(64) gcm_key_data keys_;
  gcm_context_data ctx_;
};

std::string ArchName(IMB_ARCH a) {
  switch (a) {
    case IMB_ARCH_SSE: return "sse";
    case IMB_ARCH_AVX: return "avx";
    case IMB_ARCH_AVX2: return "avx2";
    case IMB_ARCH_AVX512: return "avx512";
    case IMB_ARCH_NOAESNI: return "no-aesni";
    default: return "none";
  }
}

std::string Hex(const uint8_t* p, size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; i++) {
    s += digits[p[i] >> 4];
    s += digits[p[i] & 15];
  }
  return s;
}

// A known answer after loading (NIST GCM test case 14: AES-256, zero key, zero IV, 16 zero
// bytes): proves the manager's pointers are what this code thinks they are before any
// caller's data goes through them.
bool KnownAnswer(std::string& why) {
  const uint8_t key[KEY_SIZE] = {0};
  const uint8_t iv[NONCE_SIZE] = {0};
  const uint8_t pt[16] = {0};
  uint8_t out[32];
  ImbCipher c;
  c.Init(Direction::Seal, key);
  c.Seal(iv, nullptr, 0, pt, sizeof pt, out);
  const std::string got = Hex(out, sizeof out);
  const std::string want = "cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919";
  if (got != want) {
    why = "its AES-256-GCM gave a wrong known answer";
    return false;
  }
  uint8_t back[16];
  if (c.Open(iv, nullptr, 0, out, sizeof pt, back) != Status::Ok || std::memcmp(back, pt, sizeof pt) != 0) {
    why = "its AES-256-GCM did not open its own known answer";
    return false;
  }
  out[31] ^= 1;
  if (c.Open(iv, nullptr, 0, out, sizeof pt, back) != Status::AuthFailed) {
    why = "its AES-256-GCM accepted a wrong tag";
    return false;
  }
  return true;
}

void DoLoad(IpsecMbInfo& info, const std::string& path, const std::string& arch) {
  info.path = path;
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* e = dlerror();
    info.reason = std::string("dlopen failed: ") + (e != nullptr ? e : path);
    return;
  }
  auto sym = [&](const char* name) { return dlsym(handle, name); };
  auto getVersion = reinterpret_cast<unsigned (*)()>(sym("imb_get_version"));
  auto getVersionStr = reinterpret_cast<const char* (*)()>(sym("imb_get_version_str"));
  auto allocMgr = reinterpret_cast<IMB_MGR* (*)(uint64_t)>(sym("alloc_mb_mgr"));
  auto getErrno = reinterpret_cast<int (*)(IMB_MGR*)>(sym("imb_get_errno"));
  auto strError = reinterpret_cast<const char* (*)(int)>(sym("imb_get_strerror"));
  auto initAuto = reinterpret_cast<void (*)(IMB_MGR*, IMB_ARCH*)>(sym("init_mb_mgr_auto"));
  if (getVersion == nullptr || getVersionStr == nullptr || allocMgr == nullptr || initAuto == nullptr) {
    info.reason = path + " lacks imb_get_version, alloc_mb_mgr or init_mb_mgr_auto: not ipsec-mb 1.3";
    dlclose(handle);
    return;
  }
  const unsigned v = getVersion();
  info.version = std::to_string(v >> 16) + "." + std::to_string((v >> 8) & 0xff) + "." + std::to_string(v & 0xff);
  // The manager's layout is the header's: only the minor version this was built against.
  if ((v >> 8) != (IMB_VERSION_NUM >> 8)) {
    info.reason = "libIPSec_MB " + info.version + " is not the " + std::to_string(IMB_VERSION_NUM >> 16) + "." +
                  std::to_string((IMB_VERSION_NUM >> 8) & 0xff) + ".x this addon was built for (imb_get_version)";
    dlclose(handle);
    return;
  }
  IMB_MGR* mgr = allocMgr(0);
  if (mgr == nullptr) {
    info.reason = "alloc_mb_mgr failed";
    dlclose(handle);
    return;
  }
  IMB_ARCH chosen = IMB_ARCH_NONE;
  if (arch.empty() || arch == "auto") {
    initAuto(mgr, &chosen);
  } else {
    const char* fn = arch == "sse" ? "init_mb_mgr_sse" : arch == "avx" ? "init_mb_mgr_avx"
                   : arch == "avx2" ? "init_mb_mgr_avx2" : arch == "avx512" ? "init_mb_mgr_avx512" : nullptr;
    auto init = fn != nullptr ? reinterpret_cast<void (*)(IMB_MGR*)>(sym(fn)) : nullptr;
    if (init == nullptr) {
      info.reason = "S3SSE_IPSEC_MB_ARCH=" + arch + " is not one of auto, sse, avx, avx2, avx512";
      dlclose(handle);
      return;
    }
    init(mgr);
    chosen = static_cast<IMB_ARCH>(mgr->used_arch);
    info.forced = true;
  }
  const int err = getErrno != nullptr ? getErrno(mgr) : 0;
  if (err != 0) {
    info.reason = std::string("initialising the manager for ") + (arch.empty() ? "auto" : arch) +
                  " failed: " + (strError != nullptr ? strError(err) : std::to_string(err));
    dlclose(handle);
    return;
  }
  info.arch = ArchName(chosen);
  if (chosen != IMB_ARCH_SSE && chosen != IMB_ARCH_AVX && chosen != IMB_ARCH_AVX2 && chosen != IMB_ARCH_AVX512) {
    // NOAESNI would emulate AES in software: slower than OpenSSL, and not constant time.
    info.reason = "ipsec-mb chose the " + info.arch + " architecture: no AES-NI path";
    dlclose(handle);
    return;
  }
  info.vaes = chosen == IMB_ARCH_AVX512 && (mgr->features & IMB_FEATURE_VAES) != 0 &&
              (mgr->features & IMB_FEATURE_VPCLMULQDQ) != 0;
  g_api.pre = mgr->gcm256_pre;
  g_api.enc = mgr->gcm256_enc;
  g_api.dec = mgr->gcm256_dec;
  if (g_api.pre == nullptr || g_api.enc == nullptr || g_api.dec == nullptr) {
    info.reason = "the manager has no AES-256-GCM functions for " + info.arch;
    dlclose(handle);
    return;
  }
  std::string why;
  if (!KnownAnswer(why)) {
    info.reason = why;
    g_api = ImbApi();
    dlclose(handle);
    return;
  }
  (void)getVersionStr;
  // The manager and the library stay for the life of the process: every call uses them.
  info.available = true;
}

#endif  // S3SSE_HAVE_IPSEC_MB

// ---- the package loop, once for both engines -----------------------------------------

template <class Cipher>
void RunWith(Job& job) {
  Cipher c;
  if (!c.Init(job.direction, job.key)) {
    job.status = Status::CryptoFailure;
    return;
  }
  uint8_t nonce[NONCE_SIZE];
  const uint8_t* in = job.in;
  uint8_t* out = job.out;
  size_t left = job.inLength;
  const size_t inStep = job.direction == Direction::Seal ? job.packageSize : job.packageSize + TAG_SIZE;
  for (uint64_t i = 0; i < job.packages; i++) {
    const size_t take = left < inStep ? left : inStep;
    WriteNonce(nonce, job.prefix, job.firstPackage + i, job.final && i == job.packages - 1);
    Status st;
    size_t produced;
    if (job.direction == Direction::Seal) {
      st = c.Seal(nonce, nullptr, 0, in, take, out) ? Status::Ok : Status::CryptoFailure;
      produced = take + TAG_SIZE;
    } else {
      st = c.Open(nonce, nullptr, 0, in, take - TAG_SIZE, out);
      produced = take - TAG_SIZE;
    }
    if (st != Status::Ok) {
      job.status = st;
      job.failedPackage = job.firstPackage + i;
      break;
    }
    in += take;
    out += produced;
    left -= take;
  }
  OPENSSL_cleanse(nonce, sizeof nonce);
}

template <class Cipher>
Status MessageWith(Direction direction, const uint8_t key[KEY_SIZE], const uint8_t iv[NONCE_SIZE], const uint8_t* aad,
                   size_t aadLength, const uint8_t* in, size_t n, uint8_t* out) {
  Cipher c;
  if (!c.Init(direction, key)) return Status::CryptoFailure;
  if (direction == Direction::Seal) return c.Seal(iv, aad, aadLength, in, n, out) ? Status::Ok : Status::CryptoFailure;
  return c.Open(iv, aad, aadLength, in, n, out);
}

Status Message(EngineId id, Direction direction, const uint8_t key[KEY_SIZE], const uint8_t iv[NONCE_SIZE],
               const uint8_t* aad, size_t aadLength, const uint8_t* in, size_t n, uint8_t* out) {
#ifdef S3SSE_HAVE_IPSEC_MB
  if (id == EngineId::IpsecMb) {
    if (!EngineReady(id)) return Status::CryptoFailure;
    return MessageWith<ImbCipher>(direction, key, iv, aad, aadLength, in, n, out);
  }
#endif
  if (id != EngineId::Evp) return Status::CryptoFailure;
  return MessageWith<EvpCipher>(direction, key, iv, aad, aadLength, in, n, out);
}

}  // namespace

const IpsecMbInfo& LoadIpsecMb(const std::string& path, const std::string& arch) {
  std::lock_guard<std::mutex> lock(g_imbMutex);
  if (g_imb == nullptr) {
    g_imb = new IpsecMbInfo();  // for the life of the process, like the library
#ifdef S3SSE_HAVE_IPSEC_MB
    DoLoad(*g_imb, path, arch);
#else
    (void)arch;
    g_imb->path = path;
    g_imb->reason = "this addon was built without intel-ipsec-mb.h (install libipsec-mb-dev and rebuild)";
#endif
  }
  return *g_imb;
}

const IpsecMbInfo* IpsecMbState() {
  std::lock_guard<std::mutex> lock(g_imbMutex);
  return g_imb;
}

const char* EngineName(EngineId id) { return id == EngineId::IpsecMb ? "ipsec-mb" : "evp"; }

bool EngineReady(EngineId id) {
  if (id == EngineId::Evp) return true;
  const IpsecMbInfo* s = IpsecMbState();
  return id == EngineId::IpsecMb && s != nullptr && s->available;
}

void RunJob(Job& job) {
#ifdef S3SSE_HAVE_IPSEC_MB
  if (job.engine == EngineId::IpsecMb) {
    if (!EngineReady(job.engine)) {
      job.status = Status::CryptoFailure;
      return;
    }
    RunWith<ImbCipher>(job);
    return;
  }
#endif
  if (job.engine != EngineId::Evp) {
    job.status = Status::CryptoFailure;
    return;
  }
  RunWith<EvpCipher>(job);
}

Status SealMessage(EngineId id, const uint8_t key[KEY_SIZE], const uint8_t iv[NONCE_SIZE], const uint8_t* aad,
                   size_t aadLength, const uint8_t* in, size_t n, uint8_t* out) {
  return Message(id, Direction::Seal, key, iv, aad, aadLength, in, n, out);
}

Status OpenMessage(EngineId id, const uint8_t key[KEY_SIZE], const uint8_t iv[NONCE_SIZE], const uint8_t* aad,
                   size_t aadLength, const uint8_t* in, size_t n, uint8_t* out) {
  return Message(id, Direction::Open, key, iv, aad, aadLength, in, n, out);
}

}  // namespace s3sse
