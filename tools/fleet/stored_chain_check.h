// verify-chain: re-verifies a terminal's stored envelopes offline, from the
// first, as a fresh verifier would receive them (signatures, digests, the
// chain, the batch signatures and drop notices that covered them), and
// checks the audit records stored against the envelopes that carried them.
// A row changed in the database is named by its sequence.
#pragma once

#include <cstdint>
#include <string>

#include "tools/fleet/fleet_store.h"

namespace portier::fleet {

struct ChainReport {
  bool ok = true;
  std::uint64_t verified = 0;   // envelopes verified
  std::uint64_t first_bad = 0;  // the first sequence that fails (0: none)
  std::string problem;          // what is wrong with it
};

// An error only when the check could not be made (unknown terminal, store).
Result<ChainReport> check_stored_chain(FleetStore& store, const std::string& terminal_id);

}  // namespace portier::fleet
