// An agent feature (health monitor, boot integrity; later the management
// link, outbox, TA deployment): something that starts, runs on its own
// threads, may fail, and stops. The Supervisor (supervisor.h) starts the
// configured ones, restarts a failed one with backoff, and reports failures
// in health and in the audit trail without ever taking the daemon down.
#pragma once

#include <string>
#include <string_view>

#include "common/audit_sink.h"
#include "common/result.h"
#include "gateway/gateway_view.h"

namespace portier::agent {

// What a feature gets when it starts.
struct FeatureContext {
  AuditSink* audit = nullptr;
  std::string state_dir;  // a feature keeps its files under <state_dir>/<name>/
  gateway::GatewayView* gateway = nullptr;  // devices, health, events in process
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
