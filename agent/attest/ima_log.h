// Parser of the IMA ASCII measurement list
// (/sys/kernel/security/ima/ascii_runtime_measurements). Pure: no crypto,
// no std::expected (fuzzed with clang 14).
//
// One entry per line, fields separated by single spaces:
//   PCR template-hash template-name filedata-hash filename
//   10 91f3…(sha1 hex) ima-ng sha256:2c7c…  /usr/bin/bash
//   10 6e0c…(sha1 hex) ima    5b5f…(sha1 hex) /etc/passwd
// The template hash printed by the kernel is SHA1 (or all zeros for a
// violation entry). ima-ng/ima-sig filedata-hash is "<alg>:<hex>", ima is 40
// hex digits (sha1). The filename is the rest of the line (it may contain
// spaces; for ima-sig a trailing signature field is kept in `rest`).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace portier::attest {

inline constexpr std::size_t kMaxImaEntries = 1000000;
inline constexpr std::size_t kMaxImaLineBytes = 8192;

struct ImaEntry {
  std::size_t line = 0;  // 1-based
  std::uint32_t pcr = 0;
  std::vector<std::uint8_t> template_hash;  // sha1 (20 bytes)
  bool violation = false;                   // template hash all zeros
  std::string template_name;                // "ima-ng", "ima", "ima-sig", …
  std::string filedata_alg;                 // "sha256", "sha1", …
  std::vector<std::uint8_t> filedata_hash;
  std::string filename;  // for ima-sig without a signature: the rest of the line
};

struct ImaParseResult {
  bool ok = false;
  std::string reason;  // "line N: …"
  std::size_t error_line = 0;
  std::vector<ImaEntry> entries;
};

ImaParseResult parse_ima_log(std::string_view text);

// Lower-case hex decoding helper shared by the parsers' users; false on bad input.
bool ima_hex_decode(std::string_view hex, std::vector<std::uint8_t>& out);

}  // namespace portier::attest
