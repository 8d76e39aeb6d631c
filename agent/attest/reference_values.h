// Reference PCR values provisioned with the terminal.
//
// Format: UTF-8 text, one value per line, "<bank>:<pcr>=<hex>", e.g.
//   # golden values, image 2024.06
//   sha256:0=3d458cfe55cc03ea1f443f1562beec8df51c75e14a9fcf9a7234a13f198e7969
//   sha1:7=518bd167271fbb64589c61e43d8c0165861431d8
// '#' starts a comment line; blank lines are ignored; bank is sha1, sha256,
// sha384 or sha512; pcr 0..23; hex of exactly the bank's digest size; a
// bank:pcr given twice is an error. Only listed PCRs are checked.
#pragma once

#include <string>
#include <string_view>

#include "agent/attest/digest.h"
#include "common/result.h"

namespace portier::attest {

Result<PcrValues> parse_reference_values(std::string_view text);
Result<PcrValues> load_reference_values(const std::string& path);
// The inverse, for provisioning tools: writes every value of `v`.
std::string format_reference_values(const PcrValues& v);

}  // namespace portier::attest
