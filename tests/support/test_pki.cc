// The test PKI: keys generated and certificates issued through
// common/crypto/x509.h, files written with the modes a daemon checks.
#include "support/test_pki.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace portier::test {
namespace {

using crypto::Certificate;
using crypto::CertUsage;
using crypto::IssueOptions;
using crypto::PrivateKey;
using std::chrono::hours;
using Clock = std::chrono::system_clock;

constexpr const char* kWhere = "test pki";
constexpr hours kDay{24};

struct Made {
  Certificate cert;
  PrivateKey key;
};

Result<std::string> pem_of(const std::vector<Certificate>& certs) {
  std::string out;
  for (const Certificate& c : certs) {
    auto pem = c.to_pem();
    if (!pem) return std::unexpected(pem.error());
    out += *pem;
  }
  return out;
}

Result<void> write_key(const std::string& path, const PrivateKey& key) {
  auto pem = key.to_pem();
  if (!pem) return std::unexpected(pem.error());
  auto r = write_pki_file(path, *pem, 0600);
  crypto::cleanse(*pem);
  return r;
}

// A CA of `type`: self-signed when `issuer` is null.
Result<Made> make_ca(crypto::KeyType type, const std::string& cn, Clock::time_point now,
                     hours lifetime, std::optional<int> path_length, const Made* issuer) {
  auto key = PrivateKey::generate(type);
  if (!key) return std::unexpected(key.error());
  auto pub = key->public_key();
  if (!pub) return std::unexpected(pub.error());
  IssueOptions o;
  o.subject = {cn, "", "Portier Test"};
  o.usage = CertUsage::ca;
  o.not_before = now - 90 * kDay;  // before any leaf's, expired ones too
  o.not_after = now + lifetime;
  o.path_length = path_length;
  auto cert = issuer != nullptr ? crypto::issue_certificate(*pub, o, &issuer->cert, issuer->key)
                                : crypto::issue_certificate(*pub, o, nullptr, *key);
  if (!cert) return std::unexpected(cert.error());
  return Made{std::move(*cert), std::move(*key)};
}

}  // namespace

CertUsage wrong_usage_for(CertUsage asked) {
  switch (asked) {
    case CertUsage::tls_client:
    case CertUsage::device:
      return CertUsage::tls_server;
    case CertUsage::tls_server:
    case CertUsage::command_signing:
      return CertUsage::tls_client;
    case CertUsage::ca:
      return CertUsage::device;
  }
  return CertUsage::device;
}

Result<void> write_pki_file(const std::string& path, const std::string& text, unsigned mode) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
                        static_cast<mode_t>(mode));
  if (fd < 0) return fail_errno(Errc::io, kWhere, path, errno);
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = errno;
      ::close(fd);
      return fail_errno(Errc::io, kWhere, path, err);
    }
    done += static_cast<std::size_t>(n);
  }
  // The mode exactly, whatever the umask or an earlier file had.
  if (::fchmod(fd, static_cast<mode_t>(mode)) != 0) {
    const int err = errno;
    ::close(fd);
    return fail_errno(Errc::io, kWhere, path, err);
  }
  if (::close(fd) != 0) return fail_errno(Errc::io, kWhere, path, errno);
  return {};
}

TestPki::TestPki(std::string dir, crypto::KeyType type, Clock::time_point made_at, Certificate root,
                 PrivateKey root_key, Certificate intermediate, PrivateKey intermediate_key)
    : dir_(std::move(dir)),
      type_(type),
      made_at_(made_at),
      root_(std::move(root)),
      root_key_(std::move(root_key)),
      intermediate_(std::move(intermediate)),
      intermediate_key_(std::move(intermediate_key)) {}

Result<TestPki> TestPki::create(const std::string& dir, crypto::KeyType type) {
  const auto now = Clock::now();
  auto root = make_ca(type, "Portier Test Root CA", now, 3650 * kDay, std::nullopt, nullptr);
  if (!root) return std::unexpected(root.error());
  auto inter = make_ca(type, "Portier Test Intermediate CA", now, 1825 * kDay, 0, &*root);
  if (!inter) return std::unexpected(inter.error());
  TestPki pki(dir, type, now, root->cert, root->key, inter->cert, inter->key);
  for (auto [name, made] : {std::pair{"ca", &*root}, std::pair{"intermediate", &*inter}}) {
    auto pem = made->cert.to_pem();
    if (!pem) return std::unexpected(pem.error());
    PORTIER_TRY(write_pki_file(dir + "/" + name + ".crt", *pem, 0644));
    PORTIER_TRY(write_key(dir + "/" + name + ".key", made->key));
  }
  return pki;
}

