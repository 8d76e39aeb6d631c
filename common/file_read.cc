#include "common/file_read.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

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

Result<int> open_private(const std::string& path, const std::string& what,
                         const std::string& hint) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) {
    if (errno == ELOOP) {
      return fail(Errc::permission_denied, path, what, "not a regular file but a symlink: refused");
    }
    return fail_errno(errno == ENOENT ? Errc::not_found : Errc::io, path, what + ": cannot open",
                      errno);
  }
  struct stat st {};
  std::string why;
  if (::fstat(fd, &st) != 0) {
    const int e = errno;
    ::close(fd);
    return fail_errno(Errc::io, path, what + ": cannot stat", e);
  }
  if (!S_ISREG(st.st_mode)) {
    why = "not a regular file (a device, a directory, ...): refused";
  } else if (st.st_uid != ::geteuid()) {
    why = "owned by uid " + std::to_string(st.st_uid) + ", not portierd's uid " +
          std::to_string(::geteuid()) + ": refused";
  } else if (st.st_mode & 077) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    why = std::string("mode ") + mode + " lets others read or change it: refused (" + hint + ")";
  }
  if (!why.empty()) {
    ::close(fd);
    return fail(Errc::permission_denied, path, what, why);
  }
  return fd;
}

}  // namespace portier
