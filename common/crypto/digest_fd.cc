// Hashing a file: the loop, the limits and the errors, whatever the platform.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>

#include "common/crypto/digest.h"

namespace portier::crypto {

Result<Bytes> digest_fd(DigestAlgo algo, int fd, const HashLimits& limits) {
  const auto start = std::chrono::steady_clock::now();
  const std::string where(name(algo));
  auto md = Digest::create(algo);
  if (!md) return std::unexpected(md.error());
  constexpr std::size_t kBlock = 1 << 16;
  auto buf = std::make_unique<std::uint8_t[]>(kBlock);
  std::uint64_t off = 0, next_check = 1 << 20;
  bool seekable = true;
  for (;;) {
    ssize_t n = seekable ? pread(fd, buf.get(), kBlock, static_cast<off_t>(off))
                         : read(fd, buf.get(), kBlock);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == ESPIPE && seekable && off == 0) {
        seekable = false;
        continue;
      }
      return fail(Errc::io, where, "read", std::strerror(errno));
    }
    if (n == 0) break;
    md->update(ByteView(buf.get(), static_cast<std::size_t>(n)));
    off += static_cast<std::uint64_t>(n);
    if (off > limits.max_bytes) {
      return fail(Errc::resource_exhausted, where, "file",
                  "larger than " + std::to_string(limits.max_bytes) + " bytes");
    }
    // Checked every 1 MiB: a clock read per 64 KiB block would cost more
    // than the check saves.
    if (off < next_check) continue;
    next_check = off + (1 << 20);
    if (limits.cancel && limits.cancel->load(std::memory_order_relaxed)) {
      return fail(Errc::unavailable, where, "file", "cancelled");
    }
    if (limits.timeout != std::chrono::milliseconds::max() &&
        std::chrono::steady_clock::now() - start > limits.timeout) {
      return fail(Errc::resource_exhausted, where, "file",
                  "not hashed within " + std::to_string(limits.timeout.count()) + " ms");
    }
  }
  return md->finish();
}

Result<Bytes> digest_file(DigestAlgo algo, const std::string& path, const HashLimits& limits) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return fail(errno == ENOENT ? Errc::not_found : Errc::io, std::string(name(algo)), path,
                std::strerror(errno));
  }
  auto d = digest_fd(algo, fd, limits);
  close(fd);
  if (!d) {
    if (d.error().what != "file") d.error().why = d.error().what + ": " + d.error().why;
    d.error().what = path;
  }
  return d;
}

}  // namespace portier::crypto
