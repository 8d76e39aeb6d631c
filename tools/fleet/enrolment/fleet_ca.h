// The fleet's CA for device certificates (issue 10, item 1): its key and
// certificate from files (the key 0600), or made by init(); issues a
// terminal's certificate from a CSR whose self-signature it has checked:
// usage device, CN = terminal id, serialNumber = hardware serial, valid from
// five minutes ago (clock skew) for the configured lifetime.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "common/crypto/keys.h"
#include "common/crypto/x509.h"
#include "common/result.h"

namespace portier::fleet {

struct FleetCaOptions {
  std::chrono::seconds device_lifetime = std::chrono::hours(24 * 365);
};

class FleetCa {
 public:
  // `chain_file` (may be empty): the certificates between the CA and its
  // root, sent to terminals with each device certificate.
  static Result<FleetCa> load(const std::string& cert_file, const std::string& key_file,
                              const std::string& chain_file = {}, FleetCaOptions options = {});
  // A new self-signed root in `dir` (fleet-ca.crt 0644, fleet-ca.key 0600,
  // never overwritten), valid 10 years.
  static Result<FleetCa> init(const std::string& dir, crypto::KeyType type,
                              const std::string& name = "Portier Fleet CA",
                              FleetCaOptions options = {});

  // A device certificate for the key of `csr`, whose self-signature must check.
  Result<crypto::Certificate> issue_device(const crypto::CertificateRequest& csr,
                                           const std::string& terminal_id,
                                           const std::string& serial, crypto::TimePoint now) const;

  const crypto::Certificate& certificate() const { return cert_; }
  // What the terminal gets with its certificate: this CA's certificate
  // (unless self-signed) and its chain, DER.
  const std::vector<crypto::Bytes>& chain_der() const { return chain_der_; }
  // The certificates device certificates are verified against (this CA).
  std::vector<crypto::Certificate> anchors() const { return {cert_}; }
  // The intermediates between a device certificate and this CA: none.

 private:
  FleetCa(crypto::Certificate cert, crypto::PrivateKey key, std::vector<crypto::Bytes> chain,
          FleetCaOptions options)
      : cert_(std::move(cert)),
        key_(std::move(key)),
        chain_der_(std::move(chain)),
        options_(options) {}
  crypto::Certificate cert_;
  crypto::PrivateKey key_;
  std::vector<crypto::Bytes> chain_der_;
  FleetCaOptions options_;
};

}  // namespace portier::fleet
