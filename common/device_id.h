// The one rule for device ids, in the config and in API requests alike:
// 1-64 characters of A-Z a-z 0-9 - _ .
#pragma once

#include <cstddef>
#include <string_view>

namespace portier {

constexpr std::size_t kMaxDeviceIdLength = 64;

constexpr bool valid_device_id(std::string_view id) {
  if (id.empty() || id.size() > kMaxDeviceIdLength) return false;
  for (char c : id) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.';
    if (!ok) return false;
  }
  return true;
}

}  // namespace portier
