// Certificate requests (PKCS#10): made by the terminal at enrolment, parsed
// and checked by the fleet's CA before it issues a device certificate.
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include "common/crypto/x509.h"
#include "platform/openssl/ossl.h"
#include "platform/openssl/x509_impl.h"

namespace portier::crypto {
namespace {

constexpr const char* kWhere = "crypto/csr";

// As x509::wrap: the SM2 id of an SM2-signed request, then the handle.
Result<CertificateRequest> wrap(X509_REQ* req) {
  const X509_ALGOR* alg = nullptr;
  X509_REQ_get0_signature(req, nullptr, &alg);
  if (x509::is_sm2_signature(alg)) {
    ASN1_OCTET_STRING* id = x509::sm2_default_distid();
    if (id == nullptr) {
      X509_REQ_free(req);
      return ossl::fail(Errc::internal, kWhere, "SM2 id");
    }
    X509_REQ_set0_distinguishing_id(req, id);
  }
  return CertificateRequest(std::make_shared<const CertificateRequest::Impl>(req));
}

}  // namespace

CertificateRequest::CertificateRequest(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}

Result<CertificateRequest> CertificateRequest::create(const PrivateKey& key,
                                                      const Subject& subject) {
  ERR_clear_error();
  std::unique_ptr<X509_REQ, decltype(&X509_REQ_free)> req(X509_REQ_new(), &X509_REQ_free);
  if (!req) return ossl::fail(Errc::internal, kWhere, "request");
  auto name = x509::make_name(subject);
  if (!name) return std::unexpected(name.error());
  const int named = X509_REQ_set_subject_name(req.get(), *name);
  X509_NAME_free(*name);
  x509::SignContext ctx;
  if (auto r = ctx.init(key); !r) return std::unexpected(r.error());
  if (named != 1 || X509_REQ_set_version(req.get(), 0) != 1 ||
      X509_REQ_set_pubkey(req.get(), key.impl().pkey) != 1)
    return ossl::fail(Errc::internal, kWhere, "request of " + subject.common_name);
  if (X509_REQ_sign_ctx(req.get(), ctx.get()) <= 0)
    return ossl::fail(Errc::internal, kWhere, "request of " + subject.common_name,
                      "cannot sign it");
  // Through DER: the request is exactly what its reader will parse.
  unsigned char* der = nullptr;
  const int len = i2d_X509_REQ(req.get(), &der);
  if (len <= 0) return ossl::fail(Errc::internal, kWhere, "request DER");
  Bytes bytes(der, der + len);
  OPENSSL_free(der);
  return from_der(bytes);
}

Result<CertificateRequest> CertificateRequest::from_der(ByteView der) {
  ERR_clear_error();
  if (der.empty()) return fail(Errc::invalid_argument, kWhere, "request", "empty DER");
  if (der.size() > x509::kMaxDer)
    return fail(Errc::invalid_argument, kWhere, "request",
                "DER of " + std::to_string(der.size()) + " bytes, over the limit of " +
                    std::to_string(x509::kMaxDer));
  const unsigned char* p = der.data();
  X509_REQ* req = d2i_X509_REQ(nullptr, &p, static_cast<long>(der.size()));
  if (req == nullptr)
    return ossl::fail(Errc::invalid_argument, kWhere, "request", "not a DER PKCS#10 request");
  if (p != der.data() + der.size()) {
    X509_REQ_free(req);
    return fail(
        Errc::invalid_argument, kWhere, "request",
        std::to_string(der.data() + der.size() - p) + " bytes after the end of the request");
  }
  // Only DER, as Certificate::from_der.
  if (!x509::is_der(der, i2d_X509_REQ(req, nullptr),
                    [req](unsigned char** out) { return i2d_X509_REQ(req, out); })) {
    X509_REQ_free(req);
    return fail(Errc::invalid_argument, kWhere, "request",
                "not in DER (BER or a non-canonical encoding)");
  }
  return wrap(req);
}

Result<CertificateRequest> CertificateRequest::from_pem(std::string_view pem) {
  auto blocks = x509::pem_blocks(pem, "CERTIFICATE REQUEST", "request PEM");
  if (!blocks) return std::unexpected(blocks.error());
  if (blocks->empty()) {
    // The label older tools (Netscape, some HSM front ends) write.
    blocks = x509::pem_blocks(pem, "NEW CERTIFICATE REQUEST", "request PEM");
    if (!blocks) return std::unexpected(blocks.error());
  }
  if (blocks->empty())
    return fail(Errc::invalid_argument, kWhere, "request PEM", "no CERTIFICATE REQUEST block");
  return from_der(blocks->front());
}

Result<Bytes> CertificateRequest::der() const {
  ERR_clear_error();
  unsigned char* der = nullptr;
  const int len = i2d_X509_REQ(impl_->req, &der);
  if (len <= 0) return ossl::fail(Errc::internal, kWhere, "request DER");
  Bytes out(der, der + len);
  OPENSSL_free(der);
  return out;
}

Result<std::string> CertificateRequest::to_pem() const {
  auto d = der();
  if (!d) return std::unexpected(d.error());
  return x509::pem_block(*d, "CERTIFICATE REQUEST");
}

Result<PublicKey> CertificateRequest::public_key() const {
  ERR_clear_error();
  const std::string what = "request of " + subject().common_name;
  EVP_PKEY* pkey = X509_REQ_get0_pubkey(impl_->req);
  if (pkey == nullptr)
    return ossl::fail(Errc::invalid_argument, kWhere, what, "its public key cannot be decoded");
  auto type = ossl::key_type(pkey);
  if (!type) return std::unexpected(type.error().with_context(what));
  if (EVP_PKEY_up_ref(pkey) != 1) return ossl::fail(Errc::internal, kWhere, "public key");
  return PublicKey(*type, std::make_shared<const PublicKey::Impl>(pkey));
}

Subject CertificateRequest::subject() const {
  const X509_NAME* name = X509_REQ_get_subject_name(impl_->req);
  return Subject{x509::name_entry(name, NID_commonName), x509::name_entry(name, NID_serialNumber),
                 x509::name_entry(name, NID_organizationName)};
}

Result<void> CertificateRequest::verify_self_signature() const {
  ERR_clear_error();
  auto key = public_key();  // a key type Portier takes, or the reason it is not
  if (!key) return std::unexpected(key.error());
  const int r = X509_REQ_verify(impl_->req, key->impl().pkey);
  ERR_clear_error();
  if (r == 1) return {};
  return fail(Errc::permission_denied, kWhere, "request of " + subject().common_name,
              "its self-signature does not verify");
}

}  // namespace portier::crypto
