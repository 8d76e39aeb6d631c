// The acknowledgement a fleet transport (MQTT intake, gRPC endpoint) sends
// a terminal for what Receiver::receive_message() stored (issue 10): the
// sequences as ranges, each with the chain digest the store holds for its
// last envelope, signed with the fleet's command key (link::AckSigner). The
// terminal deletes a range only when its own record there has that digest.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "agent/link/ack_signing.h"
#include "common/result.h"
#include "tools/fleet/receiver.h"

namespace portier::fleet {

// A serialized SignedAcknowledgement of `sequences` of `terminal_id`, or
// nullopt when there is nothing to acknowledge. A range whose last envelope
// the store does not hold (or cannot read now) is left out: the terminal
// sends it again and it is answered then.
Result<std::optional<std::string>> sign_stored(const link::AckSigner& signer, Receiver& receiver,
                                               const std::string& terminal_id,
                                               std::vector<std::uint64_t> sequences,
                                               std::chrono::system_clock::time_point now);

}  // namespace portier::fleet
