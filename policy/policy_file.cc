#include "policy/policy_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

#include "policy/policy_limits.h"

namespace portier::policy {

namespace {

std::string octal_mode(mode_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

// Closes the descriptor on every return path.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

}  // namespace

Result<std::string> read_policy_file(const std::string& path) {
  // O_NONBLOCK so that a FIFO put in the policy's place cannot hang the
  // daemon in open(); the checks below refuse it anyway.
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  if (fd.get() < 0) {
    const int e = errno;
    return fail(Errc::io, path, "policy file", std::string("cannot open: ") + std::strerror(e));
  }
  // fstat on the open descriptor: what we check is what we read.
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    const int e = errno;
    return fail(Errc::io, path, "policy file", std::string("cannot stat: ") + std::strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    return fail(Errc::invalid_argument, path, "policy file",
                "is not a regular file (expected a TOML file)");
  }
  if ((st.st_mode & 022) != 0) {
    return fail(Errc::permission_denied, path, "policy file",
                "is writable by group or others (mode " + octal_mode(st.st_mode) +
                    "), so someone other than its owner could grant themselves devices; refusing "
                    "it (fix with: chmod go-w " +
                    path + ")");
  }
  if (static_cast<std::uintmax_t>(st.st_size) > kMaxPolicyBytes) {
    return fail(Errc::invalid_argument, path, "policy file",
                "is " + std::to_string(st.st_size) + " bytes, over the limit of " +
                    std::to_string(kMaxPolicyBytes) + " bytes (1 MiB)");
  }
  std::string text;
  char buf[16384];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int e = errno;
      return fail(Errc::io, path, "policy file", std::string("cannot read: ") + std::strerror(e));
    }
    if (n == 0) break;
    text.append(buf, static_cast<std::size_t>(n));
    // The file may grow between fstat and read; stop as soon as it is too big.
    if (text.size() > kMaxPolicyBytes) {
      return fail(Errc::invalid_argument, path, "policy file",
                  "is over the limit of " + std::to_string(kMaxPolicyBytes) + " bytes (1 MiB)");
    }
  }
  return text;
}

}  // namespace portier::policy
