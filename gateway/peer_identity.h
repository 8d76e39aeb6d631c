// Who is at the other end of a Unix socket connection, as the kernel tells
// it: SO_PEERCRED (uid, gid, pid), the process pinned with a pidfd
// (SO_PEERPIDFD; on older kernels pidfd_open() plus proof that the pid holds
// this very connection, peer_socket_proof.h), the executable the process is
// running (opened through /proc/<pid>/exe, so a file replaced on disk after
// exec does not fool us), its SHA-256, whether its path may stand for it
// (exe_path_check.h), and its systemd system unit (libsystemd).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

#include "common/result.h"
#include "policy/policy.h"

namespace portier::gateway {

struct PeerIdentity {
  policy::Caller caller;         // caller.exe is "" when the path does not count
  std::string exe_seen;          // the path /proc/<pid>/exe showed
  std::string exe_doubt;         // why exe_seen does not count, "" when it does
  int pidfd = -1;                // owned; -1 when the kernel has no pidfds
  std::uint64_t start_time = 0;  // /proc/<pid>/stat field 22; only without a pidfd
  dev_t exe_dev = 0;             // the executable's inode at resolve time, to
  ino_t exe_ino = 0;             // notice an exec after connect
  std::string proc_exe;          // "/proc/<pid>/exe"

  PeerIdentity() = default;
  PeerIdentity(const PeerIdentity&) = delete;
  PeerIdentity& operator=(const PeerIdentity&) = delete;
  PeerIdentity(PeerIdentity&& o) noexcept;
  PeerIdentity& operator=(PeerIdentity&& o) noexcept;
  ~PeerIdentity();
};

struct ResolveOptions {
  // Off: behave as on a kernel without SO_PEERPIDFD (tests of that path).
  bool use_so_peerpidfd = true;
  // Executables larger than this, or not hashed within hash_timeout, are
  // refused (and the refusal is remembered for that file).
  std::uint64_t max_exe_bytes = 1ull << 30;
  std::chrono::milliseconds hash_timeout{3000};
  const std::atomic<bool>* cancel = nullptr;  // set: stop hashing (shutdown)
};

// Resolves the peer of connected socket `fd`. Fails when the process has
// already exited, cannot be inspected, or (without SO_PEERPIDFD) cannot be
// proven to hold this connection: such a peer gets no identity.
Result<PeerIdentity> resolve_peer(int fd, const ResolveOptions& options = {},
                                  bool* first_failure = nullptr);

// Checks that the process behind `id` is still the one resolved (alive, same
// executable inode). Called on every request, so that a process that exec()s
// another program after connecting loses the identity. With a pidfd: one
// stat() and one poll().
Result<void> verify_peer(const PeerIdentity& id);

// Lowercase hex SHA-256 of the file open at `fd`, cached by (dev, ino, size,
// mtime, ctime) so a busy client costs one fstat per connection; the cache is
// bounded per `uid` (whose process runs it) and in all. A file over
// max_exe_bytes is remembered as refused (*first_failure: this refusal is
// new); a hash that ran out of time is not remembered.
Result<std::string> executable_digest(int fd, const ResolveOptions& options = {},
                                      bool* first_failure = nullptr, uid_t uid = 0);

}  // namespace portier::gateway
