// Proof that a process holds the other end of one of our Unix socket
// connections, for kernels without SO_PEERPIDFD (before 6.5, Debian 12's 6.1
// among them). There the pid from SO_PEERCRED is pinned with pidfd_open()
// only after accept(), and by then the connector may have exited and its
// pid been reused. The kernel names the peer socket of a connection
// (sock_diag, UNIX_DIAG_PEER); a process that has it among /proc/<pid>/fd is
// one that holds this very connection, whatever happened to the pid.
#pragma once

#include <sys/types.h>

#include "common/result.h"

namespace portier::gateway {

// The inode of the socket at the other end of connected Unix socket `fd`.
Result<ino_t> unix_peer_inode(int fd);

// OK when process `pid` has socket inode `ino` open; permission_denied when
// it does not; an error when its descriptors cannot be read.
Result<void> process_holds_socket(pid_t pid, ino_t ino);

}  // namespace portier::gateway
