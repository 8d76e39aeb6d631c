#include "peer_identity.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <tuple>

#include "sha256_file.h"

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

namespace portier::gateway {
namespace {

std::string errno_text(int e) { return std::strerror(e); }

int open_pidfd(int sock, pid_t pid) {
  int pidfd = -1;
  socklen_t len = sizeof(pidfd);
  if (getsockopt(sock, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) == 0 && pidfd >= 0) return pidfd;
  // Older kernels: pin the pid now; start_time and the alive check below
  // close the window in which the pid could have been reused.
  long r = syscall(SYS_pidfd_open, pid, 0);
  return r < 0 ? -1 : static_cast<int>(r);
}

bool pidfd_exited(int pidfd) {
  if (pidfd < 0) return false;
  pollfd p{pidfd, POLLIN, 0};
  return poll(&p, 1, 0) > 0;
}

Result<std::uint64_t> read_start_time(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  // comm may contain spaces and parentheses: fields start after the last ')'.
  auto close = s.rfind(')');
  if (!f.good() && s.empty()) {
    return fail(Errc::unavailable, "peer", "pid " + std::to_string(pid), "process is gone");
  }
  if (close == std::string::npos) {
    return fail(Errc::internal, "peer", "/proc/" + std::to_string(pid) + "/stat", "unparsable");
  }
  std::istringstream in(s.substr(close + 2));
  std::string field;
  for (int i = 3; i <= 22 && in >> field; ++i) {
    if (i == 22) return std::stoull(field);
  }
  return fail(Errc::internal, "peer", "/proc/" + std::to_string(pid) + "/stat", "too short");
}

std::string read_unit(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/cgroup");
  std::string line;
  while (std::getline(f, line)) {
    // cgroup v2: "0::/system.slice/kiosk-ui.service"
    if (line.rfind("0::", 0) != 0) continue;
    auto slash = line.rfind('/');
    std::string leaf = line.substr(slash + 1);
    for (const char* suffix : {".service", ".scope"}) {
      auto n = std::strlen(suffix);
      if (leaf.size() > n && leaf.compare(leaf.size() - n, n, suffix) == 0) return leaf;
    }
  }
  return {};
}

}  // namespace

PeerIdentity::PeerIdentity(PeerIdentity&& o) noexcept
    : caller(std::move(o.caller)),
      pidfd(std::exchange(o.pidfd, -1)),
      start_time(o.start_time),
      exe_dev(o.exe_dev),
      exe_ino(o.exe_ino) {}

PeerIdentity& PeerIdentity::operator=(PeerIdentity&& o) noexcept {
  if (this != &o) {
    if (pidfd >= 0) ::close(pidfd);
    caller = std::move(o.caller);
    pidfd = std::exchange(o.pidfd, -1);
    start_time = o.start_time;
    exe_dev = o.exe_dev;
    exe_ino = o.exe_ino;
  }
  return *this;
}

PeerIdentity::~PeerIdentity() {
  if (pidfd >= 0) ::close(pidfd);
}

Result<std::string> executable_digest(int fd) {
  struct stat st {};
  if (fstat(fd, &st) != 0) return fail(Errc::io, "peer", "executable", errno_text(errno));
  using Key = std::tuple<dev_t, ino_t, off_t, long, long, long, long>;
  Key key{st.st_dev,          st.st_ino,         st.st_size,        st.st_mtim.tv_sec,
          st.st_mtim.tv_nsec, st.st_ctim.tv_sec, st.st_ctim.tv_nsec};
  static std::mutex mu;
  static std::map<Key, std::string> cache;
  {
    std::lock_guard lock(mu);
    if (auto it = cache.find(key); it != cache.end()) return it->second;
  }
  auto digest = sha256_of_fd(fd);
  if (!digest) return digest;
  std::lock_guard lock(mu);
  if (cache.size() > 256) cache.clear();
  cache[key] = *digest;
  return digest;
}

Result<PeerIdentity> resolve_peer(int fd) {
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    return fail(Errc::internal, "peer", "SO_PEERCRED", errno_text(errno));
  }
  PeerIdentity id;
  id.caller.uid = cred.uid;
  id.caller.gid = cred.gid;
  id.caller.pid = cred.pid;
  id.pidfd = open_pidfd(fd, cred.pid);
  if (id.pidfd < 0 && errno == ESRCH) {
    return fail(Errc::unavailable, "peer", "pid " + std::to_string(cred.pid),
                "process exited before it could be identified");
  }
  auto start = read_start_time(cred.pid);
  if (!start) return std::unexpected(start.error());
  id.start_time = *start;

  const std::string proc = "/proc/" + std::to_string(cred.pid);
  char buf[4096];
  ssize_t n = readlink((proc + "/exe").c_str(), buf, sizeof(buf) - 1);
  if (n < 0) {
    return fail(
        Errc::permission_denied, "peer", proc + "/exe",
        errno_text(errno) + " (portierd needs CAP_SYS_PTRACE to identify other users' apps)");
  }
  id.caller.exe.assign(buf, static_cast<size_t>(n));
  // The link text of a deleted or replaced file ends in " (deleted)": the
  // contents we hash below are still those of the running image.
  int exe_fd = open((proc + "/exe").c_str(), O_RDONLY | O_CLOEXEC);
  if (exe_fd < 0) return fail(Errc::permission_denied, "peer", proc + "/exe", errno_text(errno));
  struct stat st {};
  fstat(exe_fd, &st);
  id.exe_dev = st.st_dev;
  id.exe_ino = st.st_ino;
  auto digest = executable_digest(exe_fd);
  ::close(exe_fd);
  if (!digest) return std::unexpected(digest.error());
  id.caller.sha256 = *digest;
  id.caller.unit = read_unit(cred.pid);

  // Everything above described the process at `pid`; make sure that is still
  // the process that connected (not exited, pid not reused meanwhile).
  if (auto ok = verify_peer(id); !ok) return std::unexpected(ok.error());
  return id;
}

Result<void> verify_peer(const PeerIdentity& id) {
  const pid_t pid = id.caller.pid;
  if (pidfd_exited(id.pidfd)) {
    return fail(Errc::permission_denied, "peer", "pid " + std::to_string(pid),
                "the process that connected has exited; a socket inherited by another "
                "process carries no identity, reconnect");
  }
  auto start = read_start_time(pid);
  if (!start || *start != id.start_time) {
    return fail(Errc::permission_denied, "peer", "pid " + std::to_string(pid),
                "the process that connected is gone; reconnect");
  }
  struct stat st {};
  const std::string exe = "/proc/" + std::to_string(pid) + "/exe";
  if (stat(exe.c_str(), &st) != 0 || st.st_dev != id.exe_dev || st.st_ino != id.exe_ino) {
    return fail(Errc::permission_denied, "peer", "pid " + std::to_string(pid),
                "the process runs another executable than when it connected (exec after "
                "connect); reconnect");
  }
  return {};
}

}  // namespace portier::gateway
