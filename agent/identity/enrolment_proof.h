// The proof an enrolling terminal gives of its serial (REQ-33: activation
// only after an online authentication bound to the terminal's serial):
//
//   proof = HMAC-SHA256(secret, "portier/v1 enrol\0" || terminal_id || "\0"
//                               || serial || "\0" || csr_der)
//
// `secret` is provisioned per device (with its serial, at manufacturing or
// staging) into a 0600 file on the terminal and into the fleet's enrolment
// registry. Why this scheme: the MAC binds the serial to the exact request,
// so to the public key inside the CSR; a captured request replayed (TLS
// aside) only asks again for a certificate of the terminal's own key, which
// is useless without its private key, and the fleet answers it with the
// same certificate; a request for another key needs the secret. The fleet
// accepts one key per serial, so a leaked secret after enrolment gains
// nothing, and before enrolment is seen (the real terminal's enrolment is
// then refused and recorded). A challenge from the fleet would add no
// property here and a round trip; a per-device certificate from the
// manufacturer (IEEE 802.1AR IDevID) would be better still where the
// hardware has one, and fits the same RPC (the proof field).
#pragma once

#include <string_view>

#include "common/crypto/bytes.h"
#include "common/result.h"

namespace portier::identity {

inline constexpr std::size_t kMinEnrolmentSecret = 16;

Result<crypto::Bytes> enrolment_proof(crypto::ByteView secret, std::string_view terminal_id,
                                      std::string_view serial, crypto::ByteView csr_der);

}  // namespace portier::identity
