// Private to platform/openssl/: what the implementation files share. Only
// this folder includes OpenSSL headers; common/crypto/ names none of its
// types.
#pragma once

#include <openssl/evp.h>

#include <string>

#include "common/crypto/cipher.h"
#include "common/crypto/digest.h"
#include "common/crypto/keys.h"
#include "common/result.h"

namespace portier::crypto {

struct Digest::Impl {
  EVP_MD_CTX* ctx = nullptr;
  bool failed = false;
  ~Impl() { EVP_MD_CTX_free(ctx); }
};

struct PublicKey::Impl {
  EVP_PKEY* pkey = nullptr;
  explicit Impl(EVP_PKEY* p) : pkey(p) {}
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  ~Impl() { EVP_PKEY_free(pkey); }
};

struct PrivateKey::Impl {
  EVP_PKEY* pkey = nullptr;
  explicit Impl(EVP_PKEY* p) : pkey(p) {}
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  ~Impl() { EVP_PKEY_free(pkey); }
};

namespace ossl {

// The reasons OpenSSL queued for the last failure (its error queue is
// emptied), or `fallback` when it queued none.
std::string errors(const char* fallback = "OpenSSL failed");

// An error of `where` about `what`, its reason from the error queue.
inline std::unexpected<Error> fail(Errc code, std::string where, std::string what,
                                   const char* fallback = "OpenSSL failed") {
  return portier::fail(code, std::move(where), std::move(what), errors(fallback));
}

// Fetched once per process and kept: fetching per call costs a lookup
// under a lock in OpenSSL 3.
const EVP_MD* md(DigestAlgo algo);
// nullptr when the default provider lacks it (SM4-GCM in OpenSSL 3.0).
const EVP_CIPHER* cipher(CipherAlgo algo);
const EVP_CIPHER* cipher(AeadAlgo algo);

// Which KeyType an OpenSSL key is, or invalid_argument.
Result<KeyType> key_type(const EVP_PKEY* pkey);

}  // namespace ossl
}  // namespace portier::crypto
