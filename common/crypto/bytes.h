// Byte strings of the crypto layer (common/crypto/): what every call takes
// and returns. No header of this folder names a type of the library behind
// it (OpenSSL 3, in platform/openssl/).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace portier::crypto {

using Bytes = std::vector<std::uint8_t>;
using ByteView = std::span<const std::uint8_t>;

// The bytes of a string (text, or binary data held in a std::string).
inline ByteView byte_view(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

// Equal length and content, in a time that depends only on the lengths:
// compare MACs and tags with this, never with == or memcmp.
bool constant_time_equal(ByteView a, ByteView b);

// Overwrites a secret (key, PEM of a private key) in a way the compiler
// cannot drop. The string keeps its size.
void cleanse(std::span<std::uint8_t> secret);
void cleanse(std::string& secret);

}  // namespace portier::crypto
