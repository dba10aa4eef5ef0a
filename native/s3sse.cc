// s3-sse native package cipher: the N-API surface over the engines of engine.h.
//
// One call seals or opens a run of packages (docs/FORMAT.md, "Packages"):
//   package i: nonce = prefix[7] ‖ uint32_be(firstPackage + i) ‖ flag, no AAD,
//              sealed = ciphertext ‖ tag[16]; flag = 1 only on the last package of a
//              call made with final = true.
// Output goes straight into the caller's buffer (no copies). Every function set exists once
// per engine (`engine("evp")`, `engine("ipsec-mb")`); the engine is the function's data.
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
#include <utility>
#include <vector>

#include "engine.h"
#include "packages.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#if defined(__aarch64__) && defined(__linux__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

namespace {

using s3sse::CountError;
using s3sse::Direction;
using s3sse::EngineId;
using s3sse::Job;
using s3sse::Status;
using s3sse::KEY_SIZE;
using s3sse::MAX_PACKAGE_NUMBER;
using s3sse::MAX_PACKAGE_SIZE;
using s3sse::NONCE_PREFIX_SIZE;
using s3sse::NONCE_SIZE;
using s3sse::PACKAGE_SIZE;
using s3sse::TAG_SIZE;

struct ArgError {
  const char* code;
  std::string message;
  bool hasPackage = false;
  uint64_t packageNumber = 0;
};

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

void Throw(Napi::Env env, const char* code, const std::string& message) {
  Napi::Error(env, MakeError(env, code, message)).ThrowAsJavaScriptException();
}

std::string FailureMessage(EngineId id) {
  return std::string("the cipher failed in ") + (id == EngineId::IpsecMb ? "ipsec-mb" : "OpenSSL");
}

Napi::Value ResultError(Napi::Env env, const Job& job) {
  if (job.status == Status::AuthFailed) {
    return MakeError(env, "S3SSE_AUTH_FAILED", "package " + std::to_string(job.failedPackage) + " failed authentication",
                     true, job.failedPackage);
  }
  return MakeError(env, "S3SSE_CRYPTO_FAILURE", FailureMessage(job.engine), true, job.failedPackage);
}

EngineId EngineOf(const Napi::CallbackInfo& info) {
  return static_cast<EngineId>(reinterpret_cast<uintptr_t>(info.Data()));
}

bool CheckEngine(Napi::Env env, EngineId id) {
  if (s3sse::EngineReady(id)) return true;
  Throw(env, "S3SSE_BACKEND_UNAVAILABLE", std::string("the ") + s3sse::EngineName(id) + " engine is not loaded");
  return false;
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

bool GetPackageSize(const Napi::Value& v, size_t* packageSize) {
  if (v.IsUndefined()) {
    *packageSize = PACKAGE_SIZE;
    return true;
  }
  const double p = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
  if (!(p >= 1 && p <= static_cast<double>(MAX_PACKAGE_SIZE)) || p != static_cast<double>(static_cast<size_t>(p))) {
    return false;
  }
  *packageSize = static_cast<size_t>(p);
  return true;
}

const char* kBadPackageSize = "packageSize must be an integer from 1 to MAX_PACKAGE_SIZE = 16777216";

// Fills `job` from (key, noncePrefix, firstPackage, final, input, out[, packageSize]).
// Returns false and sets `err` when an argument is wrong; `job` then holds no key.
bool ParseArgs(const Napi::CallbackInfo& info, EngineId engine, Direction direction, Job& job, ArgError& err) {
  job.engine = engine;
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
  if (!GetPackageSize(info.Length() > 6 ? info[6] : info.Env().Undefined(), &packageSize)) {
    err = {"S3SSE_BAD_PACKAGE_SIZE", kBadPackageSize};
    return false;
  }
  const double first = info[2].IsNumber() ? info[2].As<Napi::Number>().DoubleValue() : -1;
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
  const s3sse::Count count = s3sse::CountPackages(direction, inLength, final, packageSize);
  if (count.error == CountError::EmptyFinal) {
    err = {"S3SSE_TRUNCATED", "sealed input is empty: a final call needs at least one package (TAG_SIZE bytes)"};
    return false;
  }
  if (count.error == CountError::ShortPiece) {
    err = {"S3SSE_TRUNCATED", "sealed input ends with a piece shorter than a tag (TAG_SIZE = 16)", true,
           static_cast<uint64_t>(first) + count.whole};
    return false;
  }
  if (count.packages > 0 && static_cast<uint64_t>(first) + count.packages - 1 > MAX_PACKAGE_NUMBER) {
    err = {"S3SSE_PACKAGE_OVERFLOW", "a package number would pass MAX_PACKAGE_NUMBER = 4294967295; a stream never wraps around"};
    return false;
  }
  if (outLength < count.outLength) {
    err = {"S3SSE_BAD_OUTPUT_SIZE",
           "out holds " + std::to_string(outLength) + " bytes; this call writes " + std::to_string(count.outLength)};
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
  job.packages = count.packages;
  job.outLength = count.outLength;
  return true;
}

// ---- sync entry points ----------------------------------------------------------------

Napi::Value Call(const Napi::CallbackInfo& info, Direction direction) {
  Napi::Env env = info.Env();
  const EngineId engine = EngineOf(info);
  if (!CheckEngine(env, engine)) return env.Undefined();
  Job job;
  ArgError err;
  if (!ParseArgs(info, engine, direction, job, err)) {
    Napi::Error(env, MakeError(env, err.code, err.message, err.hasPackage, err.packageNumber)).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  s3sse::RunJob(job);
  if (job.status != Status::Ok) {
    Napi::Error(env, ResultError(env, job)).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::Number::New(env, static_cast<double>(job.outLength));
}

Napi::Value Seal(const Napi::CallbackInfo& info) { return Call(info, Direction::Seal); }
Napi::Value Open(const Napi::CallbackInfo& info) { return Call(info, Direction::Open); }

// ---- single-message entry points ------------------------------------------------------

struct Message {
  uint8_t* key = nullptr;
  uint8_t* iv = nullptr;
  uint8_t* aad = nullptr;
  uint8_t* in = nullptr;
  size_t keyLength = 0, ivLength = 0, aadLength = 0, inLength = 0;
};

// (key, iv, aad, input): false with the error thrown when an argument is wrong.
bool ParseMessage(const Napi::CallbackInfo& info, Direction direction, Message& m) {
  const char* code = nullptr;
  std::string message;
  if (info.Length() < 4 || !GetBytes(info[0], &m.key, &m.keyLength) || m.keyLength != KEY_SIZE) {
    code = "S3SSE_BAD_KEY_SIZE";
    message = "key must be KEY_SIZE = 32 bytes";
  } else if (!GetBytes(info[1], &m.iv, &m.ivLength) || m.ivLength != NONCE_SIZE) {
    code = "S3SSE_BAD_NONCE_SIZE";
    message = "iv must be NONCE_SIZE = 12 bytes";
  } else if (!GetBytes(info[2], &m.aad, &m.aadLength) || !GetBytes(info[3], &m.in, &m.inLength) ||
             m.aadLength > INT32_MAX || m.inLength > INT32_MAX) {
    code = "S3SSE_BAD_ARGUMENT";
    message = "aad and input must be Uint8Arrays under 2 GiB";
  } else if (direction == Direction::Open && m.inLength < TAG_SIZE) {
    code = "S3SSE_TRUNCATED";
    message = "sealed message is shorter than a tag (TAG_SIZE = 16)";
  }
  if (code != nullptr) {
    Throw(info.Env(), code, message);
    return false;
  }
  return true;
}

Napi::Value RunMessage(Napi::Env env, EngineId engine, Direction direction, const Message& m, uint8_t* out) {
  uint8_t key[KEY_SIZE];
  std::memcpy(key, m.key, KEY_SIZE);
  const size_t n = direction == Direction::Seal ? m.inLength : m.inLength - TAG_SIZE;
  const Status st = direction == Direction::Seal
                        ? s3sse::SealMessage(engine, key, m.iv, m.aad, m.aadLength, m.in, n, out)
                        : s3sse::OpenMessage(engine, key, m.iv, m.aad, m.aadLength, m.in, n, out);
  OPENSSL_cleanse(key, sizeof key);
  if (st == Status::AuthFailed) {
    Throw(env, "S3SSE_AUTH_FAILED", "message failed authentication");
    return env.Undefined();
  }
  if (st != Status::Ok) {
    Throw(env, "S3SSE_CRYPTO_FAILURE", FailureMessage(engine));
    return env.Undefined();
  }
  return Napi::Number::New(env, static_cast<double>(direction == Direction::Seal ? n + TAG_SIZE : n));
}

// gcmSeal(key, iv, aad, plaintext) -> Buffer; gcmOpen(key, iv, aad, sealed) -> Buffer.
Napi::Value Gcm(const Napi::CallbackInfo& info, Direction direction) {
  Napi::Env env = info.Env();
  const EngineId engine = EngineOf(info);
  if (!CheckEngine(env, engine)) return env.Undefined();
  Message m;
  if (!ParseMessage(info, direction, m)) return env.Undefined();
  const size_t outLength = direction == Direction::Seal ? m.inLength + TAG_SIZE : m.inLength - TAG_SIZE;
  Napi::Buffer<uint8_t> out = Napi::Buffer<uint8_t>::New(env, outLength);
  Napi::Value r = RunMessage(env, engine, direction, m, out.Data());
  if (env.IsExceptionPending()) return env.Undefined();
  (void)r;
  return out;
}

Napi::Value GcmSeal(const Napi::CallbackInfo& info) { return Gcm(info, Direction::Seal); }
Napi::Value GcmOpen(const Napi::CallbackInfo& info) { return Gcm(info, Direction::Open); }

// rawSeal(key, iv, input, out) / rawOpen(key, iv, sealed, out) -> bytes written: one GCM
// message over the whole input, no AAD, written into `out`. The benchmark's reference: what
// the engine does in one call, with no package loop around it.
Napi::Value Raw(const Napi::CallbackInfo& info, Direction direction) {
  Napi::Env env = info.Env();
  const EngineId engine = EngineOf(info);
  if (!CheckEngine(env, engine)) return env.Undefined();
  uint8_t* out = nullptr;
  size_t outLength = 0;
  if (info.Length() < 4 || !GetBytes(info[3], &out, &outLength)) {
    Throw(env, "S3SSE_BAD_ARGUMENT", "expected (key, iv, input, out)");
    return env.Undefined();
  }
  Message m;
  static uint8_t noAad[1];
  if (info.Length() < 3 || !GetBytes(info[0], &m.key, &m.keyLength) || m.keyLength != KEY_SIZE) {
    Throw(env, "S3SSE_BAD_KEY_SIZE", "key must be KEY_SIZE = 32 bytes");
    return env.Undefined();
  }
  if (!GetBytes(info[1], &m.iv, &m.ivLength) || m.ivLength != NONCE_SIZE) {
    Throw(env, "S3SSE_BAD_NONCE_SIZE", "iv must be NONCE_SIZE = 12 bytes");
    return env.Undefined();
  }
  if (!GetBytes(info[2], &m.in, &m.inLength) || m.inLength > INT32_MAX) {
    Throw(env, "S3SSE_BAD_ARGUMENT", "input must be a Uint8Array under 2 GiB");
    return env.Undefined();
  }
  if (direction == Direction::Open && m.inLength < TAG_SIZE) {
    Throw(env, "S3SSE_TRUNCATED", "sealed message is shorter than a tag (TAG_SIZE = 16)");
    return env.Undefined();
  }
  m.aad = noAad;
  const size_t need = direction == Direction::Seal ? m.inLength + TAG_SIZE : m.inLength - TAG_SIZE;
  if (outLength < need) {
    Throw(env, "S3SSE_BAD_OUTPUT_SIZE", "out holds " + std::to_string(outLength) + " bytes; this call writes " + std::to_string(need));
    return env.Undefined();
  }
  return RunMessage(env, engine, direction, m, out);
}

Napi::Value RawSeal(const Napi::CallbackInfo& info) { return Raw(info, Direction::Seal); }
Napi::Value RawOpen(const Napi::CallbackInfo& info) { return Raw(info, Direction::Open); }

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
  void Execute() override { s3sse::RunJob(job_); }

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
  const EngineId engine = EngineOf(info);
  ArgError err;
  if (!s3sse::EngineReady(engine)) {
    err = {"S3SSE_BACKEND_UNAVAILABLE", std::string("the ") + s3sse::EngineName(engine) + " engine is not loaded"};
  } else {
    auto* worker = new CipherWorker(env, info);
    if (ParseArgs(info, engine, direction, worker->job(), err)) {
      Napi::Promise p = worker->Promise();
      worker->Queue();
      return p;
    }
    delete worker;
  }
  Napi::Promise::Deferred d = Napi::Promise::Deferred::New(env);
  d.Reject(MakeError(env, err.code, err.message, err.hasPackage, err.packageNumber));
  return d.Promise();
}

Napi::Value SealAsync(const Napi::CallbackInfo& info) { return CallAsync(info, Direction::Seal); }
Napi::Value OpenAsync(const Napi::CallbackInfo& info) { return CallAsync(info, Direction::Open); }

// ---- digests on the libuv pool -------------------------------------------------------

// An incremental MD5 / SHA-1 / SHA-256 (OpenSSL's EVP inside Node) whose updates run on the
// libuv pool, so that hashing a request body (the MD5 a plaintext ETag needs) does not take
// the event loop's thread. Updates of one digest are serialised by the caller (one job at a
// time, src/crypto/digest.ts); the finalizer frees the context.
struct HashState {
  EVP_MD_CTX* ctx = nullptr;
  ~HashState() { EVP_MD_CTX_free(ctx); }
};

Napi::Value HashCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string name = info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
  const EVP_MD* md = name == "md5" ? EVP_md5() : name == "sha1" ? EVP_sha1() : name == "sha256" ? EVP_sha256() : nullptr;
  if (md == nullptr) {
    Throw(env, "S3SSE_BAD_ARGUMENT", "hash must be md5, sha1 or sha256");
    return env.Undefined();
  }
  auto* st = new HashState();
  st->ctx = EVP_MD_CTX_new();
  if (st->ctx == nullptr || EVP_DigestInit_ex(st->ctx, md, nullptr) != 1) {
    delete st;
    Throw(env, "S3SSE_CRYPTO_FAILURE", "the digest failed in OpenSSL");
    return env.Undefined();
  }
  return Napi::External<HashState>::New(env, st, [](Napi::Env, HashState* h) { delete h; });
}

class HashWorker : public Napi::AsyncWorker {
 public:
  HashWorker(Napi::Env env, Napi::External<HashState> state, Napi::Array chunks)
      : Napi::AsyncWorker(env, "s3sse:digest"), deferred_(Napi::Promise::Deferred::New(env)), st_(state.Data()) {
    // The digest and every chunk stay referenced (alive, unmoved) until the work is done.
    state_ = Napi::Persistent(state);
    chunks_ = Napi::Persistent(chunks);
    for (uint32_t i = 0; i < chunks.Length(); i++) {
      Napi::Value v = chunks.Get(i);
      uint8_t* data = nullptr;
      size_t length = 0;
      if (!GetBytes(v, &data, &length)) {
        bad_ = true;
        return;
      }
      pieces_.emplace_back(data, length);
    }
  }
  bool bad() const { return bad_; }
  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  void Execute() override {
    for (const auto& p : pieces_) {
      if (p.second > 0 && EVP_DigestUpdate(st_->ctx, p.first, p.second) != 1) {
        failed_ = true;
        return;
      }
    }
  }
  void OnOK() override {
    Napi::Env env = Env();
    if (failed_) deferred_.Reject(MakeError(env, "S3SSE_CRYPTO_FAILURE", "the digest failed in OpenSSL"));
    else deferred_.Resolve(env.Undefined());
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  HashState* st_;
  Napi::Reference<Napi::External<HashState>> state_;
  Napi::Reference<Napi::Array> chunks_;
  std::vector<std::pair<const uint8_t*, size_t>> pieces_;
  bool bad_ = false;
  bool failed_ = false;
};

bool GetHash(const Napi::Value& v, Napi::External<HashState>* out) {
  if (!v.IsExternal()) return false;
  *out = v.As<Napi::External<HashState>>();
  return out->Data() != nullptr;
}

// hashUpdateAsync(state, chunks) -> Promise<void>, on the pool.
Napi::Value HashUpdateAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::External<HashState> st;
  if (info.Length() < 2 || !GetHash(info[0], &st) || !info[1].IsArray()) {
    Throw(env, "S3SSE_BAD_ARGUMENT", "expected (digest, chunks)");
    return env.Undefined();
  }
  auto* worker = new HashWorker(env, st, info[1].As<Napi::Array>());
  if (worker->bad()) {
    delete worker;
    Throw(env, "S3SSE_BAD_ARGUMENT", "chunks must be Uint8Arrays");
    return env.Undefined();
  }
  Napi::Promise p = worker->Promise();
  worker->Queue();
  return p;
}

// hashUpdate(state, chunk): on this thread, for small inputs.
Napi::Value HashUpdate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::External<HashState> st;
  uint8_t* data = nullptr;
  size_t length = 0;
  if (info.Length() < 2 || !GetHash(info[0], &st) || !GetBytes(info[1], &data, &length)) {
    Throw(env, "S3SSE_BAD_ARGUMENT", "expected (digest, chunk)");
    return env.Undefined();
  }
  if (length > 0 && EVP_DigestUpdate(st.Data()->ctx, data, length) != 1) {
    Throw(env, "S3SSE_CRYPTO_FAILURE", "the digest failed in OpenSSL");
    return env.Undefined();
  }
  return env.Undefined();
}

// hashFinal(state) -> Buffer; the digest cannot be updated afterwards.
Napi::Value HashFinal(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::External<HashState> st;
  if (info.Length() < 1 || !GetHash(info[0], &st)) {
    Throw(env, "S3SSE_BAD_ARGUMENT", "expected (digest)");
    return env.Undefined();
  }
  uint8_t md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (EVP_DigestFinal_ex(st.Data()->ctx, md, &n) != 1) {
    Throw(env, "S3SSE_CRYPTO_FAILURE", "the digest failed in OpenSSL");
    return env.Undefined();
  }
  return Napi::Buffer<uint8_t>::Copy(env, md, n);
}

// ---- engines --------------------------------------------------------------------------

// engine(name) -> { name, seal, open, sealAsync, openAsync, gcmSeal, gcmOpen, rawSeal, rawOpen }
Napi::Value Engine(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string name = info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
  EngineId id;
  if (name == "evp") {
    id = EngineId::Evp;
  } else if (name == "ipsec-mb") {
    id = EngineId::IpsecMb;
  } else {
    Throw(env, "S3SSE_BAD_ARGUMENT", "engine must be \"evp\" or \"ipsec-mb\"");
    return env.Undefined();
  }
  if (!CheckEngine(env, id)) return env.Undefined();
  void* data = reinterpret_cast<void*>(static_cast<uintptr_t>(id));
  Napi::Object o = Napi::Object::New(env);
  o.Set("name", name);
  o.Set("seal", Napi::Function::New(env, Seal, "seal", data));
  o.Set("open", Napi::Function::New(env, Open, "open", data));
  o.Set("sealAsync", Napi::Function::New(env, SealAsync, "sealAsync", data));
  o.Set("openAsync", Napi::Function::New(env, OpenAsync, "openAsync", data));
  o.Set("gcmSeal", Napi::Function::New(env, GcmSeal, "gcmSeal", data));
  o.Set("gcmOpen", Napi::Function::New(env, GcmOpen, "gcmOpen", data));
  o.Set("rawSeal", Napi::Function::New(env, RawSeal, "rawSeal", data));
  o.Set("rawOpen", Napi::Function::New(env, RawOpen, "rawOpen", data));
  return o;
}

Napi::Object DescribeIpsecMb(Napi::Env env, const s3sse::IpsecMbInfo& s) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("available", Napi::Boolean::New(env, s.available));
  o.Set("path", s.path);
  if (!s.reason.empty()) o.Set("reason", s.reason);
  if (!s.version.empty()) o.Set("version", s.version);
  if (!s.arch.empty()) o.Set("arch", s.arch);
  o.Set("vaes", Napi::Boolean::New(env, s.vaes));
  o.Set("forced", Napi::Boolean::New(env, s.forced));
  return o;
}

// loadIpsecMb(path, arch) -> { available, path, reason?, version?, arch?, vaes, forced }.
// The first call in a process decides (the library and its manager live as long as it).
Napi::Value LoadIpsecMb(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string path = info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "libIPSec_MB.so.1";
  const std::string arch = info.Length() > 1 && info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "";
  return DescribeIpsecMb(env, s3sse::LoadIpsecMb(path, arch));
}

// packageCount(direction, length, final, packageSize) -> { packages, outLength } or throws
// S3SSE_TRUNCATED: the addon's own count, exposed so a test can hold it against TypeScript's.
Napi::Value PackageCount(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string dir = info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
  const double length = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().DoubleValue() : -1;
  size_t packageSize = PACKAGE_SIZE;
  if ((dir != "seal" && dir != "open") || !(length >= 0 && length <= 9007199254740991.0) || !info[2].IsBoolean()) {
    Throw(env, "S3SSE_BAD_ARGUMENT", "expected (\"seal\" | \"open\", length, final[, packageSize])");
    return env.Undefined();
  }
  if (!GetPackageSize(info.Length() > 3 ? info[3] : env.Undefined(), &packageSize)) {
    Throw(env, "S3SSE_BAD_PACKAGE_SIZE", kBadPackageSize);
    return env.Undefined();
  }
  const s3sse::Count c = s3sse::CountPackages(dir == "seal" ? Direction::Seal : Direction::Open,
                                              static_cast<size_t>(length), info[2].As<Napi::Boolean>().Value(), packageSize);
  if (c.error != CountError::None) {
    Throw(env, "S3SSE_TRUNCATED", c.error == CountError::EmptyFinal ? "empty final input" : "a piece shorter than a tag");
    return env.Undefined();
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("packages", Napi::Number::New(env, static_cast<double>(c.packages)));
  o.Set("outLength", Napi::Number::New(env, static_cast<double>(c.outLength)));
  return o;
}

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
  exports.Set("engine", Napi::Function::New(env, Engine, "engine"));
  exports.Set("loadIpsecMb", Napi::Function::New(env, LoadIpsecMb, "loadIpsecMb"));
  exports.Set("packageCount", Napi::Function::New(env, PackageCount, "packageCount"));
  exports.Set("hashCreate", Napi::Function::New(env, HashCreate, "hashCreate"));
  exports.Set("hashUpdate", Napi::Function::New(env, HashUpdate, "hashUpdate"));
  exports.Set("hashUpdateAsync", Napi::Function::New(env, HashUpdateAsync, "hashUpdateAsync"));
  exports.Set("hashFinal", Napi::Function::New(env, HashFinal, "hashFinal"));
  exports.Set("cpuFeatures", Napi::Function::New(env, CpuFeatures, "cpuFeatures"));
  exports.Set("setErrorClass", Napi::Function::New(env, SetErrorClass, "setErrorClass"));
  exports.Set("PACKAGE_SIZE", Napi::Number::New(env, PACKAGE_SIZE));
  exports.Set("TAG_SIZE", Napi::Number::New(env, TAG_SIZE));
  exports.Set("KEY_SIZE", Napi::Number::New(env, KEY_SIZE));
  exports.Set("NONCE_PREFIX_SIZE", Napi::Number::New(env, NONCE_PREFIX_SIZE));
  exports.Set("NONCE_SIZE", Napi::Number::New(env, NONCE_SIZE));
  exports.Set("MAX_PACKAGE_SIZE", Napi::Number::New(env, MAX_PACKAGE_SIZE));
  exports.Set("MAX_PACKAGE_NUMBER", Napi::Number::New(env, static_cast<double>(MAX_PACKAGE_NUMBER)));
  exports.Set("opensslVersion", Napi::String::New(env, OpenSSL_version(OPENSSL_VERSION)));
  return exports;
}

}  // namespace

NODE_API_MODULE(s3sse, Init)
