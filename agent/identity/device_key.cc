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

// Puts a new file `path` holding `data` in place whole or not at all: written
// and fsync'd under a temporary name, then linked to `path` (which fails,
// EEXIST, when another process made it first), the directory fsync'd. A
// crash leaves no empty or partial file at `path`.
Result<void> write_new(const std::string& path, std::string_view data, mode_t mode) {
  std::string tmp = path + ".tmpXXXXXX";
  const int fd = ::mkstemp(tmp.data());  // 0600, O_EXCL
  if (fd < 0) return fail_errno(Errc::io, path, "cannot create a temporary file", errno);
  auto fail_with = [&](const char* what, int e) {
    ::close(fd);
    ::unlink(tmp.c_str());
    return fail_errno(e == EEXIST ? Errc::already_exists : Errc::io, path, what, e);
  };
  std::size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return fail_with("cannot write", n < 0 ? errno : EIO);
    done += static_cast<std::size_t>(n);
  }
  if (::fchmod(fd, mode) != 0) return fail_with("cannot set its mode", errno);
  if (::fsync(fd) != 0) return fail_with("cannot fsync", errno);
  if (::link(tmp.c_str(), path.c_str()) != 0) return fail_with("cannot put it in place", errno);
  ::close(fd);
  ::unlink(tmp.c_str());
  const auto dir = std::filesystem::path(path).parent_path();
  const int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
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
    if (written) return key;
    // Another process made it first: its key is the one.
    if (written.error().code != Errc::already_exists) return std::unexpected(written.error());
  }
  auto fd = open_private(path, "device key",
                         "chmod 0600, and replace the key if anyone may have read it");
  if (!fd) return std::unexpected(fd.error());
  std::string pem;
  const int e = read_small_fd(*fd, pem, kMaxKeyFile);
  ::close(*fd);
  if (e != 0) return fail_errno(Errc::io, path, "cannot read", e);
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
  if (auto ok = write_new(path, id + "\n", 0644); !ok) {
    // Another process made it first: its id is the one.
    if (ok.error().code == Errc::already_exists) return load_or_create_terminal_id(path);
    return std::unexpected(ok.error());
  }
  return id;
}

}  // namespace portier::identity
