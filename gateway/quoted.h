// Caller-supplied text (device ids, lease ids, ops) echoed in error
// messages: bounded and printable, so a hostile id cannot blow up the
// status trailer or inject control characters into logs.
#pragma once

#include <string>
#include <string_view>

namespace portier::gateway {

inline std::string quoted(std::string_view s, std::size_t max = 64) {
  std::string out = "'";
  std::size_t n = 0;
  for (unsigned char c : s) {
    if (n++ == max) {
      out += "...";
      break;
    }
    if (c < 0x20 || c == 0x7f || c >= 0x80) {
      static const char* hex = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "'";
}

}  // namespace portier::gateway
