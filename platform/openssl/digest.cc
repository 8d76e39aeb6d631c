// Digests and HMAC through OpenSSL 3's EVP.
#include "common/crypto/digest.h"

#include <openssl/err.h>

#include <iterator>

#include "common/crypto/hmac.h"
#include "platform/openssl/ossl.h"

namespace portier::crypto {

std::string_view name(DigestAlgo algo) {
  switch (algo) {
    case DigestAlgo::sha256:
      return "sha256";
    case DigestAlgo::sm3:
      return "sm3";
    case DigestAlgo::sha1:
      return "sha1";
    case DigestAlgo::sha384:
      return "sha384";
    case DigestAlgo::sha512:
      return "sha512";
  }
  return "unknown digest";
}

std::size_t digest_size(DigestAlgo algo) {
  switch (algo) {
    case DigestAlgo::sha256:
    case DigestAlgo::sm3:
      return 32;
    case DigestAlgo::sha1:
      return 20;
    case DigestAlgo::sha384:
      return 48;
    case DigestAlgo::sha512:
      return 64;
  }
  return 0;
}

Result<Bytes> digest(DigestAlgo algo, ByteView data) {
  const EVP_MD* md = ossl::md(algo);
  if (md == nullptr) return ossl::fail(Errc::unavailable, std::string(name(algo)), "digest");
  Bytes out(static_cast<std::size_t>(EVP_MD_get_size(md)));
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), out.data(), &len, md, nullptr) != 1) {
    return ossl::fail(Errc::internal, std::string(name(algo)), "digest");
  }
  out.resize(len);
  return out;
}

Digest::Digest(DigestAlgo algo, std::unique_ptr<Impl> impl) : algo_(algo), impl_(std::move(impl)) {}
Digest::Digest(Digest&&) noexcept = default;
Digest& Digest::operator=(Digest&&) noexcept = default;
Digest::~Digest() = default;

Result<Digest> Digest::create(DigestAlgo algo) {
  const EVP_MD* md = ossl::md(algo);
  if (md == nullptr) return ossl::fail(Errc::unavailable, std::string(name(algo)), "digest");
  auto impl = std::make_unique<Impl>();
  impl->ctx = EVP_MD_CTX_new();
  if (impl->ctx == nullptr || EVP_DigestInit_ex2(impl->ctx, md, nullptr) != 1) {
    return ossl::fail(Errc::internal, std::string(name(algo)), "digest init");
  }
  return Digest(algo, std::move(impl));
}

void Digest::update(ByteView data) {
  if (!impl_ || impl_->ctx == nullptr || impl_->failed) return;
  if (EVP_DigestUpdate(impl_->ctx, data.data(), data.size()) != 1) impl_->failed = true;
}

Result<Bytes> Digest::finish() {
  const std::string where(name(algo_));
  if (!impl_ || impl_->ctx == nullptr) {
    return fail(Errc::failed_precondition, where, "digest", "already finished (or moved from)");
  }
  Bytes out(digest_size(algo_));
  unsigned int len = 0;
  const bool ok = !impl_->failed && EVP_DigestFinal_ex(impl_->ctx, out.data(), &len) == 1;
  EVP_MD_CTX_free(impl_->ctx);
  impl_->ctx = nullptr;
  if (!ok) return ossl::fail(Errc::internal, where, "digest");
  out.resize(len);
  return out;
}

Result<Bytes> hmac(DigestAlgo algo, ByteView key, ByteView data) {
  const std::string where = "hmac-" + std::string(name(algo));
  static constexpr const char* kNames[] = {"SHA2-256", "SM3", "SHA1", "SHA2-384", "SHA2-512"};
  const auto i = static_cast<std::size_t>(algo);
  if (i >= std::size(kNames)) return fail(Errc::invalid_argument, where, "digest", "unknown");
  static const std::uint8_t kNoKey = 0;  // an empty key still needs a pointer
  Bytes out(digest_size(algo));
  std::size_t len = 0;
  if (EVP_Q_mac(nullptr, "HMAC", nullptr, kNames[i], nullptr, key.empty() ? &kNoKey : key.data(),
                key.size(), data.data(), data.size(), out.data(), out.size(), &len) == nullptr) {
    return ossl::fail(Errc::internal, where, "mac");
  }
  out.resize(len);
  return out;
}

}  // namespace portier::crypto
