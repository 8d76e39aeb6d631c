// Reads a policy file after checking that only its owner can change it.
#pragma once

#include <string>

#include "common/result.h"

namespace portier::policy {

Result<std::string> read_policy_file(const std::string& path);

}  // namespace portier::policy
