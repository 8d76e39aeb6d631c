#include "agent/identity/private_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "common/file_read.h"

namespace portier::identity {

Result<std::string> read_private_file(const std::string& path, const std::string& what,
                                      std::size_t max) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) {
    if (errno == ELOOP) {
      return fail(Errc::permission_denied, path, what, "a symlink: refused");
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
    why = "not a regular file: refused";
  } else if (st.st_uid != ::geteuid()) {
    why = "owned by uid " + std::to_string(st.st_uid) + ", not portierd's uid " +
          std::to_string(::geteuid()) + ": refused";
  } else if (st.st_mode & 077) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    why = std::string("mode ") + mode + " lets others read or change it: refused (chmod 0600)";
  }
  if (!why.empty()) {
    ::close(fd);
    return fail(Errc::permission_denied, path, what, why);
  }
  std::string text;
  const int e = read_small_fd(fd, text, max);
  ::close(fd);
  if (e != 0) return fail_errno(Errc::io, path, what + ": cannot read", e);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) {
    text.pop_back();
  }
  if (text.empty()) return fail(Errc::invalid_argument, path, what, "empty");
  return text;
}

}  // namespace portier::identity
