#include "agent/identity/certificate_store.h"

#include <algorithm>
#include <cerrno>

#include "common/file_read.h"
#include "common/file_write.h"

namespace portier::identity {

Result<void> CertificateStore::install(const crypto::Certificate& cert,
                                       std::span<const crypto::Certificate> chain) const {
  std::string pem;
  auto leaf = cert.to_pem();
  if (!leaf) return std::unexpected(leaf.error());
  pem += *leaf;
  for (const auto& c : chain) {
    auto p = c.to_pem();
    if (!p) return std::unexpected(p.error());
    pem += *p;
  }
  return replace_file(path_, pem, 0644);
}

Result<std::optional<InstalledCertificate>> CertificateStore::load() const {
  std::string pem;
  if (const int e = read_small_file(path_, pem, {1u << 20, false}); e != 0) {
    if (e == ENOENT) return std::optional<InstalledCertificate>{};
    return fail_errno(Errc::io, path_, "device certificate: cannot read", e);
  }
  auto all = crypto::Certificate::all_from_pem(pem);
  if (!all) return std::unexpected(all.error().with_context(path_));
  if (all->empty()) return fail(Errc::invalid_argument, path_, "device certificate", "empty");
  InstalledCertificate out{all->front(), {all->begin() + 1, all->end()}};
  return std::optional<InstalledCertificate>(std::move(out));
}

crypto::TimePoint renewal_due_at(const crypto::Certificate& cert, unsigned percent) {
  const auto begin = cert.not_before();
  const auto life = cert.not_after() - begin;
  return begin + life * std::min(percent, 100u) / 100;
}

crypto::TimePoint renewal_due_at(const crypto::Certificate& cert) {
  const auto begin = cert.not_before();
  const auto life = cert.not_after() - begin;
  return begin + life * 2 / 3;
}

}  // namespace portier::identity
