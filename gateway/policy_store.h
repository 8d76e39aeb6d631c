// The policy in force, swapped whole on reload. A new file that fails to
// load is rejected and the old policy stays in force; the error is kept for
// the health report.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "common/result.h"
#include "policy/policy.h"

namespace portier::gateway {

struct PolicySnapshot {
  std::shared_ptr<const policy::Policy> policy;
  std::uint64_t generation = 0;
};

struct PolicyStatusInfo {
  std::string path;
  std::uint64_t generation = 0;
  std::chrono::system_clock::time_point loaded_at{};
  std::size_t rules = 0;
  std::size_t apps = 0;
  std::string last_error;
  std::chrono::system_clock::time_point last_error_at{};
};

// REQ-35: the policy decides who may use which device, so only root and
// portierd's own user may be able to change it. Refuses the file when it is
// owned by anyone else, or when a directory on its path (as given and as
// resolved through symlinks) lets anyone else replace it: owned by another
// uid, writable by others, or writable by a group other than root's. The
// daemon's own group is not trusted: apps join group portier to reach the
// socket. The directory holding the file may not be writable by others even
// with the sticky bit (/tmp: anyone may plant the name, or a link to another
// root-owned file, while it is absent); directories above it may, like /tmp
// above a private directory. The file's own mode (no group or other write) is
// checked where it is read, by policy::Policy::load_file. A file that does not
// exist passes here and is reported by load_file.
Result<void> check_policy_file_owner(const std::string& path);

// check_policy_file_owner, then policy::Policy::load_file: what the daemon
// loads at start and on reload, and what --check-config checks.
Result<std::shared_ptr<const policy::Policy>> load_policy_file(const std::string& path);

class PolicyStore {
 public:
  explicit PolicyStore(std::string path);
  // Loads the file; on failure keeps the current policy and returns the error.
  Result<void> reload();
  PolicySnapshot current() const;
  PolicyStatusInfo status() const;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  mutable std::mutex mu_;
  PolicySnapshot snap_;
  PolicyStatusInfo status_;
};

}  // namespace portier::gateway
