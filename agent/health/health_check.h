// The interface of one health check (issue 4, REQ-7): an id, a severity, and a
// run that returns a structured result. The monitor owns scheduling, jitter
// and timeouts; a check only measures and judges.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <string>

namespace portier::health {

// How bad a *fail* of this check is. A failing critical check makes the
// terminal COMPROMISED; a failing normal check (or any warn) makes it DEGRADED.
enum class Severity { normal, critical };

struct CheckResult {
  enum class Status { ok, warn, fail };
  Status status = Status::ok;
  std::string reason;                         // a person can act on it
  std::map<std::string, std::string> values;  // what was measured

  static CheckResult ok(std::string reason = "ok") { return {Status::ok, std::move(reason), {}}; }
  static CheckResult warn(std::string reason) { return {Status::warn, std::move(reason), {}}; }
  static CheckResult fail(std::string reason) { return {Status::fail, std::move(reason), {}}; }
};

inline const char* to_string(CheckResult::Status s) {
  switch (s) {
    case CheckResult::Status::ok:
      return "ok";
    case CheckResult::Status::warn:
      return "warn";
    case CheckResult::Status::fail:
      return "fail";
  }
  return "?";
}
inline const char* to_string(Severity s) { return s == Severity::critical ? "critical" : "normal"; }

// Per-check scheduling. A run starts every `interval` plus a uniformly random
// extra delay in [0, jitter]; a run longer than `timeout` is reported as fail.
struct CheckSettings {
  bool enabled = true;
  std::chrono::milliseconds interval{30'000};
  std::chrono::milliseconds jitter{6'000};
  std::chrono::milliseconds timeout{5'000};
};

class Check {
 public:
  virtual ~Check() = default;
  virtual std::string id() const = 0;
  virtual Severity severity() const { return Severity::normal; }
  // Called on a run thread. The monitor never starts a run of a check while
  // its previous run is still alive, so a check need not be re-entrant, but
  // it must be safe to call from different threads in turn. `cancel` is set
  // when the monitor gives up on the run (timeout); long loops look at it.
  virtual CheckResult run(const std::atomic<bool>& cancel) = 0;
};

}  // namespace portier::health
