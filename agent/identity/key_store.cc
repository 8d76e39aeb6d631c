#include "agent/identity/key_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <vector>

#include "agent/identity/device_key.h"

namespace portier::identity {
namespace {

Result<std::shared_ptr<crypto::Signer>> file_signer(const std::string& path, crypto::KeyType t) {
  auto key = load_or_create_key(path, t);
  if (!key) return std::unexpected(key.error());
  auto s = crypto::KeySigner::from(std::move(*key));
  if (!s) return std::unexpected(s.error());
  return std::shared_ptr<crypto::Signer>(std::make_shared<crypto::KeySigner>(std::move(*s)));
}

void fsync_dir(const std::string& path) {
  const auto dir = std::filesystem::path(path).parent_path();
  const int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace

Result<std::shared_ptr<crypto::Signer>> FileKeyStore::current() {
  return file_signer(path_, type_);
}

Result<std::shared_ptr<crypto::Signer>> FileKeyStore::pending(bool create) {
  const std::string p = path_ + ".pending";
  struct stat st {};
  if (!create && ::lstat(p.c_str(), &st) != 0) {
    if (errno == ENOENT) return std::shared_ptr<crypto::Signer>();
    return fail_errno(Errc::io, p, "cannot stat", errno);
  }
  return file_signer(p, type_);
}

Result<void> FileKeyStore::promote() {
  const std::string p = path_ + ".pending";
  struct stat pst {};
  if (::lstat(p.c_str(), &pst) != 0) {
    return fail_errno(Errc::failed_precondition, p, "no pending key to make current", errno);
  }
  // The pending key must be a good key of ours before it replaces the old.
  auto next = file_signer(p, type_);
  if (!next) return std::unexpected(next.error());
  // Kept open so that the old key's bytes can be overwritten once the new
  // key is in place (a crash before then leaves the old key, still good).
  const int old = ::open(path_.c_str(), O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
  if (::rename(p.c_str(), path_.c_str()) != 0) {
    const int e = errno;
    if (old >= 0) ::close(old);
    return fail_errno(Errc::io, path_, "cannot put the new device key in place", e);
  }
  fsync_dir(path_);
  if (old >= 0) {
    struct stat st {};
    if (::fstat(old, &st) == 0) {
      std::vector<char> zeros(static_cast<std::size_t>(st.st_size), 0);
      if (::pwrite(old, zeros.data(), zeros.size(), 0) >= 0) ::fdatasync(old);
    }
    ::close(old);
  }
  return {};
}

Result<void> FileKeyStore::discard_pending() {
  const std::string p = path_ + ".pending";
  const int fd = ::open(p.c_str(), O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    if (errno == ENOENT) return {};
    return fail_errno(Errc::io, p, "cannot open the pending key to destroy it", errno);
  }
  struct stat st {};
  if (::fstat(fd, &st) == 0) {
    std::vector<char> zeros(static_cast<std::size_t>(st.st_size), 0);
    if (::pwrite(fd, zeros.data(), zeros.size(), 0) >= 0) ::fdatasync(fd);
  }
  ::close(fd);
  if (::unlink(p.c_str()) != 0 && errno != ENOENT) {
    return fail_errno(Errc::io, p, "cannot remove the pending key", errno);
  }
  fsync_dir(path_);
  return {};
}

Pkcs11Options Pkcs11KeyStore::with_label(const std::string& label) const {
  Pkcs11Options o = options_;
  o.key_label = label;
  return o;
}

Result<std::shared_ptr<crypto::Signer>> Pkcs11KeyStore::current() {
  auto cur = Pkcs11Signer::open_existing(options_);
  if (!cur && cur.error().code == Errc::not_found &&
      cur.error().message().find("no such key") != std::string::npos) {
    // Destroyed by a promotion that stopped before the relabel: finish it.
    auto pend = Pkcs11Signer::open_existing(with_label(options_.key_label + ".pending"));
    if (pend) {
      PORTIER_TRY((*pend)->relabel(options_.key_label));
      return std::shared_ptr<crypto::Signer>(std::move(*pend));
    }
    cur = Pkcs11Signer::open_or_create(options_);
  }
  if (!cur) return std::unexpected(cur.error());
  return std::shared_ptr<crypto::Signer>(std::move(*cur));
}

Result<std::shared_ptr<crypto::Signer>> Pkcs11KeyStore::pending(bool create) {
  const auto o = with_label(options_.key_label + ".pending");
  auto p = create ? Pkcs11Signer::open_or_create(o) : Pkcs11Signer::open_existing(o);
  if (!p) {
    if (!create && p.error().code == Errc::not_found &&
        p.error().message().find("no such key") != std::string::npos) {
      return std::shared_ptr<crypto::Signer>();
    }
    return std::unexpected(p.error());
  }
  return std::shared_ptr<crypto::Signer>(std::move(*p));
}

Result<void> Pkcs11KeyStore::promote() {
  auto pend = Pkcs11Signer::open_existing(with_label(options_.key_label + ".pending"));
  if (!pend) return std::unexpected(pend.error());
  auto old = Pkcs11Signer::open_existing(options_);
  if (old) {
    if (keep_retired_) {
      // One retired key at a time: an older one left behind goes first.
      PORTIER_TRY(destroy_retired());
      PORTIER_TRY((*old)->relabel(options_.key_label + ".retired"));
    } else {
      PORTIER_TRY((*old)->destroy());
    }
  } else if (old.error().code != Errc::not_found) {
    return std::unexpected(old.error());
  }
  return (*pend)->relabel(options_.key_label);
}

Result<void> Pkcs11KeyStore::destroy_retired() {
  auto retired = Pkcs11Signer::open_existing(with_label(options_.key_label + ".retired"));
  if (!retired) {
    if (retired.error().code == Errc::not_found &&
        retired.error().message().find("no such key") != std::string::npos) {
      return {};
    }
    return std::unexpected(retired.error());
  }
  return (*retired)->destroy();
}

}  // namespace portier::identity
