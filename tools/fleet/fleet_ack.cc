// The fleet's acknowledgement of what it stored (see fleet_ack.h).
#include "tools/fleet/fleet_ack.h"

namespace portier::fleet {

Result<std::optional<std::string>> sign_stored(const link::AckSigner& signer, Receiver& receiver,
                                               const std::string& terminal_id,
                                               std::vector<std::uint64_t> sequences,
                                               std::chrono::system_clock::time_point now) {
  const auto ranges = link::to_ranges(std::move(sequences));
  const auto named = link::with_digests(
      ranges, [&](std::uint64_t last) { return receiver.stored_digest(terminal_id, last); });
  if (named.empty()) return std::optional<std::string>{};
  auto ack = signer.sign(terminal_id, named, now);
  if (!ack) return std::unexpected(ack.error());
  return std::optional<std::string>(std::move(*ack));
}

}  // namespace portier::fleet
