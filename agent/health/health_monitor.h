// Runs health checks periodically with random jitter and a timeout each, and
// combines their results into OK / DEGRADED / COMPROMISED (issue 4, REQ-7).
//
// Threads and lifetime: one scheduler thread decides what is due and handles
// results; every run of a check happens on its own short-lived thread. A run
// that overruns its timeout is reported as fail "timed out after N ms", its
// cancel flag is set, and it is abandoned (detached): the monitor keeps going.
// The abandoned thread holds a shared_ptr to the Check and to the monitor's
// shared core, so the check object outlives it even when the monitor is
// destroyed first. While an abandoned run is still alive, the check is not
// started again (at most one thread per check): its later due runs are
// reported as fail "still hung" at once.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/health/health_check.h"

namespace portier::health {

enum class HealthState { ok, degraded, compromised };
const char* to_string(HealthState s);

struct CheckReport {
  std::string id;
  Severity severity = Severity::normal;
  bool enabled = true;
  bool has_run = false;                              // false until the first result
  CheckResult result;                                // the last one
  std::chrono::system_clock::time_point last_run{};  // when the last run started
  std::chrono::milliseconds duration{0};             // how long it took (or the timeout)
  std::chrono::steady_clock::time_point next_run{};  // when it is due again
  std::chrono::steady_clock::time_point last_start_steady{};
  std::uint64_t runs = 0;
};

struct HealthReport {
  HealthState state = HealthState::ok;
  std::vector<std::string> reasons;  // "check_id: reason" for each warn/fail
  std::vector<CheckReport> checks;   // in the order they were added
};

class HealthMonitor {
 public:
  struct Options {
    // Seed of the jitter generator; unset = seeded from std::random_device.
    std::optional<std::uint64_t> seed;
  };
  // Called from the scheduler thread, outside any lock, when the combined
  // state or the set of non-ok checks (id and status) changes; calls are
  // serialised. Must not call stop() or the destructor.
  using Listener = std::function<void(const HealthReport&)>;

  HealthMonitor();
  explicit HealthMonitor(Options options);
  ~HealthMonitor();  // stop()
  HealthMonitor(const HealthMonitor&) = delete;
  HealthMonitor& operator=(const HealthMonitor&) = delete;

  // Before start() only.
  void add(std::shared_ptr<Check> check, CheckSettings settings);
  void set_listener(Listener listener);

  // Every enabled check runs at once, then at interval + jitter.
  void start();
  // Prompt: wakes the scheduler; does not wait for abandoned runs.
  void stop();

  // Runs every enabled check now and returns when each has a result (at
  // most its timeout later). Needs start(). For `portierctl health --run`.
  HealthReport run_all_now();
  HealthReport report() const;
  HealthState state() const;

  // The delay before the next run of a check with these settings: interval
  // plus a uniform draw in [0, jitter] from the monitor's generator.
  std::chrono::milliseconds draw_delay(const CheckSettings& settings);

  struct Core;  // shared with run threads

 private:
  std::shared_ptr<Core> core_;
};

}  // namespace portier::health
