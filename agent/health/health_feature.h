// The health monitor (standard checks and boot integrity, built by
// build_health_monitor) as an agent feature under the Supervisor: started
// with the others, restarted with backoff if it fails, and offering its
// checks to the API's health report (CheckSource) only while it runs. Its
// verdict goes to the health gate and the audit trail (FeatureContext).
#pragma once

#include <memory>
#include <mutex>

#include "agent/check_source.h"
#include "agent/feature.h"
#include "agent/health/health_config.h"
#include "agent/health/health_monitor.h"

namespace portier::health {

class HealthMonitorFeature final : public agent::Feature, public agent::CheckSource {
 public:
  explicit HealthMonitorFeature(HealthConfig config);
  std::string_view name() const override { return "health_monitor"; }
  Result<void> start(const agent::FeatureContext& context) override;
  void stop() override;

  bool run_checks_now() override;
  bool check_statuses(std::vector<agent::CheckStatus>& out) override;

 private:
  HealthConfig config_;
  std::mutex mu_;
  std::unique_ptr<HealthMonitor> monitor_;
};

}  // namespace portier::health
