#include "peer_identity.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <systemd/sd-login.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <tuple>

#include "exe_path_check.h"
#include "peer_socket_proof.h"
#include "sha256_file.h"

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

namespace portier::gateway {
namespace {

bool pidfd_exited(int pidfd) {
  if (pidfd < 0) return false;
  pollfd p{pidfd, POLLIN, 0};
  return poll(&p, 1, 0) > 0;
}

// Field 22 of /proc/<pid>/stat, read with one read(2) (no streams: this
// runs per call on kernels without pidfds).
Result<std::uint64_t> read_start_time(pid_t pid) {
  char path[32];
  std::snprintf(path, sizeof(path), "/proc/%d/stat", static_cast<int>(pid));
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return fail(Errc::unavailable, "peer", "pid " + std::to_string(pid), "process is gone");
  }
  char buf[1024];
  ssize_t n = ::read(fd, buf, sizeof(buf) - 1);
  ::close(fd);
  if (n <= 0) {
    return fail(Errc::unavailable, "peer", "pid " + std::to_string(pid), "process is gone");
  }
  buf[n] = 0;
  // comm may contain spaces and parentheses: fields start after the last ')'.
  char* p = std::strrchr(buf, ')');
  if (!p) return fail(Errc::internal, "peer", path, "unparsable");
  ++p;
  for (int field = 3; field <= 22; ++field) {
    while (*p == ' ') ++p;
    if (!*p) break;
    if (field == 22) return std::strtoull(p, nullptr, 10);
    while (*p && *p != ' ') ++p;
  }
  return fail(Errc::internal, "peer", path, "too short");
}

// The process's systemd *system* unit: libsystemd reads the cgroup path
// under the system manager's tree, so a user manager's unit
// (user@1000.service/app.slice/payment.service) is reported as
// "user@1000.service" and a delegated subtree as the unit it was delegated
// to, never as the name of a cgroup someone made.
std::string read_unit(pid_t pid) {
  char* unit = nullptr;
  if (sd_pid_get_unit(pid, &unit) < 0 || !unit) return {};
  std::string s(unit);
  std::free(unit);
  return s;
}

// Digests by file identity, bounded in all and per uid: a uid that fills
// its share (new copies, `touch`) evicts only its own oldest entries, and
// when the whole cache is full the uid holding most loses one; no caller
// can flush the digests of another uid's apps.
class DigestCache {
 public:
  using Key = std::tuple<dev_t, ino_t, off_t, long, long, long, long>;
  struct Entry {
    std::string digest;
    std::string error;  // set: the file was refused (over max_exe_bytes)
    uid_t uid = 0;
  };
  static constexpr std::size_t kMax = 1024, kPerUid = 64;

  std::optional<Entry> find(const Key& key) {
    std::lock_guard lock(mu_);
    auto it = entries_.find(key);
    if (it == entries_.end()) return std::nullopt;
    return it->second;
  }
  // Inserts unless present; returns the entry in the cache and whether it is new.
  std::pair<Entry, bool> insert(const Key& key, Entry entry) {
    std::lock_guard lock(mu_);
    if (auto it = entries_.find(key); it != entries_.end()) return {it->second, false};
    auto& mine = by_uid_[entry.uid];
    if (mine.size() >= kPerUid) evict_oldest(entry.uid);
    if (entries_.size() >= kMax) {
      auto most = std::max_element(by_uid_.begin(), by_uid_.end(), [](auto& a, auto& b) {
        return a.second.size() < b.second.size();
      });
      evict_oldest(most->first);
    }
    by_uid_[entry.uid].push_back(key);
    entries_.emplace(key, entry);
    return {entry, true};
  }

 private:
  void evict_oldest(uid_t uid) {
    auto it = by_uid_.find(uid);
    if (it == by_uid_.end() || it->second.empty()) return;
    entries_.erase(it->second.front());
    it->second.pop_front();
    if (it->second.empty()) by_uid_.erase(it);
  }

  std::mutex mu_;
  std::map<Key, Entry> entries_;
  std::map<uid_t, std::deque<Key>> by_uid_;
};

DigestCache& digest_cache() {
  static DigestCache c;
  return c;
}

}  // namespace

