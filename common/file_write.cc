#include "common/file_write.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>

namespace portier {

Result<void> replace_file(const std::string& path, std::string_view data, mode_t mode) {
  std::string tmp = path + ".tmpXXXXXX";
  const int fd = ::mkstemp(tmp.data());
  if (fd < 0) return fail_errno(Errc::io, path, "cannot create a temporary file", errno);
  auto fail_with = [&](const char* what, int e) {
    ::close(fd);
    ::unlink(tmp.c_str());
    return fail_errno(e == ENOSPC ? Errc::resource_exhausted : Errc::io, path, what, e);
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
  if (::rename(tmp.c_str(), path.c_str()) != 0) return fail_with("cannot put it in place", errno);
  ::close(fd);
  const auto dir = std::filesystem::path(path).parent_path();
  const int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return {};
}

}  // namespace portier
