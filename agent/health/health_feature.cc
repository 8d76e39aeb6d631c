#include "agent/health/health_feature.h"

#include "agent/health/health_monitor_builder.h"

namespace portier::health {

HealthMonitorFeature::HealthMonitorFeature(HealthConfig config) : config_(std::move(config)) {}

Result<void> HealthMonitorFeature::start(const agent::FeatureContext& context) {
  auto monitor = build_health_monitor(config_, context);
  monitor->start();
  std::lock_guard lock(mu_);
  monitor_ = std::move(monitor);
  return {};
}

void HealthMonitorFeature::stop() {
  std::unique_ptr<HealthMonitor> monitor;
  {
    std::lock_guard lock(mu_);
    monitor = std::move(monitor_);
  }
  if (monitor) monitor->stop();
}

bool HealthMonitorFeature::run_checks_now() {
  std::lock_guard lock(mu_);
  if (!monitor_) return false;
  monitor_->run_all_now();
  return true;
}

bool HealthMonitorFeature::check_statuses(std::vector<agent::CheckStatus>& out) {
  HealthReport report;
  {
    std::lock_guard lock(mu_);
    if (!monitor_) return false;
    report = monitor_->report();
  }
  for (auto& c : report.checks) {
    agent::CheckStatus s;
    s.id = c.id;
    s.status = c.has_run ? to_string(c.result.status) : "pending";
    s.severity = to_string(c.severity);
    s.reason = c.result.reason;
    s.last_run = c.last_run;
    s.runs = c.runs;
    s.values = c.result.values;
    out.push_back(std::move(s));
  }
  return true;
}

}  // namespace portier::health
