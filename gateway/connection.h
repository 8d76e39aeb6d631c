// One app connection on the local socket: the identity the kernel gave us at
// accept time, and the policy bits computed for it.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "peer_identity.h"
#include "policy/policy.h"

namespace portier::gateway {

struct Connection {
  std::uint64_t id = 0;
  PeerIdentity identity;       // valid when identify_error is empty
  std::string identify_error;  // why the peer has no identity (audited once, at accept)
  // Whom its connections and streams count against: "app:<name>" for a
  // declared app (the first it is, at accept), "uid:<n>" for anyone else.
  std::string principal;
  bool declared = false;

  // Policy bits for this caller, valid for `policy_generation`.
  std::mutex mu;
  std::uint64_t policy_generation = 0;
  policy::BitSet caller_rules;
  std::vector<std::string> apps;

  std::atomic<int> open_streams{0};  // Subscribe/WatchDevices/TailAudit calls open now

  const policy::Caller& caller() const { return identity.caller; }
};

}  // namespace portier::gateway
