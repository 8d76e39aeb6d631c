#include "common/file_read.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

namespace portier {

int read_small_fd(int fd, std::string& out, std::size_t max) {
  out.clear();
  char buf[4096];
  int err = 0;
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      err = errno;
      break;
    }
    if (n == 0) break;
    if (out.size() + static_cast<std::size_t>(n) > max) {
      err = EFBIG;
      break;
    }
    out.append(buf, static_cast<std::size_t>(n));
  }
  if (err) {
    out.clear();
    errno = err;  // for callers that report strerror(errno)
  }
  return err;
}

int read_small_file(const std::string& path, std::string& out, ReadOptions options) {
  out.clear();
  const int flags = O_RDONLY | O_CLOEXEC | (options.follow_symlinks ? 0 : O_NOFOLLOW);
  const int fd = ::open(path.c_str(), flags);
  if (fd < 0) return errno;
  const int err = read_small_fd(fd, out, options.max);
  ::close(fd);
  if (err) errno = err;
  return err;
}

Result<std::string> read_small_file(const std::string& path, ReadOptions options) {
  std::string out;
  if (const int e = read_small_file(path, out, options); e != 0) {
    return fail_errno(Errc::io, path, "cannot read", e);
  }
  return out;
}

}  // namespace portier
