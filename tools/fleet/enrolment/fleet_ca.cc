#include "tools/fleet/enrolment/fleet_ca.h"

#include <sys/stat.h>

#include <cerrno>
#include <filesystem>

#include "agent/identity/issued_certificate.h"
#include "agent/identity/private_file.h"
#include "common/crypto/bytes.h"
#include "common/file_read.h"
#include "common/file_write.h"

namespace portier::fleet {

Result<FleetCa> FleetCa::load(const std::string& cert_file, const std::string& key_file,
                              const std::string& chain_file, FleetCaOptions options) {
  auto cert_pem = read_small_file(cert_file, {1u << 20, true});
  if (!cert_pem) return std::unexpected(cert_pem.error().with_context("fleet CA certificate"));
  auto cert = crypto::Certificate::from_pem(*cert_pem);
  if (!cert) return std::unexpected(cert.error().with_context(cert_file));
  auto key_pem = identity::read_private_file(key_file, "fleet CA key", 64 * 1024);
  if (!key_pem) return std::unexpected(key_pem.error());
  *key_pem += "\n";
  auto key = crypto::PrivateKey::from_pem(*key_pem);
  crypto::cleanse(*key_pem);
  if (!key) return std::unexpected(key.error().with_context(key_file));
  auto pub = key->public_key();
  auto cpub = cert->public_key();
  if (!pub || !cpub || !identity::same_key(*pub, *cpub)) {
    return fail(Errc::invalid_argument, key_file, "fleet CA key", "is not the key of " + cert_file);
  }
  std::vector<crypto::Bytes> chain;
  if (cert->subject_cn() != cert->issuer_cn()) {
    auto der = cert->der();
    if (!der) return std::unexpected(der.error());
    chain.push_back(std::move(*der));
  }
  if (!chain_file.empty()) {
    auto pem = read_small_file(chain_file, {1u << 20, true});
    if (!pem) return std::unexpected(pem.error().with_context("fleet CA chain"));
    auto all = crypto::Certificate::all_from_pem(*pem);
    if (!all) return std::unexpected(all.error().with_context(chain_file));
    for (const auto& c : *all) {
      auto der = c.der();
      if (!der) return std::unexpected(der.error());
      chain.push_back(std::move(*der));
    }
  }
  return FleetCa(std::move(*cert), std::move(*key), std::move(chain), options);
}

Result<FleetCa> FleetCa::init(const std::string& dir, crypto::KeyType type, const std::string& name,
                              FleetCaOptions options) {
  const std::string key_file = dir + "/fleet-ca.key";
  const std::string cert_file = dir + "/fleet-ca.crt";
  if (std::filesystem::exists(key_file) || std::filesystem::exists(cert_file)) {
    return fail(Errc::already_exists, dir, "fleet CA",
                "fleet-ca.key or fleet-ca.crt exists already");
  }
  auto key = crypto::PrivateKey::generate(type);
  if (!key) return std::unexpected(key.error());
  auto pub = key->public_key();
  if (!pub) return std::unexpected(pub.error());
  const auto now = std::chrono::system_clock::now();
  crypto::IssueOptions io;
  io.subject = {name, "", "Portier"};
  io.usage = crypto::CertUsage::ca;
  io.not_before = now - std::chrono::minutes(5);
  io.not_after = now + std::chrono::hours(24 * 3653);
  io.path_length = 0;
  auto cert = crypto::issue_certificate(*pub, io, nullptr, *key);
  if (!cert) return std::unexpected(cert.error());
  auto key_pem = key->to_pem();
  if (!key_pem) return std::unexpected(key_pem.error());
  auto written = replace_file(key_file, *key_pem, 0600);
  crypto::cleanse(*key_pem);
  PORTIER_TRY(written);
  auto cert_pem = cert->to_pem();
  if (!cert_pem) return std::unexpected(cert_pem.error());
  PORTIER_TRY(replace_file(cert_file, *cert_pem, 0644));
  return FleetCa(std::move(*cert), std::move(*key), {}, options);
}

Result<crypto::Certificate> FleetCa::issue_device(const crypto::CertificateRequest& csr,
                                                  const std::string& terminal_id,
                                                  const std::string& serial,
                                                  crypto::TimePoint now) const {
  PORTIER_TRY(csr.verify_self_signature());
  auto pub = csr.public_key();
  if (!pub) return std::unexpected(pub.error());
  crypto::IssueOptions io;
  io.subject = {terminal_id, serial, ""};
  io.usage = crypto::CertUsage::device;
  io.not_before = now - std::chrono::minutes(5);
  io.not_after = now + options_.device_lifetime;
  if (io.not_after > cert_.not_after()) io.not_after = cert_.not_after();
  return crypto::issue_certificate(*pub, io, &cert_, key_);
}

}  // namespace portier::fleet
