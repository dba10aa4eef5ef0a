// s3-sse native package cipher: AES-256-GCM over the OpenSSL EVP interface that Node
// itself carries, so OpenSSL's AES-NI + PCLMULQDQ (and AVX) GCM code paths do the work.
//
// One call seals or opens a run of packages (docs/FORMAT.md, "Packages"):
//   package i: nonce = prefix[7] ‖ uint32_be(firstPackage + i) ‖ flag, no AAD,
//              sealed = ciphertext ‖ tag[16]; flag = 1 only on the last package of a
//              call made with final = true.
// One EVP context per call: the key schedule is set once, each package re-initialises only
// the IV. Output goes straight into the caller's buffer (no copies). Opening verifies each
// tag before that package's plaintext is released, and wipes the package on failure.
//
// Every size is checked again here, whatever the TypeScript side already checked: this
// boundary must never read or write past a buffer.

#include <napi.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/opensslv.h>

#include <cstdint>
#include <cstring>
#include <string>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#if defined(__aarch64__) && defined(__linux__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

namespace {

constexpr size_t PACKAGE_SIZE = 65536;
constexpr size_t TAG_SIZE = 16;
constexpr size_t KEY_SIZE = 32;
constexpr size_t NONCE_PREFIX_SIZE = 7;
constexpr size_t NONCE_SIZE = 12;
constexpr uint64_t MAX_PACKAGE_NUMBER = 0xffffffffull;
constexpr size_t MAX_PACKAGE_SIZE = 16 * 1024 * 1024;

enum class Direction { Seal, Open };

enum class Status { Ok, AuthFailed, CryptoFailure };

// What one call needs, copied out of JavaScript values so it can run off the main thread.
struct Job {
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

struct ArgError {
  const char* code;
  std::string message;
  bool hasPackage = false;
  uint64_t packageNumber = 0;
};

inline void WriteNonce(uint8_t nonce[NONCE_SIZE], const uint8_t prefix[NONCE_PREFIX_SIZE], uint64_t number,
                       bool finalFlag) {
  std::memcpy(nonce, prefix, NONCE_PREFIX_SIZE);
  nonce[7] = static_cast<uint8_t>(number >> 24);
  nonce[8] = static_cast<uint8_t>(number >> 16);
  nonce[9] = static_cast<uint8_t>(number >> 8);
  nonce[10] = static_cast<uint8_t>(number);
  nonce[11] = finalFlag ? 1 : 0;
}

// One GCM message under the key already set in `ctx`: the primitive of both the package
// loop and the single-message entry points, so known-answer tests exercise this code.
bool SealOne(EVP_CIPHER_CTX* ctx, const uint8_t nonce[NONCE_SIZE], const uint8_t* aad, size_t aadLength,
             const uint8_t* in, size_t n, uint8_t* out) {
  int len = 0;
  int tail = 0;
  if (EVP_EncryptInit_ex(ctx, nullptr, nullptr, nullptr, nonce) != 1) return false;
  if (aadLength > 0 && EVP_EncryptUpdate(ctx, nullptr, &len, aad, static_cast<int>(aadLength)) != 1) return false;
  len = 0;
  if (n > 0 && EVP_EncryptUpdate(ctx, out, &len, in, static_cast<int>(n)) != 1) return false;
  if (EVP_EncryptFinal_ex(ctx, out + len, &tail) != 1) return false;
  return EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_SIZE, out + n) == 1;
}

// Opens one message of n ciphertext bytes followed by its tag. The plaintext written to
// `out` is wiped unless the tag verifies (EVP_DecryptFinal_ex is where GCM compares it,
// NIST SP 800-38D 7.2 step 8).
Status OpenOne(EVP_CIPHER_CTX* ctx, const uint8_t nonce[NONCE_SIZE], const uint8_t* aad, size_t aadLength,
               const uint8_t* in, size_t n, uint8_t* out) {
  int len = 0;
  int tail = 0;
  bool ok = EVP_DecryptInit_ex(ctx, nullptr, nullptr, nullptr, nonce) == 1;
  if (ok && aadLength > 0) ok = EVP_DecryptUpdate(ctx, nullptr, &len, aad, static_cast<int>(aadLength)) == 1;
  len = 0;
  if (ok && n > 0) ok = EVP_DecryptUpdate(ctx, out, &len, in, static_cast<int>(n)) == 1;
  if (ok) ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_SIZE, const_cast<uint8_t*>(in + n)) == 1;
  if (!ok) {
    OPENSSL_cleanse(out, n);
    return Status::CryptoFailure;
  }
  if (EVP_DecryptFinal_ex(ctx, out + len, &tail) != 1) {
    OPENSSL_cleanse(out, n);
    return Status::AuthFailed;
  }
  return Status::Ok;
}

