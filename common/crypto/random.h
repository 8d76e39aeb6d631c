// Random bytes from the platform's CSPRNG (OpenSSL's RAND_bytes, seeded by
// the kernel): for keys, nonces and IVs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "common/crypto/bytes.h"
#include "common/result.h"

namespace portier::crypto {

Result<void> random_bytes(std::span<std::uint8_t> out);
Result<Bytes> random_bytes(std::size_t n);

}  // namespace portier::crypto
