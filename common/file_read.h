// Reading a small file whole: /proc and /sys entries, keys, baselines. A
// file over `max` bytes is refused (EFBIG), never read in part; /proc files
// that report size 0 are read to their end.
#pragma once

#include <cstddef>
#include <string>

#include "common/result.h"

namespace portier {

struct ReadOptions {
  std::size_t max = 1u << 20;
  bool follow_symlinks = true;  // false: O_NOFOLLOW (sysfs attributes)
};

// 0, or the errno of what failed (EFBIG: over options.max).
int read_small_file(const std::string& path, std::string& out, ReadOptions options = {});
// The same from an open file (read from where it stands; not closed).
int read_small_fd(int fd, std::string& out, std::size_t max);
// The same as a Result: io, "<path>", "cannot read", "<strerror>".
Result<std::string> read_small_file(const std::string& path, ReadOptions options = {});

// Opens a file that must be portierd's alone (a key, a PIN, a secret) for
// reading, and checks on what was opened: a regular file (a symlink is
// refused), owned by portierd's user, no group or other permission bits.
// The descriptor, to be closed by the caller; permission_denied naming the
// rule and `what` otherwise (`hint` is added to a mode refusal), not_found
// when it does not exist.
Result<int> open_private(const std::string& path, const std::string& what,
                         const std::string& hint = "chmod 0600");

}  // namespace portier
