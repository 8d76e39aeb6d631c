// Issuing certificates: the fleet's CA (root, intermediates, device, TLS and
// command-signing certificates) and the test PKI. Extensions as RFC 5280
// asks: basicConstraints and keyUsage critical, SKI and AKI from the keys.
#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cctype>
#include <ctime>

#include "common/crypto/random.h"
#include "common/crypto/x509.h"
#include "platform/openssl/ossl.h"
#include "platform/openssl/x509_impl.h"

namespace portier::crypto {
namespace {

constexpr const char* kWhere = "crypto/x509 issue";

// basicConstraints, keyUsage and extendedKeyUsage of each usage, in the
// config syntax of x509v3_config(5). Fixed texts: no caller's string ever
// enters one (names go into the SAN as GENERAL_NAMEs).
struct UsageExtensions {
  const char* key_usage;
  const char* ext_key_usage;  // nullptr: none (CA)
};

UsageExtensions extensions_of(CertUsage usage) {
  switch (usage) {
    case CertUsage::ca:
      return {"critical,keyCertSign,cRLSign", nullptr};
    case CertUsage::tls_client:
    case CertUsage::device:
      return {"critical,digitalSignature", "clientAuth"};
    case CertUsage::tls_server:
      return {"critical,digitalSignature", "serverAuth"};
    case CertUsage::command_signing:
      return {"critical,digitalSignature", "codeSigning"};
  }
  return {"critical,digitalSignature", nullptr};
}

Result<void> add_ext(X509* x, X509V3_CTX* ctx, int nid, const std::string& value) {
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, ctx, nid, value.c_str());
  if (ext == nullptr)
    return ossl::fail(Errc::internal, kWhere, std::string(OBJ_nid2sn(nid)) + " " + value);
  const int ok = X509_add_ext(x, ext, -1);
  X509_EXTENSION_free(ext);
  if (ok != 1) return ossl::fail(Errc::internal, kWhere, OBJ_nid2sn(nid));
  return {};
}

// A DNS name of letters, digits, '-', '.' and a leading "*." (RFC 1035 and
// RFC 6125 wildcards): anything else is refused, never escaped.
bool valid_dns_name(const std::string& n) {
  if (n.empty() || n.size() > 253) return false;
  const std::string body = n.starts_with("*.") ? n.substr(2) : n;
  if (body.empty() || body.front() == '.' || body.back() == '.' ||
      body.find("..") != std::string::npos)
    return false;
  return std::all_of(body.begin(), body.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.';
  });
}

Result<void> add_san(X509* x, const IssueOptions& o) {
  if (o.dns_names.empty() && o.ip_addresses.empty()) return {};
  std::unique_ptr<GENERAL_NAMES, decltype(&GENERAL_NAMES_free)> names(sk_GENERAL_NAME_new_null(),
                                                                      &GENERAL_NAMES_free);
  if (!names) return ossl::fail(Errc::internal, kWhere, "subjectAltName");
  for (const std::string& dns : o.dns_names) {
    if (!valid_dns_name(dns))
      return fail(Errc::invalid_argument, kWhere, "DNS name \"" + dns + "\"",
                  "not a host name (letters, digits, '-', '.', a leading \"*.\")");
    ASN1_IA5STRING* ia5 = ASN1_IA5STRING_new();
    if (ia5 == nullptr || ASN1_STRING_set(ia5, dns.data(), static_cast<int>(dns.size())) != 1) {
      ASN1_IA5STRING_free(ia5);
      return ossl::fail(Errc::internal, kWhere, "DNS name");
    }
    GENERAL_NAME* gn = GENERAL_NAME_new();
    if (gn == nullptr) {
      ASN1_IA5STRING_free(ia5);
      return ossl::fail(Errc::internal, kWhere, "DNS name");
    }
    GENERAL_NAME_set0_value(gn, GEN_DNS, ia5);
    if (sk_GENERAL_NAME_push(names.get(), gn) <= 0) {
      GENERAL_NAME_free(gn);
      return ossl::fail(Errc::internal, kWhere, "DNS name");
    }
  }
  for (const std::string& ip : o.ip_addresses) {
    ASN1_OCTET_STRING* addr = a2i_IPADDRESS(ip.c_str());
    if (addr == nullptr) {
      ERR_clear_error();
      return fail(Errc::invalid_argument, kWhere, "IP address \"" + ip + "\"",
                  "not an IPv4 or IPv6 address");
    }
    GENERAL_NAME* gn = GENERAL_NAME_new();
    if (gn == nullptr) {
      ASN1_OCTET_STRING_free(addr);
      return ossl::fail(Errc::internal, kWhere, "IP address");
    }
    GENERAL_NAME_set0_value(gn, GEN_IPADD, addr);
    if (sk_GENERAL_NAME_push(names.get(), gn) <= 0) {
      GENERAL_NAME_free(gn);
      return ossl::fail(Errc::internal, kWhere, "IP address");
    }
  }
  // Critical only when the subject is empty (RFC 5280 4.2.1.6); ours has a CN.
  if (X509_add1_ext_i2d(x, NID_subject_alt_name, names.get(), 0, X509V3_ADD_DEFAULT) != 1)
    return ossl::fail(Errc::internal, kWhere, "subjectAltName");
  return {};
}

// 16 random bytes, positive and with no leading zero byte (RFC 5280 4.1.2.2:
// at most 20 octets, positive).
Result<void> set_random_serial(X509* x) {
  auto bytes = random_bytes(16);
  if (!bytes) return std::unexpected(bytes.error());
  (*bytes)[0] = static_cast<std::uint8_t>(((*bytes)[0] & 0x7f) | 0x40);
  BIGNUM* bn = BN_bin2bn(bytes->data(), static_cast<int>(bytes->size()), nullptr);
  const bool ok = bn != nullptr && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != nullptr;
  BN_free(bn);
  if (!ok) return ossl::fail(Errc::internal, kWhere, "serial number");
  return {};
}

