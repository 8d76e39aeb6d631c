#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"

namespace portier::gateway {

// Lowercase hex SHA-256 of everything readable from `fd` (from offset 0).
Result<std::string> sha256_of_fd(int fd);

// As above, refused (resource_exhausted, saying which limit) when the file
// holds more than `max_bytes` or hashing it takes longer than `timeout`, so
// one caller's huge file costs a bounded time.
struct HashLimits {
  std::uint64_t max_bytes = UINT64_MAX;
  std::chrono::milliseconds timeout = std::chrono::milliseconds::max();
  const std::atomic<bool>* cancel = nullptr;  // set: give up (shutdown)
};
Result<std::string> sha256_of_fd(int fd, const HashLimits& limits);

}  // namespace portier::gateway