EVP_CIPHER_CTX* NewContext(Direction direction, const uint8_t key[KEY_SIZE]) {
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  if (ctx == nullptr) return nullptr;
  const int ok = direction == Direction::Seal ? EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr, key, nullptr)
                                              : EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr, key, nullptr);
  if (ok != 1) {
    EVP_CIPHER_CTX_free(ctx);
    return nullptr;
  }
  return ctx;
}

void RunSeal(Job& job) {
  EVP_CIPHER_CTX* ctx = NewContext(Direction::Seal, job.key);
  if (ctx == nullptr) {
    job.status = Status::CryptoFailure;
    return;
  }
  uint8_t nonce[NONCE_SIZE];
  const uint8_t* in = job.in;
  uint8_t* out = job.out;
  size_t left = job.inLength;
  for (uint64_t i = 0; i < job.packages; i++) {
    const size_t n = left < job.packageSize ? left : job.packageSize;
    WriteNonce(nonce, job.prefix, job.firstPackage + i, job.final && i == job.packages - 1);
    if (!SealOne(ctx, nonce, nullptr, 0, in, n, out)) {
      job.status = Status::CryptoFailure;
      job.failedPackage = job.firstPackage + i;
      break;
    }
    in += n;
    out += n + TAG_SIZE;
    left -= n;
  }
  OPENSSL_cleanse(nonce, sizeof nonce);
  EVP_CIPHER_CTX_free(ctx);  // clears the key schedule
}

void RunOpen(Job& job) {
  EVP_CIPHER_CTX* ctx = NewContext(Direction::Open, job.key);
  if (ctx == nullptr) {
    job.status = Status::CryptoFailure;
    return;
  }
  uint8_t nonce[NONCE_SIZE];
  const size_t sealedSize = job.packageSize + TAG_SIZE;
  const uint8_t* in = job.in;
  uint8_t* out = job.out;
  size_t left = job.inLength;
  for (uint64_t i = 0; i < job.packages; i++) {
    const size_t sealed = left < sealedSize ? left : sealedSize;
    const size_t n = sealed - TAG_SIZE;
    WriteNonce(nonce, job.prefix, job.firstPackage + i, job.final && i == job.packages - 1);
    const Status st = OpenOne(ctx, nonce, nullptr, 0, in, n, out);
    if (st != Status::Ok) {
      job.status = st;
      job.failedPackage = job.firstPackage + i;
      break;
    }
    in += sealed;
    out += n;
    left -= sealed;
  }
  OPENSSL_cleanse(nonce, sizeof nonce);
  EVP_CIPHER_CTX_free(ctx);
}

void Run(Job& job) {
  if (job.direction == Direction::Seal) {
    RunSeal(job);
  } else {
    RunOpen(job);
  }
}

// ---- errors ---------------------------------------------------------------------------

// The S3sseError class handed over by the TypeScript loader (setErrorClass), so that the
// addon throws exactly what every other backend throws.
struct AddonData {
  Napi::FunctionReference errorClass;
};

