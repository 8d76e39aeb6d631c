// Lowercase hex of bytes: the one encoder (digests, ids, test output).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace portier {

std::string to_hex(const std::uint8_t* data, std::size_t size);
inline std::string to_hex(std::string_view bytes) {
  return to_hex(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
}

}  // namespace portier
