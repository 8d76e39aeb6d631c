// The policy in force, swapped whole on reload. A new file that fails to
// load is rejected and the old policy stays in force; the error is kept for
// the health report.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "policy/policy.h"
#include "portier/result.h"

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
