// Chain checks: a certificate against the trust anchors Portier was given,
// at a time the caller names (never the wall clock of OpenSSL), for one
// usage. The reasons OpenSSL reports become short words with the subject of
// the certificate they are about.
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <ctime>

#include "common/crypto/x509.h"
#include "platform/openssl/ossl.h"
#include "platform/openssl/x509_impl.h"

namespace portier::crypto {
namespace {

constexpr const char* kWhere = "crypto/x509 verify";
constexpr int kMaxDepth = 6;  // CAs between the leaf and the anchor
// More than a peer could need: a pile of intermediates only costs searching.
constexpr std::size_t kMaxIntermediates = 16;

std::string usage_name(CertUsage usage) {
  switch (usage) {
    case CertUsage::ca:
      return "a CA";
    case CertUsage::tls_client:
      return "TLS client";
    case CertUsage::tls_server:
      return "TLS server";
    case CertUsage::command_signing:
      return "command signing";
    case CertUsage::device:
      return "a device";
  }
  return "this usage";
}

// The reason of an X509_V_ERR_* code, in words a log reader acts on.
std::string reason(int err, CertUsage usage) {
  switch (err) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
      return "expired";
    case X509_V_ERR_CERT_NOT_YET_VALID:
      return "not yet valid";
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_CERT_UNTRUSTED:
    case X509_V_ERR_CERT_REJECTED:
      return "untrusted issuer";
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
    case X509_V_ERR_UNABLE_TO_DECRYPT_CERT_SIGNATURE:
    case X509_V_ERR_UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY:
    case X509_V_ERR_SIGNATURE_ALGORITHM_MISMATCH:
    case X509_V_ERR_EE_KEY_TOO_SMALL:
    case X509_V_ERR_CA_KEY_TOO_SMALL:
    case X509_V_ERR_CA_MD_TOO_WEAK:
      return "bad signature";
    case X509_V_ERR_INVALID_CA:
      return "issuer is not a CA";
    case X509_V_ERR_KEYUSAGE_NO_CERTSIGN:
      return "issuer may not sign certificates";
    case X509_V_ERR_PATH_LENGTH_EXCEEDED:
      return "path length exceeded";
    case X509_V_ERR_INVALID_PURPOSE:
      return "not allowed for " + usage_name(usage);
    case X509_V_ERR_ERROR_IN_CERT_NOT_BEFORE_FIELD:
    case X509_V_ERR_ERROR_IN_CERT_NOT_AFTER_FIELD:
      return "malformed validity";
    case X509_V_ERR_INVALID_EXTENSION:
    case X509_V_ERR_UNHANDLED_CRITICAL_EXTENSION:
    case X509_V_ERR_INVALID_POLICY_EXTENSION:
      return "bad extension";
    case X509_V_ERR_CERT_REVOKED:
      return "revoked";
    case X509_V_ERR_CERT_CHAIN_TOO_LONG:
      return "chain too long";
    default:
      return X509_verify_cert_error_string(err);
  }
}

std::string cn_of(X509* x) {
  if (x == nullptr) return "(no certificate)";
  std::string cn = x509::name_entry(X509_get_subject_name(x), NID_commonName);
  return cn.empty() ? "(no CN)" : cn;
}

// The leaf's own keyUsage and extendedKeyUsage for `usage`: OpenSSL 3.0 has
// no purpose for code signing, so every usage is checked here the same way
// (and the TLS ones by OpenSSL's purpose too). An extension that is absent
// does not allow a usage: Portier's certificates always carry both.
bool leaf_allows(X509* x, CertUsage usage) {
  const std::uint32_t flags = X509_get_extension_flags(x);
  if (flags & EXFLAG_INVALID) return false;
  if (usage == CertUsage::ca)
    return X509_check_ca(x) != 0 && (flags & EXFLAG_KUSAGE) &&
           (X509_get_key_usage(x) & KU_KEY_CERT_SIGN);
  if (!(flags & EXFLAG_KUSAGE) || !(X509_get_key_usage(x) & KU_DIGITAL_SIGNATURE)) return false;
  if (!(flags & EXFLAG_XKUSAGE)) return false;
  const std::uint32_t xku = X509_get_extended_key_usage(x);
  switch (usage) {
    case CertUsage::tls_client:
    case CertUsage::device:
      return xku & XKU_SSL_CLIENT;
    case CertUsage::tls_server:
      return xku & XKU_SSL_SERVER;
    case CertUsage::command_signing:
      return xku & XKU_CODE_SIGN;
    case CertUsage::ca:
      break;
  }
  return false;
}

struct StoreFree {
  void operator()(X509_STORE* p) const { X509_STORE_free(p); }
  void operator()(X509_STORE_CTX* p) const { X509_STORE_CTX_free(p); }
  void operator()(STACK_OF(X509) * p) const { sk_X509_free(p); }  // the X509s are not its
};

}  // namespace

