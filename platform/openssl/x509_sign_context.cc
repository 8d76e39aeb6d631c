// The signing context of certificates and requests for each key type, and
// the SM2 id OpenSSL 3.0 needs to check an SM2-with-SM3 signature.
#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include "common/crypto/sign.h"
#include "platform/openssl/ossl.h"
#include "platform/openssl/x509_impl.h"

namespace portier::crypto::x509 {
namespace {

constexpr const char* kWhere = "crypto/x509";

}  // namespace

SignContext::~SignContext() {
  EVP_MD_CTX_free(md_);  // does not free pctx_ (set with EVP_MD_CTX_set_pkey_ctx)
  EVP_PKEY_CTX_free(pctx_);
}

Result<void> SignContext::init(const PrivateKey& key) {
  ERR_clear_error();
  md_ = EVP_MD_CTX_new();
  if (md_ == nullptr) return ossl::fail(Errc::internal, kWhere, "signing context");
  EVP_PKEY* pkey = key.impl().pkey;
  const char* digest = nullptr;  // Ed25519 signs the message itself
  if (key.type() == KeyType::ecdsa_p256) digest = "SHA2-256";
  if (key.type() == KeyType::sm2) {
    digest = "SM3";
    // The id enters Z = SM3(ENTL || ID || a || b || G || P): the verifier
    // must use the same one (the GM/T 0009 default, as crypto::sign does).
    pctx_ = EVP_PKEY_CTX_new_from_pkey(nullptr, pkey, nullptr);
    if (pctx_ == nullptr ||
        EVP_PKEY_CTX_set1_id(pctx_, kSm2DefaultId.data(), kSm2DefaultId.size()) != 1)
      return ossl::fail(Errc::internal, kWhere, "SM2 signing context");
    EVP_MD_CTX_set_pkey_ctx(md_, pctx_);
  }
  if (EVP_DigestSignInit_ex(md_, nullptr, digest, nullptr, nullptr, pkey, nullptr) != 1)
    return ossl::fail(Errc::internal, kWhere, std::string(name(key.type())) + " signing context");
  return {};
}

bool is_sm2_signature(const X509_ALGOR* alg) {
  if (alg == nullptr) return false;
  const ASN1_OBJECT* oid = nullptr;
  X509_ALGOR_get0(&oid, nullptr, nullptr, alg);
  return OBJ_obj2nid(oid) == NID_SM2_with_SM3;
}

ASN1_OCTET_STRING* sm2_default_distid() {
  ASN1_OCTET_STRING* id = ASN1_OCTET_STRING_new();
  if (id != nullptr &&
      ASN1_OCTET_STRING_set(id, reinterpret_cast<const unsigned char*>(kSm2DefaultId.data()),
                            static_cast<int>(kSm2DefaultId.size())) != 1) {
    ASN1_OCTET_STRING_free(id);
    return nullptr;
  }
  return id;
}

}  // namespace portier::crypto::x509