Napi::Value MakeError(Napi::Env env, const char* code, const std::string& message, bool hasPackage = false,
                      uint64_t packageNumber = 0) {
  AddonData* data = env.GetInstanceData<AddonData>();
  Napi::Object extra = Napi::Object::New(env);
  if (hasPackage) extra.Set("packageNumber", Napi::Number::New(env, static_cast<double>(packageNumber)));
  if (data != nullptr && !data->errorClass.IsEmpty()) {
    return data->errorClass.New({Napi::String::New(env, code), Napi::String::New(env, message), extra});
  }
  Napi::Error e = Napi::Error::New(env, message);
  e.Set("code", Napi::String::New(env, code));
  if (hasPackage) e.Set("packageNumber", Napi::Number::New(env, static_cast<double>(packageNumber)));
  return e.Value();
}

Napi::Value ResultError(Napi::Env env, const Job& job) {
  if (job.status == Status::AuthFailed) {
    return MakeError(env, "S3SSE_AUTH_FAILED", "package " + std::to_string(job.failedPackage) + " failed authentication",
                     true, job.failedPackage);
  }
  return MakeError(env, "S3SSE_CRYPTO_FAILURE", "the cipher failed in OpenSSL", true, job.failedPackage);
}

// ---- argument checks ------------------------------------------------------------------

bool GetBytes(const Napi::Value& v, uint8_t** data, size_t* length) {
  if (!v.IsTypedArray()) return false;
  Napi::TypedArray t = v.As<Napi::TypedArray>();
  if (t.TypedArrayType() != napi_uint8_array) return false;
  Napi::Uint8Array u = v.As<Napi::Uint8Array>();
  *data = u.Data();
  *length = u.ByteLength();
  return true;
}