Result<void> verify_chain(const Certificate& leaf, std::span<const Certificate> intermediates,
                          std::span<const Certificate> anchors, TimePoint at, CertUsage usage) {
  ERR_clear_error();
  const std::string what = "certificate " + cn_of(leaf.impl().x);
  if (anchors.empty())
    return fail(Errc::permission_denied, kWhere, what, "untrusted issuer (no trust anchor)");
  std::unique_ptr<X509_STORE, StoreFree> store(X509_STORE_new());
  std::unique_ptr<STACK_OF(X509), StoreFree> untrusted(sk_X509_new_null());
  std::unique_ptr<X509_STORE_CTX, StoreFree> ctx(X509_STORE_CTX_new());
  if (!store || !untrusted || !ctx) return ossl::fail(Errc::internal, kWhere, what);
  for (const Certificate& a : anchors) {
    if (X509_STORE_add_cert(store.get(), a.impl().x) == 1) continue;
    // The same anchor twice is no error.
    if (ERR_GET_REASON(ERR_peek_last_error()) != X509_R_CERT_ALREADY_IN_HASH_TABLE)
      return ossl::fail(Errc::internal, kWhere, "trust anchor " + a.subject_cn());
    ERR_clear_error();
  }
  if (intermediates.size() > kMaxIntermediates)
    return fail(Errc::permission_denied, kWhere, what,
                std::to_string(intermediates.size()) + " intermediates, over the limit of " +
                    std::to_string(kMaxIntermediates));
  for (const Certificate& c : intermediates) {
    if (sk_X509_push(untrusted.get(), c.impl().x) <= 0)
      return ossl::fail(Errc::internal, kWhere, what);
  }
  if (X509_STORE_CTX_init(ctx.get(), store.get(), leaf.impl().x, untrusted.get()) != 1)
    return ossl::fail(Errc::internal, kWhere, what);

  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx.get());
  X509_VERIFY_PARAM_set_time(param, std::chrono::system_clock::to_time_t(at));
  // An anchor is trusted as given (RFC 5280 6.1.1 d): it need not be
  // self-signed. X509_STRICT: the RFC 5280 rules on extensions (critical
  // basicConstraints on a CA, AKI and SKI, no explicit curve parameters).
  X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_PARTIAL_CHAIN | X509_V_FLAG_X509_STRICT);
  // Portier's chains are root, intermediate, leaf: a longer one is cut
  // short.
  X509_VERIFY_PARAM_set_depth(param, kMaxDepth);
  // Revocation: when CRLs come, add them to `store` (X509_STORE_add_crl)
  // and set X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL here;
  // X509_V_ERR_CERT_REVOKED already reads "revoked".
  if (usage == CertUsage::tls_client || usage == CertUsage::device)
    X509_STORE_CTX_set_purpose(ctx.get(), X509_PURPOSE_SSL_CLIENT);
  if (usage == CertUsage::tls_server)
    X509_STORE_CTX_set_purpose(ctx.get(), X509_PURPOSE_SSL_SERVER);

  const int ok = X509_verify_cert(ctx.get());
  if (ok != 1) {
    const int err = X509_STORE_CTX_get_error(ctx.get());
    X509* bad = X509_STORE_CTX_get_current_cert(ctx.get());
    ERR_clear_error();
    if (err == X509_V_OK)  // a failure OpenSSL gave no code for (out of memory)
      return fail(Errc::internal, kWhere, what, "the chain could not be checked");
    return fail(Errc::permission_denied, kWhere, "certificate " + cn_of(bad ? bad : leaf.impl().x),
                reason(err, usage));
  }
  if (!leaf_allows(leaf.impl().x, usage))
    return fail(Errc::permission_denied, kWhere, what, reason(X509_V_ERR_INVALID_PURPOSE, usage));
  return {};
}

}  // namespace portier::crypto