Result<IssuedLeaf> TestPki::issue(const LeafSpec& spec) const {
  if (spec.name.empty() ||
      spec.name.find_first_not_of("abcdefghijklmnopqrstuvwxyz"
                                  "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") != std::string::npos)
    return fail(Errc::invalid_argument, kWhere, "leaf name \"" + spec.name + "\"",
                "letters, digits, '-' and '_' only");
  auto key = PrivateKey::generate(spec.key_type.value_or(type_));
  if (!key) return std::unexpected(key.error());
  auto pub = key->public_key();
  if (!pub) return std::unexpected(pub.error());

  IssueOptions o;
  o.subject = {spec.name, spec.serial_number, spec.organization};
  o.usage = spec.flaw == Flaw::wrong_usage ? wrong_usage_for(spec.usage) : spec.usage;
  o.not_before = made_at_ - hours(1);
  o.not_after = made_at_ + 365 * kDay;
  if (spec.flaw == Flaw::expired) {
    o.not_before = made_at_ - 30 * kDay;
    o.not_after = made_at_ - kDay;
  }
  if (spec.flaw == Flaw::not_yet_valid) {
    o.not_before = made_at_ + kDay;
    o.not_after = made_at_ + 30 * kDay;
  }
  o.dns_names = spec.dns_names;
  o.ip_addresses = spec.ip_addresses;
  if (spec.usage == CertUsage::tls_server && o.dns_names.empty() && o.ip_addresses.empty()) {
    o.dns_names = {"localhost"};
    o.ip_addresses = {"127.0.0.1", "::1"};
  }

  Made issuer{spec.by_root ? root_ : intermediate_, spec.by_root ? root_key_ : intermediate_key_};
  std::vector<Certificate> chain;
  if (!spec.by_root) chain.push_back(intermediate_);
  if (spec.flaw == Flaw::untrusted_issuer) {
    // Another root with the very name of ours: only its key tells it apart.
    auto other = make_ca(type_, root_.subject_cn(), made_at_, 3650 * kDay, std::nullopt, nullptr);
    if (!other) return std::unexpected(other.error());
    issuer = *other;
    chain = {other->cert};
  }
  if (spec.flaw == Flaw::issuer_not_ca) {
    // Two certificates of one key and name from our root: a CA one that
    // signs the leaf (issue_certificate signs only as a CA), and a CA:FALSE
    // one that the chain presents.
    const Made root{root_, root_key_};
    auto signer =
        make_ca(type_, "Portier Test Not-a-CA", made_at_, 365 * kDay, std::nullopt, &root);
    if (!signer) return std::unexpected(signer.error());
    auto signer_pub = signer->key.public_key();
    if (!signer_pub) return std::unexpected(signer_pub.error());
    IssueOptions not_ca;
    not_ca.subject = {"Portier Test Not-a-CA", "", "Portier Test"};
    not_ca.usage = CertUsage::tls_client;
    not_ca.not_before = made_at_ - 90 * kDay;
    not_ca.not_after = made_at_ + 365 * kDay;
    auto presented = crypto::issue_certificate(*signer_pub, not_ca, &root_, root_key_);
    if (!presented) return std::unexpected(presented.error());
    issuer = *signer;
    chain = {*presented};
  }

  Result<Certificate> cert = spec.flaw == Flaw::self_signed
                                 ? crypto::issue_certificate(*pub, o, nullptr, *key)
                                 : crypto::issue_certificate(*pub, o, &issuer.cert, issuer.key);
  if (!cert) return std::unexpected(cert.error());
  if (spec.flaw == Flaw::self_signed) chain.clear();

  IssuedLeaf leaf{*cert,
                  *key,
                  chain,
                  dir_ + "/" + spec.name + ".crt",
                  dir_ + "/" + spec.name + ".key",
                  dir_ + "/" + spec.name + ".chain.pem"};
  auto leaf_pem = pem_of({*cert});
  if (!leaf_pem) return std::unexpected(leaf_pem.error());
  std::vector<Certificate> presented{*cert};
  presented.insert(presented.end(), chain.begin(), chain.end());
  auto chain_pem = pem_of(presented);
  if (!chain_pem) return std::unexpected(chain_pem.error());
  PORTIER_TRY(write_pki_file(leaf.cert_path, *leaf_pem, 0644));
  PORTIER_TRY(write_key(leaf.key_path, *key));
  PORTIER_TRY(write_pki_file(leaf.chain_path, *chain_pem, 0644));
  return leaf;
}

}  // namespace portier::test
