#pragma once

#include <string>
#include <string_view>

#include "portier/result.h"

namespace portier::gateway {

// Lowercase hex SHA-256 of everything readable from `fd` (from offset 0).
Result<std::string> sha256_of_fd(int fd);

}  // namespace portier::gateway
