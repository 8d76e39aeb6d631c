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
  auto opened = open_private(path, what);
  if (!opened) return std::unexpected(opened.error());
  const int fd = *opened;
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
