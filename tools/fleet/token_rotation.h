// Which CSR `portier-fleet send T install-certificate` may certify for a
// terminal whose key is in a PKCS#11 token (issue 10, item 1; REQ-33,
// REQ-36): only the one the terminal itself sent in the result of a
// rotate-key command this fleet sent it, stored (so verified through the
// terminal's signed chain: a candidate's or a forged envelope's result is
// never stored), and the newest such result; its first line must say the
// new key is a token's (agent/management/token_rotation_output.h), since
// only such a key gets a certificate with no cutover. A key already in
// use, or one a newer rotate-key result replaced, is refused; so is a file
// key, which rotates through Renew.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/crypto/x509.h"
#include "common/result.h"
#include "tools/fleet/fleet_store.h"

namespace portier::fleet {

struct TokenRotation {
  std::string command_id;      // the rotate-key command
  std::uint64_t sequence = 0;  // of the envelope that carried its (first) result
  crypto::CertificateRequest csr;
  std::string csr_der;
  std::string key_id;  // of the CSR's key (envelope::key_id)
};

// What the operator named: the rotate-key command (--from-result) and/or
// the CSR (--csr, as DER), each checked against the newest result.
struct TokenRotationAsked {
  std::optional<std::string> command_id;
  std::optional<crypto::CertificateRequest> csr;
};

// The newest token rotation of `terminal`, when it matches what was asked.
// not_found: no stored result of a rotate-key command this fleet sent;
// failed_precondition: the newest is of a file key, or its key was already
// taken; invalid_argument: what was asked is not the newest (an older,
// superseded result, or a CSR or command the terminal never sent); each
// message says which.
Result<TokenRotation> newest_token_rotation(FleetStore& store, const std::string& terminal,
                                            const TokenRotationAsked& asked);

}  // namespace portier::fleet
