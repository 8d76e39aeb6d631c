#include "unix_listener.h"

#include <fcntl.h>
#include <grp.h>
#include <grpcpp/server.h>
#include <grpcpp/server_posix.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/log.h"

namespace portier::gateway {

Result<std::unique_ptr<UnixListener>> UnixListener::bind(const ListenerOptions& options) {
  sockaddr_un addr{};
  if (options.path.empty() || options.path.size() >= sizeof(addr.sun_path)) {
    return fail(Errc::invalid_argument, "socket", options.path,
                "socket path must be 1.." + std::to_string(sizeof(addr.sun_path) - 1) + " bytes");
  }
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return fail_errno(Errc::io, "socket", options.path, errno);
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, options.path.data(), options.path.size());

  // A stale socket from a previous run is removed; a live one is not stolen.
  struct stat st {};
  if (lstat(options.path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      ::close(fd);
      return fail(Errc::already_exists, "socket", options.path,
                  "exists and is not a socket; remove it or choose another path");
    }
    int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool live = ::connect(probe, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    ::close(probe);
    if (live) {
      ::close(fd);
      return fail(Errc::already_exists, "socket", options.path,
                  "another portierd is serving this socket");
    }
    ::unlink(options.path.c_str());
  }
  // Bind with a restrictive umask so the socket is never briefly world-open.
  mode_t old = ::umask(0177);
  int rc = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  ::umask(old);
  if (rc != 0) {
    auto e = std::string(std::strerror(errno));
    ::close(fd);
    return fail(Errc::io, "socket", options.path, "bind: " + e);
  }
  if (!options.group.empty()) {
    group* g = getgrnam(options.group.c_str());
    if (!g || ::chown(options.path.c_str(), static_cast<uid_t>(-1), g->gr_gid) != 0) {
      ::close(fd);
      return fail(Errc::invalid_argument, "socket", options.path,
                  "cannot give the socket to group '" + options.group + "'");
    }
  }
  if (::chmod(options.path.c_str(), options.mode) != 0 || ::listen(fd, 64) != 0) {
    auto e = std::string(std::strerror(errno));
    ::close(fd);
    return fail(Errc::io, "socket", options.path, e);
  }
  return std::unique_ptr<UnixListener>(new UnixListener(options, fd));
}

UnixListener::UnixListener(ListenerOptions options, int listen_fd)
    : options_(std::move(options)), listen_fd_(listen_fd) {
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = -1;
  epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, stop_fd_, &ev);

  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  rlim_t want = std::min<rlim_t>(rl.rlim_max, 65536);
  if (rl.rlim_cur < want) {
    rl.rlim_cur = want;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
  }
  // A few thousand numbers are enough for a stale "fd:N" never to meet a new
  // connection, and keep the kernel's descriptor table small (growing it to
  // tens of thousands costs milliseconds on the first accept).
  fd_limit_ = std::min(static_cast<int>(rl.rlim_cur) - 64, 8192);
  fd_base_ = std::min(512, fd_limit_ / 2);
  next_fd_ = fd_base_;
}

UnixListener::~UnixListener() {
  stop();
  ::close(listen_fd_);
  ::unlink(options_.path.c_str());
  for (auto& [fd, e] : by_fd_) ::close(e.watch_fd);
  ::close(epoll_fd_);
  ::close(stop_fd_);
}

void UnixListener::start(grpc::Server* server, ClosedFn on_closed, AppOfFn app_of,
                         RefusedFn on_refused) {
  server_ = server;
  on_closed_ = std::move(on_closed);
  app_of_ = std::move(app_of);
  on_refused_ = std::move(on_refused);
  resolver_ = std::make_unique<IdentityResolver>(
      options_.resolver,
      [this](int fd, Result<PeerIdentity> id, bool first) { admit(fd, std::move(id), first); });
  accept_thread_ = std::thread([this] { accept_loop(); });
  monitor_thread_ = std::thread([this] { monitor_loop(); });
}

