// TOML text → validated PolicyData. Every error names source:line:col.
#pragma once

#include <string>
#include <string_view>

#include "common/result.h"
#include "policy/policy_data.h"

namespace portier::policy {

Result<PolicyData> parse_policy_text(std::string_view text, const std::string& source);

}  // namespace portier::policy
