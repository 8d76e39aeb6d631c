// An agent feature (health monitor, boot integrity; later the management
// link, outbox, TA deployment): something that starts, runs on its own
// threads, may fail, and stops. The Supervisor (supervisor.h) starts the
// configured ones, restarts a failed one with backoff, and reports failures
// in health and in the audit trail without ever taking the daemon down.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/audit_sink.h"
#include "common/result.h"
#include "gateway/gateway_view.h"
#include "policy/policy.h"

namespace portier::agent {

// Where a feature that judges the terminal's health puts its verdict: the
// gateway's health gate (which refuses sensitive operations while the
// terminal is compromised). Thread-safe.
class TerminalHealth {
 public:
  virtual ~TerminalHealth() = default;
  virtual void set_terminal_health(policy::Health state, std::vector<std::string> reasons) = 0;
  // A part of a feature reports its own state (e.g. "management outbox"):
  // ok clears it; anything else adds `reason` to the terminal's health.
  virtual void set_component_health(const std::string& component, policy::Health state,
                                    std::string reason) = 0;
};

// What a driver found about one of its devices at start (its self-test).
struct PeripheralStatus {
  std::string device_id;
  bool passed = false;
  std::string detail;  // for a person
};

// What the daemon lets a feature do on the fleet's behalf (the management
// link's signed commands): each goes through the same path as a local
// action would. Thread-safe.
class DaemonControl {
 public:
  virtual ~DaemonControl() = default;
  // Every health check now.
  virtual void run_health_checks() = 0;
  // The policy file replaced by `toml` and reloaded as a local edit would
  // be; a policy that does not load is refused and the old one stays (file
  // and all).
  virtual Result<void> replace_policy(const std::string& toml) = 0;
  // A device action as the daemon itself (no app, no lease): e.g. a USB
  // device's "authorize" / "deauthorize". The result's values as text.
  virtual Result<std::string> device_action(const std::string& device_id,
                                            const std::string& action) = 0;
  // The audit records seq first..last that the trail still holds (its
  // rotated files included), as written, oldest first.
  virtual Result<std::vector<std::string>> audit_range(std::uint64_t first, std::uint64_t last) = 0;
  // The SHA-256 (lowercase hex) of the policy file's bytes the policy in
  // force was loaded from; "" when the daemon cannot tell (the file was
  // changed and failed to load: the policy in force is the one before).
  virtual std::string policy_sha256() = 0;
};

// What a feature gets when it starts; its own config table it got from its
// parser when the registry built it (feature_registry.h).
struct FeatureContext {
  AuditSink* audit = nullptr;
  std::string state_dir;                      // a feature keeps its files under <state_dir>/<name>/
  TerminalHealth* health = nullptr;           // the health gate
  std::vector<PeripheralStatus> peripherals;  // the drivers' self-tests at start
  gateway::GatewayView* gateway = nullptr;    // devices, health, events in process
  DaemonControl* control = nullptr;           // null when the daemon offers none
};

class Feature {
 public:
  virtual ~Feature() = default;
  virtual std::string_view name() const = 0;
  // Starts the feature's work. An error (or an exception) is a failure: the
  // supervisor reports it and tries again after a backoff.
  virtual Result<void> start(const FeatureContext& context) = 0;
  // Asked every few seconds while running: an error (or an exception) is a
  // failure found later; the supervisor stops the feature and restarts it.
  virtual Result<void> check() { return {}; }
  // Stops its work; called after start() succeeded, before a restart and at
  // shutdown. Must not fail.
  virtual void stop() = 0;
};

}  // namespace portier::agent