void UnixListener::stop() {
  {
    std::lock_guard lock(mu_);
    if (stopped_) return;
    stopped_ = true;
  }
  std::uint64_t one = 1;
  (void)!::write(stop_fd_, &one, sizeof(one));
  if (accept_thread_.joinable()) accept_thread_.join();
  if (resolver_) resolver_->stop();
  if (monitor_thread_.joinable()) monitor_thread_.join();
}

int UnixListener::fresh_fd(int fd) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (next_fd_ >= fd_limit_) next_fd_ = fd_base_;
    int nfd = fcntl(fd, F_DUPFD_CLOEXEC, next_fd_);
    if (nfd >= 0 && nfd < fd_limit_) {
      next_fd_ = nfd + 1;
      ::close(fd);
      return nfd;
    }
    if (nfd >= 0) ::close(nfd);
    next_fd_ = fd_limit_;  // wrap
  }
  return fd;  // range exhausted: keep the number we have
}

void UnixListener::accept_loop() {
  pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
  for (;;) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      log_error("accept poll failed: " + std::string(std::strerror(errno)));
      return;
    }
    if (fds[1].revents) return;
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
      if (errno != EAGAIN && errno != EINTR)
        log_warning("accept failed: " + std::string(std::strerror(errno)));
      continue;
    }
    fd = fresh_fd(fd);
    ucred cred{};
    socklen_t len = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ||
        !resolver_->submit(fd, cred.uid)) {
      // Too many connections of this uid are waiting to be identified.
      refuse(fd, cred, AuditEvent::connection_refused,
             "uid " + std::to_string(cred.uid) + " has " +
                 std::to_string(options_.resolver.waiting_per_uid) +
                 " connections waiting to be identified");
    }
  }
}

void UnixListener::refuse(int fd, const ucred& who, AuditEvent event, const std::string& reason) {
  ::close(fd);
  std::uint64_t n;
  {
    std::lock_guard lock(mu_);
    if (refused_.size() >= 4096 && !refused_.count(who.uid)) refused_.clear();
    n = ++refused_[who.uid];
  }
  if ((n & (n - 1)) == 0) {
    const std::string what = reason + " (" + std::to_string(n) + " of uid " +
                             std::to_string(who.uid) + " refused so far)";
    log_warning("connection refused: " + what);
    if (on_refused_) on_refused_(who, event, what, true);
  }
}

void UnixListener::admit(int fd, Result<PeerIdentity> identity, bool first_failure) {
  auto conn = std::make_shared<Connection>();
  conn->id = next_id_++;
  ucred cred{};
  socklen_t len = sizeof(cred);
  getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len);
  if (identity) {
    conn->identity = std::move(*identity);
    std::string app = app_of_ ? app_of_(conn->identity) : "";
    conn->declared = !app.empty();
    // Per app *and* uid: an app declared without `uid` (or by gid alone)
    // may be matched by other users, who must not use up its share.
    conn->principal = conn->declared ? "app:" + app + " (uid " + std::to_string(cred.uid) + ")"
                                     : "uid:" + std::to_string(cred.uid);
  } else {
    // Served anyway, so the app gets a clear PERMISSION_DENIED per call
    // instead of a dropped connection; audited here, once (for a file too
    // large or slow to hash: once per file, not per connection).
    conn->identify_error = identity.error().message();
    conn->principal = "uid:" + std::to_string(cred.uid);
    if (on_refused_ && first_failure) {
      on_refused_(cred, AuditEvent::identity_refused, conn->identify_error, true);
    }
  }
  const auto& lim = options_.limits;
  std::string over;
  {
    std::lock_guard lock(mu_);
    int& mine = per_principal_[conn->principal];
    if (conn->declared) {
      if (mine >= lim.per_app) {
        over = conn->principal.substr(4) + " has " + std::to_string(mine) +
               " connections open (limit per app " + std::to_string(lim.per_app) + ")";
      } else if (declared_ >= lim.declared_total) {
        over = std::to_string(declared_) + " connections of declared apps are open";
      }
    } else if (mine >= lim.per_undeclared_uid) {
      over = "uid " + std::to_string(cred.uid) + ", no declared app, has " + std::to_string(mine) +
             " connections open (limit " + std::to_string(lim.per_undeclared_uid) + ")";
    } else if (undeclared_ >= lim.undeclared_total) {
      over = std::to_string(undeclared_) + " connections of undeclared callers are open";
    }
    if (over.empty()) {
      ++mine;
      ++(conn->declared ? declared_ : undeclared_);
    } else if (mine == 0) {
      per_principal_.erase(conn->principal);
    }
  }
  if (!over.empty()) {
    refuse(fd, cred, AuditEvent::connection_refused, over);
    return;
  }
  int watch = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  struct stat st {};
  fstat(fd, &st);
  {
    std::lock_guard lock(mu_);
    by_fd_[fd] = Entry{conn, watch, st.st_ino};
  }
  epoll_event ev{};
  ev.events = EPOLLRDHUP | EPOLLHUP;
  ev.data.fd = fd;
  epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, watch, &ev);
  std::lock_guard lock(grpc_mu_);
  grpc::AddInsecureChannelFromFd(server_, fd);
}

