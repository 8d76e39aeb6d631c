// The health monitor (standard checks and boot integrity, health_wiring.h)
// as an agent feature under the Supervisor: started with the others,
// restarted with backoff if it fails, and reachable from the API only while
// it runs.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "agent/feature.h"
#include "daemon/health_wiring.h"

namespace portier::daemon {

class HealthMonitorFeature final : public agent::Feature {
 public:
  HealthMonitorFeature(DaemonConfig::Health config, gateway::DeviceHub& hub, AuditSink& audit,
                       std::vector<drivers::SelfTestResult> self_tests);
  std::string_view name() const override { return "health_monitor"; }
  Result<void> start(const agent::FeatureContext& context) override;
  void stop() override;
  // Runs `fn` with the monitor while it runs; false when it does not.
  bool with_monitor(const std::function<void(health::HealthMonitor&)>& fn);

 private:
  DaemonConfig::Health config_;
  gateway::DeviceHub& hub_;
  AuditSink& audit_;
  std::vector<drivers::SelfTestResult> self_tests_;
  std::mutex mu_;
  std::unique_ptr<health::HealthMonitor> monitor_;
};

}  // namespace portier::daemon
