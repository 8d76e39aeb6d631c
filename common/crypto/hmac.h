// HMAC (RFC 2104) with SHA-256 or SM3 (or another DigestAlgo).
#pragma once

#include <string_view>

#include "common/crypto/bytes.h"
#include "common/crypto/digest.h"
#include "common/result.h"

namespace portier::crypto {

// A MAC of digest_size(algo) bytes. Check a received MAC with
// constant_time_equal (bytes.h).
Result<Bytes> hmac(DigestAlgo algo, ByteView key, ByteView data);
inline Result<Bytes> hmac(DigestAlgo algo, std::string_view key, std::string_view data) {
  return hmac(algo, byte_view(key), byte_view(data));
}

}  // namespace portier::crypto
