// Lowercase hex of bytes: the one encoder (digests, ids, test output), and
// its decoder.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace portier {

std::string to_hex(const std::uint8_t* data, std::size_t size);
inline std::string to_hex(std::string_view bytes) {
  return to_hex(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
}

// `s` for a message or a terminal: control characters (and DEL) shown as
// \xNN, the rest as is; at most `max_bytes` of it.
std::string printable(std::string_view s, std::size_t max_bytes = std::string_view::npos);

// The bytes of `hex` (either case); nullopt for an odd length or a non-hex
// character.
std::optional<std::string> from_hex(std::string_view hex);

}  // namespace portier