// Fills `job` from (key, noncePrefix, firstPackage, final, input, out[, packageSize]).
// Returns false and sets `err` when an argument is wrong; `job` then holds no key.
bool ParseArgs(const Napi::CallbackInfo& info, Direction direction, Job& job, ArgError& err) {
  job.direction = direction;
  uint8_t* key = nullptr;
  size_t keyLength = 0;
  if (info.Length() < 6) {
    err = {"S3SSE_BAD_ARGUMENT", "expected (key, noncePrefix, firstPackage, final, input, out[, packageSize])"};
    return false;
  }
  if (!GetBytes(info[0], &key, &keyLength) || keyLength != KEY_SIZE) {
    err = {"S3SSE_BAD_KEY_SIZE", "key must be KEY_SIZE = 32 bytes"};
    return false;
  }
  uint8_t* prefix = nullptr;
  size_t prefixLength = 0;
  if (!GetBytes(info[1], &prefix, &prefixLength) || prefixLength != NONCE_PREFIX_SIZE) {
    err = {"S3SSE_BAD_NONCE_SIZE", "noncePrefix must be NONCE_PREFIX_SIZE = 7 bytes"};
    return false;
  }
  size_t packageSize = PACKAGE_SIZE;
  if (info.Length() > 6 && !info[6].IsUndefined()) {
    double p = info[6].IsNumber() ? info[6].As<Napi::Number>().DoubleValue() : -1;
    if (!(p >= 1 && p <= static_cast<double>(MAX_PACKAGE_SIZE)) || p != static_cast<double>(static_cast<size_t>(p))) {
      err = {"S3SSE_BAD_PACKAGE_SIZE", "packageSize must be an integer from 1 to MAX_PACKAGE_SIZE = 16777216"};
      return false;
    }
    packageSize = static_cast<size_t>(p);
  }
  double first = info[2].IsNumber() ? info[2].As<Napi::Number>().DoubleValue() : -1;
  if (!(first >= 0 && first <= static_cast<double>(MAX_PACKAGE_NUMBER)) ||
      first != static_cast<double>(static_cast<uint64_t>(first))) {
    err = {"S3SSE_BAD_PACKAGE_NUMBER", "firstPackage must be an integer from 0 to MAX_PACKAGE_NUMBER = 4294967295"};
    return false;
  }
  if (!info[3].IsBoolean()) {
    err = {"S3SSE_BAD_ARGUMENT", "final must be a boolean"};
    return false;
  }
  uint8_t* in = nullptr;
  size_t inLength = 0;
  uint8_t* out = nullptr;
  size_t outLength = 0;
  if (!GetBytes(info[4], &in, &inLength) || !GetBytes(info[5], &out, &outLength)) {
    err = {"S3SSE_BAD_ARGUMENT", "input and out must be Uint8Arrays"};
    return false;
  }
  const bool final = info[3].As<Napi::Boolean>().Value();
  uint64_t packages = 0;
  size_t need = 0;
  if (direction == Direction::Seal) {
    packages = inLength == 0 ? (final ? 1 : 0) : (inLength + packageSize - 1) / packageSize;
    need = inLength + packages * TAG_SIZE;
  } else {
    const size_t sealedSize = packageSize + TAG_SIZE;
    if (inLength == 0 && final) {
      err = {"S3SSE_TRUNCATED", "sealed input is empty: a final call needs at least one package (TAG_SIZE bytes)"};
      return false;
    }
    const size_t whole = inLength / sealedSize;
    const size_t rest = inLength % sealedSize;
    if (rest != 0 && rest < TAG_SIZE) {
      err = {"S3SSE_TRUNCATED", "sealed input ends with a piece shorter than a tag (TAG_SIZE = 16)", true,
             static_cast<uint64_t>(first) + whole};
      return false;
    }
    packages = whole + (rest != 0 ? 1 : 0);
    need = inLength - packages * TAG_SIZE;
  }
  if (packages > 0 && static_cast<uint64_t>(first) + packages - 1 > MAX_PACKAGE_NUMBER) {
    err = {"S3SSE_PACKAGE_OVERFLOW", "a package number would pass MAX_PACKAGE_NUMBER = 4294967295; a stream never wraps around"};
    return false;
  }
  if (outLength < need) {
    err = {"S3SSE_BAD_OUTPUT_SIZE",
           "out holds " + std::to_string(outLength) + " bytes; this call writes " + std::to_string(need)};
    return false;
  }
  std::memcpy(job.key, key, KEY_SIZE);
  std::memcpy(job.prefix, prefix, NONCE_PREFIX_SIZE);
  job.firstPackage = static_cast<uint64_t>(first);
  job.final = final;
  job.in = in;
  job.inLength = inLength;
  job.out = out;
  job.packageSize = packageSize;
  job.packages = packages;
  job.outLength = need;
  return true;
}

// ---- sync entry points ----------------------------------------------------------------

