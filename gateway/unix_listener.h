// The local API socket. We accept connections ourselves, so that each one is
// identified from the kernel (SO_PEERCRED and /proc) before gRPC sees a byte
// (on the IdentityResolver's pool, never on the accept thread), counted
// against its app's or uid's connection limit, then handed to gRPC with
// AddInsecureChannelFromFd. gRPC names such
// a connection "fd:N"; to keep that name unambiguous each connection is moved
// to a fresh descriptor number that is not reused until the whole range has
// cycled, and every lookup checks that N still refers to the same socket.
// A duplicate of each socket is watched with EPOLLRDHUP so that a closed
// connection releases its leases at once.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/audit_event.h"
#include "common/result.h"
#include "connection.h"
#include "identity_resolver.h"

namespace grpc {
class Server;
}

namespace portier::gateway {

// Connections allowed at once. Declared apps and everyone else draw from
// separate pools, so undeclared callers can never starve declared apps.
struct ConnectionLimits {
  int per_app = 64;            // per declared app
  int declared_total = 1024;   // all declared apps together
  int per_undeclared_uid = 8;  // per uid, for callers that are no declared app
  int undeclared_total = 64;   // all of those together
};

struct ListenerOptions {
  std::string path;
  mode_t mode = 0660;
  std::string group;  // "" = keep the daemon's group
  ConnectionLimits limits;
  ResolverOptions resolver;
};

class UnixListener {
 public:
  using ClosedFn = std::function<void(const std::shared_ptr<Connection>&)>;
  // The first declared app the identity is, or "" (policy lookup).
  using AppOfFn = std::function<std::string(const PeerIdentity&)>;
  // A connection refused: its identity could not be resolved (`first`: not
  // seen before for that executable) or a limit was hit. For the audit trail.
  using RefusedFn = std::function<void(const ucred& who, AuditEvent event,
                                       const std::string& reason, bool first)>;

  static Result<std::unique_ptr<UnixListener>> bind(const ListenerOptions& options);
  ~UnixListener();

  // Starts accepting into `server` (already started). `on_closed` runs on the
  // monitor thread when a connection's peer goes away.
  void start(grpc::Server* server, ClosedFn on_closed, AppOfFn app_of = nullptr,
             RefusedFn on_refused = nullptr);
  void stop();

  // The connection behind a gRPC peer string, or null.
  std::shared_ptr<Connection> find(const std::string& peer) const;
  std::size_t count() const;
  // Cuts connection `id` off (both directions), e.g. when its process lost
  // its identity. Unknown ids are ignored.
  void sever(std::uint64_t id);

 private:
  UnixListener(ListenerOptions options, int listen_fd);
  void accept_loop();
  // Runs on a resolver thread once `fd`'s identity is known.
  void admit(int fd, Result<PeerIdentity> identity, bool first_failure);
  void refuse(int fd, const ucred& who, AuditEvent event, const std::string& reason);
  void monitor_loop();
  int fresh_fd(int fd);
  void drop(int grpc_fd);

  struct Entry {
    std::shared_ptr<Connection> conn;
    int watch_fd = -1;  // our dup of the socket, in epoll
    ino_t ino = 0;
  };

  ListenerOptions options_;
  int listen_fd_;
  int epoll_fd_ = -1;
  int stop_fd_ = -1;  // eventfd
  grpc::Server* server_ = nullptr;
  ClosedFn on_closed_;
  AppOfFn app_of_;
  RefusedFn on_refused_;
  std::unique_ptr<IdentityResolver> resolver_;
  std::atomic<std::uint64_t> next_id_{1};
  int next_fd_ = 0, fd_base_ = 0, fd_limit_ = 0;

  mutable std::mutex mu_;
  std::map<int, Entry> by_fd_;  // keyed by the descriptor gRPC owns
  std::map<std::string, int> per_principal_;
  int declared_ = 0, undeclared_ = 0;
  // Connections refused over a limit, per uid (logged and audited at the
  // 1st, 2nd, 4th ... of each uid, so one uid's flood hides no other's).
  std::map<uid_t, std::uint64_t> refused_;
  std::mutex grpc_mu_;  // AddInsecureChannelFromFd, from several resolver threads
  std::thread accept_thread_, monitor_thread_;
  bool stopped_ = false;
};

}  // namespace portier::gateway