PeerIdentity::PeerIdentity(PeerIdentity&& o) noexcept
    : caller(std::move(o.caller)),
      exe_seen(std::move(o.exe_seen)),
      exe_doubt(std::move(o.exe_doubt)),
      pidfd(std::exchange(o.pidfd, -1)),
      start_time(o.start_time),
      exe_dev(o.exe_dev),
      exe_ino(o.exe_ino),
      proc_exe(std::move(o.proc_exe)) {}

PeerIdentity& PeerIdentity::operator=(PeerIdentity&& o) noexcept {
  if (this != &o) {
    if (pidfd >= 0) ::close(pidfd);
    caller = std::move(o.caller);
    exe_seen = std::move(o.exe_seen);
    exe_doubt = std::move(o.exe_doubt);
    pidfd = std::exchange(o.pidfd, -1);
    start_time = o.start_time;
    exe_dev = o.exe_dev;
    exe_ino = o.exe_ino;
    proc_exe = std::move(o.proc_exe);
  }
  return *this;
}

PeerIdentity::~PeerIdentity() {
  if (pidfd >= 0) ::close(pidfd);
}

Result<std::string> executable_digest(int fd, const ResolveOptions& options, bool* first_failure,
                                      uid_t uid) {
  if (first_failure) *first_failure = false;
  struct stat st {};
  if (fstat(fd, &st) != 0) return fail_errno(Errc::io, "peer", "executable", errno);
  DigestCache::Key key{st.st_dev,          st.st_ino,         st.st_size,        st.st_mtim.tv_sec,
                       st.st_mtim.tv_nsec, st.st_ctim.tv_sec, st.st_ctim.tv_nsec};
  auto& cache = digest_cache();
  if (auto hit = cache.find(key)) {
    if (!hit->error.empty())
      return fail(Errc::resource_exhausted, "peer", "executable", hit->error);
    return hit->digest;
  }
  DigestCache::Entry entry;
  entry.uid = uid;
  if (static_cast<std::uint64_t>(st.st_size) > options.max_exe_bytes) {
    // A property of the file: remembered, and audited once per file.
    entry.error = "the executable is " + std::to_string(st.st_size) + " bytes, over the " +
                  std::to_string(options.max_exe_bytes) +
                  "-byte limit portierd hashes ([identity] max_exe_bytes)";
  } else {
    auto digest =
        sha256_of_fd(fd, HashLimits{options.max_exe_bytes, options.hash_timeout, options.cancel});
    if (!digest) {
      // Too slow now (a loaded machine, a cold disk) says nothing lasting
      // about the file: not remembered, the next connection tries again.
      if (first_failure) *first_failure = true;
      if (digest.error().code == Errc::resource_exhausted) {
        return fail(Errc::resource_exhausted, "peer", "executable",
                    "the executable could not be hashed: " + digest.error().why +
                        " ([identity] max_exe_bytes, hash_timeout_ms)");
      }
      return digest;
    }
    entry.digest = *digest;
  }
  auto [kept, inserted] = cache.insert(key, entry);
  if (!kept.error.empty()) {
    if (first_failure) *first_failure = inserted;
    return fail(Errc::resource_exhausted, "peer", "executable", kept.error);
  }
  return kept.digest;
}

