// The terminal's health as a verdict and its reasons (TerminalHealth works
// it out; GatewayView shows it to the agent's features).
#pragma once

#include <string>
#include <vector>

#include "policy/policy.h"

namespace portier::gateway {

struct HealthState {
  policy::Health state = policy::Health::ok;
  std::vector<std::string> reasons;  // why it is not OK, in a stable order
  // "health DEGRADED: <reason>; <reason>", the terminal device's state reason.
  std::string summary() const;
};

}  // namespace portier::gateway
