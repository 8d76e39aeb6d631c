#include "agent/identity/issued_certificate.h"

#include <string>

namespace portier::identity {

bool same_key(const crypto::PublicKey& a, const crypto::PublicKey& b) {
  if (a.type() != b.type()) return false;
  auto ra = a.raw();
  auto rb = b.raw();
  return ra && rb && *ra == *rb;
}

Result<InstalledCertificate> check_issued_certificate(crypto::ByteView der,
                                                      std::span<const crypto::Bytes> chain_der,
                                                      const Expected& e) {
  const std::string where = "certificate from the fleet";
  if (chain_der.size() > 8) {
    return fail(Errc::invalid_argument, where, "chain",
                std::to_string(chain_der.size()) + " certificates, at most 8");
  }
  auto cert = crypto::Certificate::from_der(der);
  if (!cert) return std::unexpected(cert.error().with_context(where));
  std::vector<crypto::Certificate> chain;
  for (const auto& c : chain_der) {
    auto ic = crypto::Certificate::from_der(c);
    if (!ic) return std::unexpected(ic.error().with_context(where + ": chain"));
    chain.push_back(std::move(*ic));
  }
  auto pub = cert->public_key();
  if (!pub) return std::unexpected(pub.error().with_context(where));
  if (!same_key(*pub, e.key)) {
    return fail(Errc::permission_denied, where, "refused",
                "it is for another key than this terminal's device key");
  }
  if (cert->subject_cn() != e.terminal_id) {
    return fail(Errc::permission_denied, where, "refused",
                "its subject CN \"" + cert->subject_cn() + "\" is not this terminal (\"" +
                    std::string(e.terminal_id) + "\")");
  }
  if (cert->subject_serial() != e.serial) {
    return fail(Errc::permission_denied, where, "refused",
                "its subject serialNumber \"" + cert->subject_serial() +
                    "\" is not this terminal's serial (\"" + std::string(e.serial) + "\")");
  }
  if (e.anchors.empty()) {
    return fail(Errc::failed_precondition, where, "refused", "no fleet CA is configured");
  }
  if (auto ok = crypto::verify_chain(*cert, chain, e.anchors, e.now, crypto::CertUsage::device);
      !ok) {
    return std::unexpected(ok.error().with_context(where + ": refused"));
  }
  return InstalledCertificate{std::move(*cert), std::move(chain)};
}

}  // namespace portier::identity
