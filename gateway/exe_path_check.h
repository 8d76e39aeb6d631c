// Whether the path the kernel shows for a process's executable
// (/proc/<pid>/exe) may stand for it in policy. The link reads the same from
// every mount namespace, so a process that bind-mounted its own binary over
// an app's path in a private namespace (`unshare -Urm`) would show the app's
// path. The path counts only when all of these hold:
//  - the process is in portierd's user namespace and its mount namespace is
//    portierd's own or one owned by portierd's user namespace (made by a
//    privileged manager such as systemd for a sandboxed service; an
//    unprivileged user can only make one inside a user namespace of its own);
//  - its root directory is portierd's (no chroot);
//  - the file at that path, opened in portierd's mount namespace, is the
//    very file (device and inode) the process runs.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <string>

namespace portier::gateway {

// "" when `path` may stand for the executable of `pid` (running file
// `running`); otherwise why it may not, as a phrase ("it runs in another
// user namespace").
std::string exe_path_doubt(pid_t pid, const std::string& path, const struct stat& running);

}  // namespace portier::gateway
