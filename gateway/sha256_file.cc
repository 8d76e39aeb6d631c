#include "sha256_file.h"

#include <gcrypt.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>

namespace portier::gateway {
namespace {

std::string hex(const unsigned char* p, unsigned n) {
  static const char* digits = "0123456789abcdef";
  std::string s(n * 2, '0');
  for (unsigned i = 0; i < n; ++i) {
    s[2 * i] = digits[p[i] >> 4];
    s[2 * i + 1] = digits[p[i] & 15];
  }
  return s;
}

// libgcrypt is in the process already (libsystemd links it), and its
// SHA-256 touches ~0.7 MiB of pages where OpenSSL 3's touched ~2 MiB: this
// digest runs for every new caller, so it is the one that stays resident.
bool gcrypt_ready() {
  static std::once_flag once;
  static bool ok = false;
  std::call_once(once, [] {
    if (!gcry_control(GCRYCTL_INITIALIZATION_FINISHED_P)) {
      if (!gcry_check_version(GCRYPT_VERSION)) return;
      gcry_control(GCRYCTL_DISABLE_SECMEM, 0);  // nothing secret is hashed here
      gcry_control(GCRYCTL_INITIALIZATION_FINISHED, 0);
    }
    ok = true;
  });
  return ok;
}

struct MdClose {
  void operator()(gcry_md_hd_t h) const { gcry_md_close(h); }
};

}  // namespace

Result<std::string> sha256_of_fd(int fd) { return sha256_of_fd(fd, HashLimits{}); }

Result<std::string> sha256_of_fd(int fd, const HashLimits& limits) {
  const auto start = std::chrono::steady_clock::now();
  gcry_md_hd_t raw = nullptr;
  if (!gcrypt_ready() || gcry_md_open(&raw, GCRY_MD_SHA256, 0) != 0) {
    return fail(Errc::internal, "sha256", "gcry_md_open", "libgcrypt refused SHA-256");
  }
  std::unique_ptr<gcry_md_handle, MdClose> md(raw);
  auto buf = std::make_unique<char[]>(1 << 16);
  off_t off = 0;
  for (;;) {
    ssize_t n = pread(fd, buf.get(), 1 << 16, off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail(Errc::io, "sha256", "read", std::strerror(errno));
    }
    if (n == 0) break;
    gcry_md_write(md.get(), buf.get(), static_cast<size_t>(n));
    off += n;
    if (static_cast<std::uint64_t>(off) > limits.max_bytes) {
      return fail(Errc::resource_exhausted, "sha256", "file",
                  "larger than " + std::to_string(limits.max_bytes) + " bytes");
    }
    // Checked every 1 MiB: a clock read per 64 KiB block would cost more
    // than the check saves.
    if ((off & ((1 << 20) - 1)) != 0) continue;
    if (limits.cancel && limits.cancel->load(std::memory_order_relaxed)) {
      return fail(Errc::unavailable, "sha256", "file", "cancelled");
    }
    if (limits.timeout != std::chrono::milliseconds::max() &&
        std::chrono::steady_clock::now() - start > limits.timeout) {
      return fail(Errc::resource_exhausted, "sha256", "file",
                  "not hashed within " + std::to_string(limits.timeout.count()) + " ms");
    }
  }
  const unsigned char* digest = gcry_md_read(md.get(), GCRY_MD_SHA256);
  return hex(digest, gcry_md_get_algo_dlen(GCRY_MD_SHA256));
}

}  // namespace portier::gateway