void UnixListener::drop(int grpc_fd) {
  std::shared_ptr<Connection> conn;
  {
    std::lock_guard lock(mu_);
    auto it = by_fd_.find(grpc_fd);
    if (it == by_fd_.end()) return;
    conn = it->second.conn;
    if (auto p = per_principal_.find(conn->principal); p != per_principal_.end()) {
      if (--p->second <= 0) per_principal_.erase(p);
    }
    --(conn->declared ? declared_ : undeclared_);
    epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, it->second.watch_fd, nullptr);
    ::close(it->second.watch_fd);
    by_fd_.erase(it);
  }
  if (on_closed_) on_closed_(conn);
}

void UnixListener::monitor_loop() {
  epoll_event events[32];
  for (;;) {
    int n = epoll_wait(epoll_fd_, events, 32, 2000);
    if (n < 0 && errno != EINTR) return;
    for (int i = 0; i < n; ++i) {
      if (events[i].data.fd == -1) return;  // stop
      drop(events[i].data.fd);
    }
    if (n == 0) {
      // Connections gRPC closed on its own (protocol error) while the peer
      // stayed: our duplicate must not keep them half-open.
      std::vector<int> gone;
      {
        std::lock_guard lock(mu_);
        for (auto& [fd, e] : by_fd_) {
          struct stat st {};
          if (fstat(fd, &st) != 0 || st.st_ino != e.ino) gone.push_back(fd);
        }
      }
      for (int fd : gone) drop(fd);
    }
  }
}

std::shared_ptr<Connection> UnixListener::find(const std::string& peer) const {
  if (peer.rfind("fd:", 0) != 0) return nullptr;
  int fd = -1;
  try {
    fd = std::stoi(peer.substr(3));
  } catch (...) {
    return nullptr;
  }
  std::lock_guard lock(mu_);
  auto it = by_fd_.find(fd);
  if (it == by_fd_.end()) return nullptr;
  struct stat st {};
  if (fstat(fd, &st) != 0 || st.st_ino != it->second.ino) return nullptr;
  return it->second.conn;
}

void UnixListener::sever(std::uint64_t id) {
  std::lock_guard lock(mu_);
  for (auto& [fd, e] : by_fd_) {
    if (e.conn->id == id) ::shutdown(e.watch_fd, SHUT_RDWR);
  }
}

std::size_t UnixListener::count() const {
  std::lock_guard lock(mu_);
  return by_fd_.size();
}

}  // namespace portier::gateway