Result<PeerIdentity> resolve_peer(int fd, const ResolveOptions& options, bool* first_failure) {
  if (first_failure) *first_failure = true;
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    return fail_errno(Errc::internal, "peer", "SO_PEERCRED", errno);
  }
  PeerIdentity id;
  id.caller.uid = cred.uid;
  id.caller.gid = cred.gid;
  id.caller.pid = cred.pid;
  const std::string pidname = "pid " + std::to_string(cred.pid);
  if (cred.pid <= 0) {
    return fail(Errc::permission_denied, "peer", pidname,
                "the connecting process is outside portierd's pid namespace");
  }

  bool pinned_at_connect = false;
  if (options.use_so_peerpidfd) {
    int pidfd = -1;
    socklen_t plen = sizeof(pidfd);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &plen) == 0 && pidfd >= 0) {
      id.pidfd = pidfd;
      pinned_at_connect = true;  // the kernel pinned the connector itself
    }
  }
  if (!pinned_at_connect) {
    // Older kernels: pin whatever process has the pid now, then prove it is
    // one that holds this connection (the connector may have exited and its
    // pid been reused since); with no proof there is no identity.
    long r = syscall(SYS_pidfd_open, cred.pid, 0);
    if (r < 0 && errno == ESRCH) {
      return fail(Errc::unavailable, "peer", pidname,
                  "process exited before it could be identified");
    }
    id.pidfd = r < 0 ? -1 : static_cast<int>(r);
    auto peer = unix_peer_inode(fd);
    if (!peer) {
      return fail(Errc::permission_denied, "peer", pidname,
                  "cannot prove the process holds this connection: " + peer.error().message());
    }
    if (auto held = process_holds_socket(cred.pid, *peer); !held) {
      return std::unexpected(held.error());
    }
  }
  if (id.pidfd < 0) {
    // No pidfds at all (before Linux 5.3): the start time stands in.
    auto start = read_start_time(cred.pid);
    if (!start) return std::unexpected(start.error());
    id.start_time = *start;
  }

  const std::string proc = "/proc/" + std::to_string(cred.pid);
  id.proc_exe = proc + "/exe";
  char buf[4096];
  ssize_t n = readlink(id.proc_exe.c_str(), buf, sizeof(buf) - 1);
  if (n < 0) {
    return fail(Errc::permission_denied, "peer", id.proc_exe,
                std::string(std::strerror(errno)) +
                    " (portierd needs CAP_SYS_PTRACE to identify other users' apps)");
  }
  id.exe_seen.assign(buf, static_cast<size_t>(n));
  int exe_fd = open(id.proc_exe.c_str(), O_RDONLY | O_CLOEXEC);
  if (exe_fd < 0) return fail_errno(Errc::permission_denied, "peer", id.proc_exe, errno);
  struct stat st {};
  fstat(exe_fd, &st);
  id.exe_dev = st.st_dev;
  id.exe_ino = st.st_ino;
  // The digest is of the running image (the file open through /proc), so
  // it holds whatever the path shows.
  bool first = true;
  auto digest = executable_digest(exe_fd, options, &first, cred.uid);
  ::close(exe_fd);
  if (!digest) {
    if (first_failure) *first_failure = first;
    return std::unexpected(digest.error());
  }
  id.caller.sha256 = *digest;
  id.exe_doubt = exe_path_doubt(cred.pid, id.exe_seen, st);
  if (id.exe_doubt.empty()) id.caller.exe = id.exe_seen;
  id.caller.unit = read_unit(cred.pid);

  // Everything above described the process at `pid`; make sure that is still
  // the process that was pinned (not exited, pid not reused meanwhile).
  if (auto ok = verify_peer(id); !ok) return std::unexpected(ok.error());
  return id;
}

Result<void> verify_peer(const PeerIdentity& id) {
  const pid_t pid = id.caller.pid;
  // stat first, then the pidfd: if the pinned process is still alive after
  // the stat, the stat described it (its pid cannot have been reused).
  struct stat st {};
  const bool same_exe =
      ::stat(id.proc_exe.c_str(), &st) == 0 && st.st_dev == id.exe_dev && st.st_ino == id.exe_ino;
  if (id.pidfd >= 0) {
    if (pidfd_exited(id.pidfd)) {
      return fail(Errc::permission_denied, "peer", "pid " + std::to_string(pid),
                  "the process that connected has exited; a socket inherited by another "
                  "process carries no identity, reconnect");
    }
  } else {
    auto start = read_start_time(pid);
    if (!start || *start != id.start_time) {
      return fail(Errc::permission_denied, "peer", "pid " + std::to_string(pid),
                  "the process that connected is gone; reconnect");
    }
  }
  if (!same_exe) {
    return fail(Errc::permission_denied, "peer", "pid " + std::to_string(pid),
                "the process runs another executable than when it connected (exec after "
                "connect); reconnect");
  }
  return {};
}

}  // namespace portier::gateway
