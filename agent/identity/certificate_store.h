// The terminal's installed device certificate (issue 10, item 1): one PEM
// file, the certificate then its chain up to the fleet's CA (what a TLS
// client presents), replaced whole or not at all (temp, fsync, rename),
// 0644: certificates are public. Says when renewal is due: at two thirds of
// the certificate's lifetime (or the configured share of it), so a terminal
// offline for a while still renews before expiry.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/crypto/x509.h"
#include "common/result.h"

namespace portier::identity {

struct InstalledCertificate {
  crypto::Certificate cert;
  std::vector<crypto::Certificate> chain;  // intermediates, as verify_chain takes them
};

class CertificateStore {
 public:
  explicit CertificateStore(std::string path) : path_(std::move(path)) {}
  const std::string& path() const { return path_; }

  Result<void> install(const crypto::Certificate& cert,
                       std::span<const crypto::Certificate> chain) const;
  // nullopt when none is installed yet.
  Result<std::optional<InstalledCertificate>> load() const;

 private:
  std::string path_;
};

// not_before + `percent` % of (not_after - not_before); 2/3 by default.
crypto::TimePoint renewal_due_at(const crypto::Certificate& cert, unsigned percent);
crypto::TimePoint renewal_due_at(const crypto::Certificate& cert);
inline bool renewal_due(const crypto::Certificate& cert, crypto::TimePoint now) {
  return now >= renewal_due_at(cert);
}

}  // namespace portier::identity
