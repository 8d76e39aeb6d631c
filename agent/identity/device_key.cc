#include "agent/identity/device_key.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include "common/crypto/bytes.h"
#include "common/crypto/random.h"
#include "common/file_read.h"
#include "common/hex.h"

namespace portier::identity {
namespace {

constexpr std::size_t kMaxKeyFile = 16 * 1024;

// Writes `data` to a new file `path` (never over an existing one), fsyncs
// it and its directory.
Result<void> write_new(const std::string& path, std::string_view data, mode_t mode) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0) return fail_errno(Errc::io, path, "cannot create", errno);
  std::size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int e = errno;
      ::close(fd);
      ::unlink(path.c_str());
      return fail_errno(Errc::io, path, "cannot write", e);
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) {
    const int e = errno;
    ::close(fd);
    ::unlink(path.c_str());
    return fail_errno(Errc::io, path, "cannot fsync", e);
  }
  ::close(fd);
  const auto dir = std::filesystem::path(path).parent_path();
  const int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return {};
}

// The key file must be portierd's alone.
Result<void> check_private(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return fail_errno(Errc::io, path, "cannot stat", errno);
  if (!S_ISREG(st.st_mode)) {
    return fail(Errc::permission_denied, path, "device key",
                "not a regular file (a symlink or something else): refused");
  }
  if (st.st_uid != ::geteuid()) {
    return fail(Errc::permission_denied, path, "device key",
                "owned by uid " + std::to_string(st.st_uid) + ", not portierd's uid " +
                    std::to_string(::geteuid()) + ": refused");
  }
  if (st.st_mode & 077) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return fail(Errc::permission_denied, path, "device key",
                std::string("mode ") + mode +
                    " lets others read or change it: refused (chmod 0600, and replace the key if "
                    "anyone may have read it)");
  }
  return {};
}

}  // namespace

Result<crypto::PrivateKey> load_or_create_key(const std::string& path, crypto::KeyType type) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno != ENOENT) return fail_errno(Errc::io, path, "cannot stat", errno);
    auto key = crypto::PrivateKey::generate(type);
    if (!key) return std::unexpected(key.error());
    auto pem = key->to_pem();
    if (!pem) return std::unexpected(pem.error());
    auto written = write_new(path, *pem, 0600);
    crypto::cleanse(*pem);
    if (!written) return std::unexpected(written.error());
    return key;
  }
  if (auto ok = check_private(path); !ok) return std::unexpected(ok.error());
  std::string pem;
  if (const int e = read_small_file(path, pem, {kMaxKeyFile, false}); e != 0) {
    return fail_errno(Errc::io, path, "cannot read", e);
  }
  auto key = crypto::PrivateKey::from_pem(pem);
  crypto::cleanse(pem);
  if (!key) return std::unexpected(key.error().with_context(path));
  if (key->type() != type) {
    return fail(Errc::failed_precondition, path, "device key",
                "is " + std::string(crypto::name(key->type())) + ", the config asks for " +
                    std::string(crypto::name(type)));
  }
  return key;
}

Result<std::string> load_or_create_terminal_id(const std::string& path) {
  std::string id;
  if (const int e = read_small_file(path, id, {256, false}); e == 0) {
    while (!id.empty() && (id.back() == '\n' || id.back() == ' ')) id.pop_back();
    const bool ok = id.size() == 34 && id.rfind("T-", 0) == 0 &&
                    id.find_first_not_of("0123456789abcdef", 2) == std::string::npos;
    if (!ok) return fail(Errc::invalid_argument, path, "terminal id", "not T-<32 hex digits>");
    return id;
  } else if (e != ENOENT) {
    return fail_errno(Errc::io, path, "cannot read", e);
  }
  std::uint8_t b[16];
  if (auto r = crypto::random_bytes(b); !r) return std::unexpected(r.error());
  id = "T-" + to_hex(b, sizeof b);
  if (auto ok = write_new(path, id + "\n", 0644); !ok) return std::unexpected(ok.error());
  return id;
}

}  // namespace portier::identity
