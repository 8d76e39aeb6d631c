// Builds the health monitor from [health] (standard checks plus boot
// integrity through the TPM) and connects its verdict to what the feature
// context offers: the health gate and the audit trail.
#pragma once

#include <memory>

#include "agent/feature.h"
#include "agent/health/health_config.h"
#include "agent/health/health_monitor.h"

namespace portier::health {

// Not started yet; start() it, and stop it before the context's parts go.
std::unique_ptr<HealthMonitor> build_health_monitor(const HealthConfig& config,
                                                    const agent::FeatureContext& context);

}  // namespace portier::health
