#include "daemon/health_feature.h"

namespace portier::daemon {

HealthMonitorFeature::HealthMonitorFeature(DaemonConfig::Health config, gateway::DeviceHub& hub,
                                           AuditSink& audit,
                                           std::vector<drivers::SelfTestResult> self_tests)
    : config_(std::move(config)), hub_(hub), audit_(audit), self_tests_(std::move(self_tests)) {}

Result<void> HealthMonitorFeature::start(const agent::FeatureContext&) {
  auto monitor = start_health_monitor(config_, hub_, audit_, self_tests_);
  if (!monitor) {
    return fail(Errc::failed_precondition, "health_monitor", "start",
                "[health] monitor is off; the feature should not have been added");
  }
  std::lock_guard lock(mu_);
  monitor_ = std::move(monitor);
  return {};
}

void HealthMonitorFeature::stop() {
  std::unique_ptr<health::HealthMonitor> monitor;
  {
    std::lock_guard lock(mu_);
    monitor = std::move(monitor_);
  }
  if (monitor) monitor->stop();
}

bool HealthMonitorFeature::with_monitor(const std::function<void(health::HealthMonitor&)>& fn) {
  std::lock_guard lock(mu_);
  if (!monitor_) return false;
  fn(*monitor_);
  return true;
}

}  // namespace portier::daemon
