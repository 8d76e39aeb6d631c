// Private to platform/openssl/: what the X.509 files (x509.cc, x509_issue.cc,
// x509_verify.cc, csr.cc) share: the certificate and request handles, the
// signing context of each key type, names and the limits on untrusted input.
#pragma once

#include <openssl/err.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/crypto/bytes.h"
#include "common/crypto/keys.h"
#include "common/crypto/x509.h"
#include "common/result.h"

namespace portier::crypto {

// Parsed once and never changed after: copies of a Certificate share it, and
// OpenSSL locks the caches it fills while verifying.
struct Certificate::Impl {
  X509* x = nullptr;
  explicit Impl(X509* p) : x(p) {}
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  ~Impl() { X509_free(x); }
};

struct CertificateRequest::Impl {
  X509_REQ* req = nullptr;
  explicit Impl(X509_REQ* p) : req(p) {}
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  ~Impl() { X509_REQ_free(req); }
};

namespace x509 {

// The largest DER certificate or request taken from outside: ours are under
// 2 KiB; anything near this is an attack or a mistake.
inline constexpr std::size_t kMaxDer = 64 * 1024;
// The largest PEM text taken (a chain file of a few certificates).
inline constexpr std::size_t kMaxPem = 1024 * 1024;

// An EVP_MD_CTX ready for X509_sign_ctx / X509_REQ_sign_ctx with `key`:
// SHA-256 for P-256, none for Ed25519, SM3 and the GM/T 0009 default id for
// SM2.
class SignContext {
 public:
  SignContext() = default;
  ~SignContext();
  SignContext(const SignContext&) = delete;
  SignContext& operator=(const SignContext&) = delete;
  Result<void> init(const PrivateKey& key);
  EVP_MD_CTX* get() { return md_; }

 private:
  EVP_MD_CTX* md_ = nullptr;
  EVP_PKEY_CTX* pctx_ = nullptr;
};

// True when `alg` is SM2-with-SM3: its signature was made with the default
// id, which OpenSSL 3.0 must be told about to check it.
bool is_sm2_signature(const X509_ALGOR* alg);
// The GM/T 0009 default id as a new octet string for
// X509_set0_distinguishing_id / X509_REQ_set0_distinguishing_id (which take
// it), or nullptr when out of memory.
ASN1_OCTET_STRING* sm2_default_distid();

// Subject: CN, serialNumber and O, in that order. invalid_argument when a
// value does not fit its attribute (too long, serialNumber not printable).
Result<X509_NAME*> make_name(const Subject& subject);
// The UTF-8 text of the first `nid` attribute of `name`, "" when none.
std::string name_entry(const X509_NAME* name, int nid);

// True when `encode` (an i2d_* call on the object parsed from `der`, its
// length `len`) writes `der` back byte for byte.
template <class Encode>
bool is_der(ByteView der, int len, Encode encode) {
  if (len != static_cast<int>(der.size())) return false;
  unsigned char* out = nullptr;
  const bool same = encode(&out) == len && std::equal(der.begin(), der.end(), out);
  OPENSSL_free(out);
  ERR_clear_error();
  return same;
}

// The DER of each `label` block of `pem` ("CERTIFICATE"), in order; other
// blocks and text between blocks are skipped. invalid_argument when the text
// is over kMaxPem, a block is over kMaxDer or cannot be decoded.
Result<std::vector<Bytes>> pem_blocks(std::string_view pem, std::string_view label,
                                      const char* what);
// `der` as one `label` PEM block.
Result<std::string> pem_block(ByteView der, std::string_view label);

// Takes ownership of `x` (a parsed or freshly signed certificate): the SM2
// id set, then wrapped.
Result<Certificate> wrap(X509* x);

}  // namespace x509
}  // namespace portier::crypto
