// A throwaway PKI for tests, made with the fleet's own CA code
// (common/crypto/x509.h, never the openssl CLI): a root CA, an intermediate
// and leaf certificates of each usage, good or with one chosen flaw, written
// as PEM files (certificate, key with mode 0600, chain) into a directory the
// test owns. Brokers (Mosquitto's cafile/certfile/keyfile), gRPC's
// SslServerCredentials and the daemon's config take these files as they are.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "common/crypto/keys.h"
#include "common/crypto/x509.h"
#include "common/result.h"

namespace portier::test {

// What is wrong with a leaf, on purpose.
enum class Flaw {
  none,
  expired,           // its validity ended a day before the PKI was made
  not_yet_valid,     // it begins a day after
  wrong_usage,       // it carries another usage than the one asked for (see wrong_usage_for)
  untrusted_issuer,  // issued by another root of the same name as the PKI's root
  self_signed,       // its own issuer, trusted by nobody
  issuer_not_ca,     // its intermediate (in `chain`) has CA:FALSE
};

// The usage a wrong_usage leaf gets instead of `asked`: tls_server for
// tls_client and device, tls_client for tls_server and command_signing,
// device for ca.
crypto::CertUsage wrong_usage_for(crypto::CertUsage asked);

struct LeafSpec {
  std::string name{};  // the subject CN and the file stem (letters, digits, '-', '_')
  crypto::CertUsage usage = crypto::CertUsage::device;
  Flaw flaw = Flaw::none;
  std::optional<crypto::KeyType> key_type{};  // the PKI's when empty
  std::string serial_number{};                // the subject's serialNumber attribute
  std::string organization = "Portier Test";
  // subjectAltName; a tls_server leaf with none gets localhost, 127.0.0.1, ::1.
  std::vector<std::string> dns_names{};
  std::vector<std::string> ip_addresses{};
  bool by_root = false;  // issued by the root itself, not the intermediate
};

struct IssuedLeaf {
  crypto::Certificate cert;
  crypto::PrivateKey key;
  // The certificates between the leaf and the root, as verify_chain takes
  // them (the intermediate, or the flaw's own issuer).
  std::vector<crypto::Certificate> chain;
  std::string cert_path;   // the leaf alone
  std::string key_path;    // PKCS#8 PEM, mode 0600
  std::string chain_path;  // the leaf, then `chain`: what a TLS peer presents
};

class TestPki {
 public:
  // A root ("Portier Test Root CA") and an intermediate ("Portier Test
  // Intermediate CA", path length 0) with `type` keys, valid from 90 days
  // before now for 10 and 5 years, written to `dir` as ca.crt, ca.key,
  // intermediate.crt, intermediate.key. `dir` must exist.
  static Result<TestPki> create(const std::string& dir,
                                crypto::KeyType type = crypto::KeyType::ecdsa_p256);

  // A leaf as `spec` says, written to <dir>/<name>.crt, <name>.key and
  // <name>.chain.pem.
  Result<IssuedLeaf> issue(const LeafSpec& spec) const;

  const std::string& dir() const { return dir_; }
  crypto::KeyType key_type() const { return type_; }
  // The PKI's "now": leaves are valid from an hour before to a year after.
  std::chrono::system_clock::time_point made_at() const { return made_at_; }

  const crypto::Certificate& root() const { return root_; }
  const crypto::PrivateKey& root_key() const { return root_key_; }
  const crypto::Certificate& intermediate() const { return intermediate_; }
  const crypto::PrivateKey& intermediate_key() const { return intermediate_key_; }
  std::string ca_path() const { return dir_ + "/ca.crt"; }  // the trust anchor
  std::string intermediate_path() const { return dir_ + "/intermediate.crt"; }

 private:
  TestPki(std::string dir, crypto::KeyType type, std::chrono::system_clock::time_point made_at,
          crypto::Certificate root, crypto::PrivateKey root_key, crypto::Certificate intermediate,
          crypto::PrivateKey intermediate_key);

  std::string dir_;
  crypto::KeyType type_;
  std::chrono::system_clock::time_point made_at_;
  crypto::Certificate root_;
  crypto::PrivateKey root_key_;
  crypto::Certificate intermediate_;
  crypto::PrivateKey intermediate_key_;
};

// Writes `text` to `path` with exactly `mode` (umask aside), replacing it.
Result<void> write_pki_file(const std::string& path, const std::string& text, unsigned mode);

}  // namespace portier::test
