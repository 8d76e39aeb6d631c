// A feature that runs checks of the terminal (the health monitor) offers
// them to the health report of the API through this: the composition root
// finds the features that implement it and never names them.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace portier::agent {

struct CheckStatus {
  std::string id;
  std::string status;    // "ok", "warn", "fail", or "pending" before the first run
  std::string severity;  // "normal", "critical"
  std::string reason;
  std::chrono::system_clock::time_point last_run{};
  std::uint64_t runs = 0;
  std::map<std::string, std::string> values;  // what was measured
};

class CheckSource {
 public:
  virtual ~CheckSource() = default;
  // Runs every check now and returns when each has a result; false when the
  // checks are not running (the feature is stopped or restarting).
  virtual bool run_checks_now() = 0;
  // The checks' last results; false when they are not running.
  virtual bool check_statuses(std::vector<CheckStatus>& out) = 0;
};

}  // namespace portier::agent
