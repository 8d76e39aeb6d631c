#pragma once

#include <string>

#include "common/crypto/digest.h"
#include "common/result.h"

namespace portier::gateway {

// Lowercase hex SHA-256 of everything readable from `fd` (from offset 0).
Result<std::string> sha256_of_fd(int fd);

// As above, refused (resource_exhausted, saying which limit) when the file
// holds more than `max_bytes` or hashing it takes longer than `timeout`, so
// one caller's huge file costs a bounded time; `cancel` set gives up
// (shutdown). The limits of crypto::digest_fd.
using HashLimits = crypto::HashLimits;
Result<std::string> sha256_of_fd(int fd, const HashLimits& limits);

}  // namespace portier::gateway
