// Signatures through EVP_DigestSign/Verify: ECDSA P-256 + SHA-256, Ed25519,
// SM2 + SM3 with a signer id.
#include "common/crypto/sign.h"

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>

#include <memory>

#include "platform/openssl/ossl.h"

namespace portier::crypto {
namespace {

constexpr const char* kWhere = "crypto/sign";

// One DigestSign/Verify context; for SM2 with its own EVP_PKEY_CTX that
// carries the id (the documented way in OpenSSL 3.0, see SM2(7)).
class SigContext {
 public:
  SigContext() : md_(EVP_MD_CTX_new()) {}
  ~SigContext() {
    EVP_MD_CTX_free(md_);  // does not free pctx_ (set with set_pkey_ctx)
    EVP_PKEY_CTX_free(pctx_);
  }
  SigContext(const SigContext&) = delete;
  SigContext& operator=(const SigContext&) = delete;

  EVP_MD_CTX* md() { return md_; }

  // The digest and, for SM2, the id of `type`; then init for signing or
  // verification.
  bool init(EVP_PKEY* pkey, KeyType type, const SignOptions& options, bool signing) {
    if (md_ == nullptr) return false;
    const char* digest = nullptr;
    if (type == KeyType::ecdsa_p256) digest = "SHA2-256";
    if (type == KeyType::sm2) {
      digest = "SM3";
      pctx_ = EVP_PKEY_CTX_new_from_pkey(nullptr, pkey, nullptr);
      if (pctx_ == nullptr ||
          EVP_PKEY_CTX_set1_id(pctx_, options.sm2_id.data(), options.sm2_id.size()) != 1)
        return false;
      EVP_MD_CTX_set_pkey_ctx(md_, pctx_);
    }
    return signing
               ? EVP_DigestSignInit_ex(md_, nullptr, digest, nullptr, nullptr, pkey, nullptr) == 1
               : EVP_DigestVerifyInit_ex(md_, nullptr, digest, nullptr, nullptr, pkey, nullptr) ==
                     1;
  }

 private:
  EVP_MD_CTX* md_;
  EVP_PKEY_CTX* pctx_ = nullptr;
};

}  // namespace

Result<Bytes> sign(const PrivateKey& key, ByteView message, const SignOptions& options) {
  ERR_clear_error();
  const std::string what(name(key.type()));
  SigContext ctx;
  if (!ctx.init(key.impl().pkey, key.type(), options, true))
    return ossl::fail(Errc::internal, kWhere, what, "cannot start signing");
  std::size_t len = 0;
  if (EVP_DigestSign(ctx.md(), nullptr, &len, message.data(), message.size()) != 1)
    return ossl::fail(Errc::internal, kWhere, what);
  Bytes sig(len);
  if (EVP_DigestSign(ctx.md(), sig.data(), &len, message.data(), message.size()) != 1)
    return ossl::fail(Errc::internal, kWhere, what);
  sig.resize(len);
  return sig;
}

Result<void> verify(const PublicKey& key, ByteView message, ByteView signature,
                    const SignOptions& options) {
  ERR_clear_error();
  const std::string what(name(key.type()));
  SigContext ctx;
  if (!ctx.init(key.impl().pkey, key.type(), options, false))
    return ossl::fail(Errc::internal, kWhere, what, "cannot start verification");
  const int r = EVP_DigestVerify(ctx.md(), signature.data(), signature.size(), message.data(),
                                 message.size());
  if (r == 1) return {};
  // 0: a well-formed signature that does not match; < 0: one that cannot be
  // decoded. Either way the message is not authentic.
  ERR_clear_error();
  return fail(Errc::permission_denied, kWhere, what + " signature",
              r == 0 ? "does not verify" : "malformed, does not verify");
}

Result<Bytes> ec_signature_der(ByteView r, ByteView s) {
  ERR_clear_error();
  if (r.empty() || s.empty() || r.size() > 66 || s.size() > 66)
    return fail(Errc::invalid_argument, kWhere, "signature", "r and s must be 1 to 66 bytes");
  ECDSA_SIG* sig = ECDSA_SIG_new();
  BIGNUM* br = BN_bin2bn(r.data(), static_cast<int>(r.size()), nullptr);
  BIGNUM* bs = BN_bin2bn(s.data(), static_cast<int>(s.size()), nullptr);
  unsigned char* der = nullptr;
  int len = -1;
  if (sig != nullptr && br != nullptr && bs != nullptr && ECDSA_SIG_set0(sig, br, bs) == 1) {
    br = bs = nullptr;  // owned by sig
    len = i2d_ECDSA_SIG(sig, &der);
  }
  BN_free(br);
  BN_free(bs);
  ECDSA_SIG_free(sig);
  if (len <= 0) return ossl::fail(Errc::internal, kWhere, "signature DER");
  Bytes out(der, der + len);
  OPENSSL_free(der);
  return out;
}

}  // namespace portier::crypto
