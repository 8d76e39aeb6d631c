// Byte strings, hex, hashing (common/crypto/) and the PCR value map shared by the
// replay, the TPM client and the boot-integrity check.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace portier::attest {

using Bytes = std::vector<std::uint8_t>;

// bank (TPM_ALG_ID, e.g. kAlgSha256) → PCR index → value.
using PcrValues = std::map<std::uint16_t, std::map<std::uint32_t, Bytes>>;

std::string to_hex(std::span<const std::uint8_t> b);
// Accepts upper or lower case; false on odd length or a non-hex digit.
bool from_hex(std::string_view hex, Bytes& out);

// Hash with a TPM_ALG_ID (sha1, sha256, sha384, sha512); empty if unsupported.
Bytes hash_bytes(std::uint16_t alg, std::span<const std::uint8_t> data);
// PCR extend: H(old || digest).
Bytes pcr_extend(std::uint16_t alg, std::span<const std::uint8_t> old,
                 std::span<const std::uint8_t> digest);

}  // namespace portier::attest