Napi::Value Call(const Napi::CallbackInfo& info, Direction direction) {
  Napi::Env env = info.Env();
  Job job;
  ArgError err;
  if (!ParseArgs(info, direction, job, err)) {
    Napi::Error(env, MakeError(env, err.code, err.message, err.hasPackage, err.packageNumber)).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Run(job);
  if (job.status != Status::Ok) {
    Napi::Error(env, ResultError(env, job)).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::Number::New(env, static_cast<double>(job.outLength));
}

Napi::Value Seal(const Napi::CallbackInfo& info) { return Call(info, Direction::Seal); }
Napi::Value Open(const Napi::CallbackInfo& info) { return Call(info, Direction::Open); }

// ---- single-message entry points (known-answer tests, small messages) -----------------

// gcmSeal(key, iv, aad, plaintext) -> Buffer; gcmOpen(key, iv, aad, sealed) -> Buffer.
Napi::Value Gcm(const Napi::CallbackInfo& info, Direction direction) {
  Napi::Env env = info.Env();
  uint8_t *key = nullptr, *iv = nullptr, *aad = nullptr, *in = nullptr;
  size_t keyLength = 0, ivLength = 0, aadLength = 0, inLength = 0;
  const char* code = nullptr;
  std::string message;
  if (info.Length() < 4 || !GetBytes(info[0], &key, &keyLength) || keyLength != KEY_SIZE) {
    code = "S3SSE_BAD_KEY_SIZE";
    message = "key must be KEY_SIZE = 32 bytes";
  } else if (!GetBytes(info[1], &iv, &ivLength) || ivLength != NONCE_SIZE) {
    code = "S3SSE_BAD_NONCE_SIZE";
    message = "iv must be NONCE_SIZE = 12 bytes";
  } else if (!GetBytes(info[2], &aad, &aadLength) || !GetBytes(info[3], &in, &inLength) ||
             aadLength > INT32_MAX || inLength > INT32_MAX) {
    code = "S3SSE_BAD_ARGUMENT";
    message = "aad and input must be Uint8Arrays under 2 GiB";
  } else if (direction == Direction::Open && inLength < TAG_SIZE) {
    code = "S3SSE_TRUNCATED";
    message = "sealed message is shorter than a tag (TAG_SIZE = 16)";
  }
  if (code != nullptr) {
    Napi::Error(env, MakeError(env, code, message)).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  uint8_t keyCopy[KEY_SIZE];
  std::memcpy(keyCopy, key, KEY_SIZE);
  EVP_CIPHER_CTX* ctx = NewContext(direction, keyCopy);
  OPENSSL_cleanse(keyCopy, sizeof keyCopy);
  if (ctx == nullptr) {
    Napi::Error(env, MakeError(env, "S3SSE_CRYPTO_FAILURE", "the cipher failed in OpenSSL")).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const size_t outLength = direction == Direction::Seal ? inLength + TAG_SIZE : inLength - TAG_SIZE;
  Napi::Buffer<uint8_t> out = Napi::Buffer<uint8_t>::New(env, outLength);
  Status st = Status::Ok;
  if (direction == Direction::Seal) {
    if (!SealOne(ctx, iv, aad, aadLength, in, inLength, out.Data())) st = Status::CryptoFailure;
  } else {
    st = OpenOne(ctx, iv, aad, aadLength, in, outLength, out.Data());
  }
  EVP_CIPHER_CTX_free(ctx);
  if (st == Status::AuthFailed) {
    Napi::Error(env, MakeError(env, "S3SSE_AUTH_FAILED", "message failed authentication")).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  if (st != Status::Ok) {
    Napi::Error(env, MakeError(env, "S3SSE_CRYPTO_FAILURE", "the cipher failed in OpenSSL")).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return out;
}

Napi::Value GcmSeal(const Napi::CallbackInfo& info) { return Gcm(info, Direction::Seal); }
Napi::Value GcmOpen(const Napi::CallbackInfo& info) { return Gcm(info, Direction::Open); }

// ---- async entry points (libuv thread pool) -------------------------------------------

class CipherWorker : public Napi::AsyncWorker {
 public:
  CipherWorker(Napi::Env env, const Napi::CallbackInfo& info)
      : Napi::AsyncWorker(env, "s3sse:cipher"), deferred_(Napi::Promise::Deferred::New(env)) {
    // The input and output buffers stay referenced (and so alive and unmoved) until the
    // work is done; the work reads and writes them in place.
    input_ = Napi::Persistent(info[4].As<Napi::Object>());
    output_ = Napi::Persistent(info[5].As<Napi::Object>());
  }

  Job& job() { return job_; }
  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  void Execute() override { Run(job_); }

  void OnOK() override {
    Napi::Env env = Env();
    if (job_.status != Status::Ok) {
      deferred_.Reject(ResultError(env, job_));
    } else {
      deferred_.Resolve(Napi::Number::New(env, static_cast<double>(job_.outLength)));
    }
  }

  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  Napi::ObjectReference input_;
  Napi::ObjectReference output_;
  Job job_;
};

Napi::Value CallAsync(const Napi::CallbackInfo& info, Direction direction) {
  Napi::Env env = info.Env();
  Job probe;
  ArgError err;
  if (!ParseArgs(info, direction, probe, err)) {
    Napi::Promise::Deferred d = Napi::Promise::Deferred::New(env);
    d.Reject(MakeError(env, err.code, err.message, err.hasPackage, err.packageNumber));
    return d.Promise();
  }
  auto* worker = new CipherWorker(env, info);
  ParseArgs(info, direction, worker->job(), err);
  Napi::Promise p = worker->Promise();
  worker->Queue();
  return p;
}

Napi::Value SealAsync(const Napi::CallbackInfo& info) { return CallAsync(info, Direction::Seal); }
Napi::Value OpenAsync(const Napi::CallbackInfo& info) { return CallAsync(info, Direction::Open); }

// ---- CPU probe ------------------------------------------------------------------------

Napi::Value CpuFeatures(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  o.Set("arch", "x64");
  o.Set("aesni", Napi::Boolean::New(env, __builtin_cpu_supports("aes")));
  o.Set("pclmulqdq", Napi::Boolean::New(env, __builtin_cpu_supports("pclmul")));
  o.Set("avx", Napi::Boolean::New(env, __builtin_cpu_supports("avx")));
  o.Set("avx2", Napi::Boolean::New(env, __builtin_cpu_supports("avx2")));
  o.Set("avx512f", Napi::Boolean::New(env, __builtin_cpu_supports("avx512f")));
  o.Set("vaes", Napi::Boolean::New(env, __builtin_cpu_supports("vaes")));
  o.Set("vpclmulqdq", Napi::Boolean::New(env, __builtin_cpu_supports("vpclmulqdq")));
#elif defined(__aarch64__) && defined(__linux__)
  const unsigned long hw = getauxval(AT_HWCAP);
  o.Set("arch", "arm64");
  o.Set("aes", Napi::Boolean::New(env, (hw & HWCAP_AES) != 0));
  o.Set("pmull", Napi::Boolean::New(env, (hw & HWCAP_PMULL) != 0));
#else
  o.Set("arch", "unknown");
#endif
  return o;
}

Napi::Value SetErrorClass(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsFunction()) {
    Napi::TypeError::New(env, "setErrorClass expects a constructor").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  AddonData* data = env.GetInstanceData<AddonData>();
  data->errorClass = Napi::Persistent(info[0].As<Napi::Function>());
  return env.Undefined();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData(new AddonData());
  exports.Set("seal", Napi::Function::New(env, Seal, "seal"));
  exports.Set("open", Napi::Function::New(env, Open, "open"));
  exports.Set("sealAsync", Napi::Function::New(env, SealAsync, "sealAsync"));
  exports.Set("openAsync", Napi::Function::New(env, OpenAsync, "openAsync"));
  exports.Set("gcmSeal", Napi::Function::New(env, GcmSeal, "gcmSeal"));
  exports.Set("gcmOpen", Napi::Function::New(env, GcmOpen, "gcmOpen"));
  exports.Set("cpuFeatures", Napi::Function::New(env, CpuFeatures, "cpuFeatures"));
  exports.Set("setErrorClass", Napi::Function::New(env, SetErrorClass, "setErrorClass"));
  exports.Set("PACKAGE_SIZE", Napi::Number::New(env, PACKAGE_SIZE));
  exports.Set("TAG_SIZE", Napi::Number::New(env, TAG_SIZE));
  exports.Set("KEY_SIZE", Napi::Number::New(env, KEY_SIZE));
  exports.Set("NONCE_PREFIX_SIZE", Napi::Number::New(env, NONCE_PREFIX_SIZE));
  exports.Set("MAX_PACKAGE_SIZE", Napi::Number::New(env, MAX_PACKAGE_SIZE));
  exports.Set("opensslVersion", Napi::String::New(env, OpenSSL_version(OPENSSL_VERSION)));
  return exports;
}

}  // namespace

NODE_API_MODULE(s3sse, Init)
