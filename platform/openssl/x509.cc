// Certificates: parsed from untrusted DER or PEM (bounded, never trusting a
// length), written back, and the fields Portier reads from them.
#include "common/crypto/x509.h"

#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include <cctype>
#include <ctime>

#include "common/hex.h"
#include "platform/openssl/ossl.h"
#include "platform/openssl/x509_impl.h"

namespace portier::crypto {
namespace {

constexpr const char* kWhere = "crypto/x509";

TimePoint to_time_point(const ASN1_TIME* t) {
  std::tm tm{};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) {
    ERR_clear_error();
    return TimePoint{};
  }
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

namespace x509 {

Result<Certificate> wrap(X509* x) {
  // A certificate signed with SM2 was signed over Z of the default id
  // (x509_sign_context.cc, and every GM/T 0015 CA): OpenSSL 3.0 checks its
  // signature (X509_verify, X509_verify_cert) with the id set here.
  if (x509::is_sm2_signature(X509_get0_tbs_sigalg(x))) {
    ASN1_OCTET_STRING* id = sm2_default_distid();
    if (id == nullptr) {
      X509_free(x);
      return ossl::fail(Errc::internal, kWhere, "SM2 id");
    }
    X509_set0_distinguishing_id(x, id);
  }
  return Certificate(std::make_shared<const Certificate::Impl>(x));
}

}  // namespace x509

Certificate::Certificate(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}

Result<Certificate> Certificate::from_der(ByteView der) {
  ERR_clear_error();
  if (der.empty()) return fail(Errc::invalid_argument, kWhere, "certificate", "empty DER");
  if (der.size() > x509::kMaxDer)
    return fail(Errc::invalid_argument, kWhere, "certificate",
                "DER of " + std::to_string(der.size()) + " bytes, over the limit of " +
                    std::to_string(x509::kMaxDer));
  const unsigned char* p = der.data();
  X509* x = d2i_X509(nullptr, &p, static_cast<long>(der.size()));
  if (x == nullptr)
    return ossl::fail(Errc::invalid_argument, kWhere, "certificate", "not a DER X.509 certificate");
  if (p != der.data() + der.size()) {
    X509_free(x);
    return fail(
        Errc::invalid_argument, kWhere, "certificate",
        std::to_string(der.data() + der.size() - p) + " bytes after the end of the certificate");
  }
  // Only DER: a BER form (indefinite lengths, long-form small lengths) would
  // be read, but written back and fingerprinted as other bytes than these.
  if (!x509::is_der(der, i2d_X509(x, nullptr),
                    [x](unsigned char** out) { return i2d_X509(x, out); })) {
    X509_free(x);
    return fail(Errc::invalid_argument, kWhere, "certificate",
                "not in DER (BER or a non-canonical encoding)");
  }
  return x509::wrap(x);
}

Result<Certificate> Certificate::from_pem(std::string_view pem) {
  auto blocks = x509::pem_blocks(pem, "CERTIFICATE", "certificate PEM");
  if (!blocks) return std::unexpected(blocks.error());
  if (blocks->empty())
    return fail(Errc::invalid_argument, kWhere, "certificate PEM", "no CERTIFICATE block");
  return from_der(blocks->front());
}

Result<std::vector<Certificate>> Certificate::all_from_pem(std::string_view pem) {
  auto blocks = x509::pem_blocks(pem, "CERTIFICATE", "certificate PEM");
  if (!blocks) return std::unexpected(blocks.error());
  if (blocks->empty())
    return fail(Errc::invalid_argument, kWhere, "certificate PEM", "no CERTIFICATE block");
  std::vector<Certificate> out;
  out.reserve(blocks->size());
  for (std::size_t i = 0; i < blocks->size(); ++i) {
    auto c = from_der((*blocks)[i]);
    if (!c) return std::unexpected(c.error().with_context("PEM block " + std::to_string(i + 1)));
    out.push_back(std::move(*c));
  }
  return out;
}

Result<Bytes> Certificate::der() const {
  ERR_clear_error();
  unsigned char* der = nullptr;
  const int len = i2d_X509(impl_->x, &der);
  if (len <= 0) return ossl::fail(Errc::internal, kWhere, "certificate DER");
  Bytes out(der, der + len);
  OPENSSL_free(der);
  return out;
}

Result<std::string> Certificate::to_pem() const {
  auto d = der();
  if (!d) return std::unexpected(d.error());
  return x509::pem_block(*d, "CERTIFICATE");
}

Result<PublicKey> Certificate::public_key() const {
  ERR_clear_error();
  EVP_PKEY* pkey = X509_get0_pubkey(impl_->x);
  if (pkey == nullptr)
    return ossl::fail(Errc::invalid_argument, kWhere, "certificate of " + subject_cn(),
                      "its public key cannot be decoded");
  auto type = ossl::key_type(pkey);
  if (!type) return std::unexpected(type.error().with_context("certificate of " + subject_cn()));
  if (EVP_PKEY_up_ref(pkey) != 1) return ossl::fail(Errc::internal, kWhere, "public key");
  return PublicKey(*type, std::make_shared<const PublicKey::Impl>(pkey));
}

std::string Certificate::subject_cn() const {
  return x509::name_entry(X509_get_subject_name(impl_->x), NID_commonName);
}

std::string Certificate::subject_serial() const {
  return x509::name_entry(X509_get_subject_name(impl_->x), NID_serialNumber);
}

std::string Certificate::issuer_cn() const {
  return x509::name_entry(X509_get_issuer_name(impl_->x), NID_commonName);
}

std::string Certificate::serial_hex() const {
  BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(impl_->x), nullptr);
  char* hex = bn != nullptr ? BN_bn2hex(bn) : nullptr;
  std::string out = hex != nullptr ? lower(hex) : std::string();
  OPENSSL_free(hex);
  BN_free(bn);
  ERR_clear_error();
  return out;
}

TimePoint Certificate::not_before() const { return to_time_point(X509_get0_notBefore(impl_->x)); }

TimePoint Certificate::not_after() const { return to_time_point(X509_get0_notAfter(impl_->x)); }

std::string Certificate::sha256_fingerprint() const {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (X509_digest(impl_->x, ossl::md(DigestAlgo::sha256), md, &len) != 1) {
    ERR_clear_error();
    return {};
  }
  return to_hex(md, len);
}

}  // namespace portier::crypto
