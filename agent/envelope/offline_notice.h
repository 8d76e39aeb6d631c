// The terminal's "I am offline" (telemetry.proto's Offline): the MQTT last
// will, and the goodbye on the gRPC link. It stands outside the envelope
// chain (a will may never be sent, so it cannot take a sequence number) and
// is signed by the device key over its own label, the terminal id and the
// session epoch, so a broker can neither forge one nor replay an older
// session's as the current one's.
#pragma once

#include <cstdint>
#include <string>

#include "common/crypto/keys.h"
#include "common/crypto/signer.h"
#include "common/result.h"
#include "portier/v1/telemetry.pb.h"

namespace portier::envelope {

Result<v1::Offline> make_offline(const std::string& terminal_id, std::uint64_t session_epoch,
                                 const crypto::Signer& signer, const std::string& key_id);
// Ok: `notice` is `key`'s, for `terminal_id`. permission_denied otherwise.
Result<void> verify_offline(const v1::Offline& notice, const std::string& terminal_id,
                            const crypto::PublicKey& key);

}  // namespace portier::envelope
