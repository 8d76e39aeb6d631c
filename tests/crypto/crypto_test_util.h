// Hex in (vectors as published) and out (common/hex.h) for the crypto tests.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/crypto/bytes.h"
#include "common/hex.h"

namespace portier::crypto::test {

// Upper or lower case; spaces are skipped (vectors are quoted as printed).
inline Bytes h(std::string_view hex) {
  auto val = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  Bytes out;
  int hi = -1;
  for (char c : hex) {
    if (c == ' ') continue;
    const int v = val(c);
    if (v < 0) return {};
    if (hi < 0) {
      hi = v;
    } else {
      out.push_back(static_cast<std::uint8_t>(hi << 4 | v));
      hi = -1;
    }
  }
  return out;
}

inline std::string hex(ByteView b) { return portier::to_hex(b.data(), b.size()); }

}  // namespace portier::crypto::test