Result<void> set_validity(X509* x, const IssueOptions& o) {
  if (o.not_after <= o.not_before)
    return fail(Errc::invalid_argument, kWhere, "validity of " + o.subject.common_name,
                "not_after is not after not_before");
  const std::time_t nb = std::chrono::system_clock::to_time_t(o.not_before);
  const std::time_t na = std::chrono::system_clock::to_time_t(o.not_after);
  // ASN1_TIME_set writes UTCTime up to 2049 and GeneralizedTime after, as
  // RFC 5280 4.1.2.5 asks.
  if (ASN1_TIME_set(X509_getm_notBefore(x), nb) == nullptr ||
      ASN1_TIME_set(X509_getm_notAfter(x), na) == nullptr)
    return ossl::fail(Errc::invalid_argument, kWhere, "validity of " + o.subject.common_name,
                      "a time out of range");
  return {};
}

}  // namespace

Result<Certificate> issue_certificate(const PublicKey& subject_key, const IssueOptions& options,
                                      const Certificate* issuer, const PrivateKey& issuer_key) {
  ERR_clear_error();
  const std::string what = "certificate of " + options.subject.common_name;
  // The issuer's key must be the one its certificate names, and a
  // self-signed certificate's key the signer's own: else the result could
  // never verify.
  if (issuer != nullptr) {
    if (EVP_PKEY_eq(X509_get0_pubkey(issuer->impl().x), issuer_key.impl().pkey) != 1)
      return fail(
          Errc::invalid_argument, kWhere, what,
          "the issuer key is not the key of the issuer certificate " + issuer->subject_cn());
    if (X509_check_ca(issuer->impl().x) == 0 ||
        (X509_get_key_usage(issuer->impl().x) & KU_KEY_CERT_SIGN) == 0)
      return fail(Errc::invalid_argument, kWhere, what,
                  "the issuer " + issuer->subject_cn() + " is not a CA that may sign certificates");
  } else if (EVP_PKEY_eq(subject_key.impl().pkey, issuer_key.impl().pkey) != 1) {
    return fail(Errc::invalid_argument, kWhere, what,
                "self-signed, but the subject key is not the signing key's");
  }
  ERR_clear_error();
  if (options.path_length && (options.usage != CertUsage::ca || *options.path_length < 0))
    return fail(Errc::invalid_argument, kWhere, what,
                "a path length is for a CA only, and not negative");

  std::unique_ptr<X509, decltype(&X509_free)> x(X509_new(), &X509_free);
  if (!x) return ossl::fail(Errc::internal, kWhere, what);
  auto name = x509::make_name(options.subject);
  if (!name) return std::unexpected(name.error());
  const int named = X509_set_subject_name(x.get(), *name);
  X509_NAME_free(*name);
  const X509_NAME* issuer_name =
      issuer != nullptr ? X509_get_subject_name(issuer->impl().x) : X509_get_subject_name(x.get());
  if (named != 1 || X509_set_version(x.get(), X509_VERSION_3) != 1 ||
      X509_set_issuer_name(x.get(), issuer_name) != 1 ||
      X509_set_pubkey(x.get(), subject_key.impl().pkey) != 1)
    return ossl::fail(Errc::internal, kWhere, what);
  if (auto r = set_random_serial(x.get()); !r) return std::unexpected(r.error());
  if (auto r = set_validity(x.get(), options); !r) return std::unexpected(r.error());

  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer != nullptr ? issuer->impl().x : x.get(), x.get(), nullptr, nullptr,
                 0);
  X509V3_set_issuer_pkey(&ctx, issuer_key.impl().pkey);  // the AKI of a self-signed root
  const UsageExtensions ext = extensions_of(options.usage);
  std::string basic = options.usage == CertUsage::ca ? "critical,CA:TRUE" : "critical,CA:FALSE";
  if (options.path_length) basic += ",pathlen:" + std::to_string(*options.path_length);
  if (auto r = add_ext(x.get(), &ctx, NID_basic_constraints, basic); !r)
    return std::unexpected(r.error());
  if (auto r = add_ext(x.get(), &ctx, NID_key_usage, ext.key_usage); !r)
    return std::unexpected(r.error());
  if (ext.ext_key_usage != nullptr) {
    if (auto r = add_ext(x.get(), &ctx, NID_ext_key_usage, ext.ext_key_usage); !r)
      return std::unexpected(r.error());
  }
  if (auto r = add_ext(x.get(), &ctx, NID_subject_key_identifier, "hash"); !r)
    return std::unexpected(r.error());
  if (auto r = add_ext(x.get(), &ctx, NID_authority_key_identifier, "keyid:always"); !r)
    return std::unexpected(r.error());
  if (auto r = add_san(x.get(), options); !r) return std::unexpected(r.error());

  x509::SignContext sign;
  if (auto r = sign.init(issuer_key); !r) return std::unexpected(r.error());
  if (X509_sign_ctx(x.get(), sign.get()) <= 0)
    return ossl::fail(Errc::internal, kWhere, what, "cannot sign it");
  // Through DER: the certificate is exactly what its reader will parse.
  unsigned char* der = nullptr;
  const int len = i2d_X509(x.get(), &der);
  if (len <= 0) return ossl::fail(Errc::internal, kWhere, what + " DER");
  Bytes bytes(der, der + len);
  OPENSSL_free(der);
  return Certificate::from_der(bytes);
}

}  // namespace portier::crypto
