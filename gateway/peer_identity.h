// Who is at the other end of a Unix socket connection, as the kernel tells
// it: SO_PEERCRED (uid, gid, pid), the pid pinned with a pidfd (SO_PEERPIDFD
// where the kernel has it), the executable the process is running (opened
// through /proc/<pid>/exe, so a file replaced on disk after exec does not
// fool us), its SHA-256, and its systemd unit.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "policy/policy.h"
#include "portier/result.h"

namespace portier::gateway {

struct PeerIdentity {
  policy::Caller caller;
  int pidfd = -1;                // owned; -1 when the kernel has no pidfds
  std::uint64_t start_time = 0;  // /proc/<pid>/stat field 22, against pid reuse
  dev_t exe_dev = 0;             // the executable's inode at resolve time, to
  ino_t exe_ino = 0;             // notice an exec after connect

  PeerIdentity() = default;
  PeerIdentity(const PeerIdentity&) = delete;
  PeerIdentity& operator=(const PeerIdentity&) = delete;
  PeerIdentity(PeerIdentity&& o) noexcept;
  PeerIdentity& operator=(PeerIdentity&& o) noexcept;
  ~PeerIdentity();
};

// Resolves the peer of connected socket `fd`. Fails when the process has
// already exited or cannot be inspected: such a peer gets no identity.
Result<PeerIdentity> resolve_peer(int fd);

// Checks that the process behind `id` is still the one resolved (alive, same
// start time, same executable inode). Called on every request, so that a
// process that exec()s another program after connecting loses the identity.
Result<void> verify_peer(const PeerIdentity& id);

// Lowercase hex SHA-256 of the file open at `fd`, cached by (dev, ino, size,
// mtime, ctime) so a busy client costs one fstat per connection.
Result<std::string> executable_digest(int fd);

}  // namespace portier::gateway
