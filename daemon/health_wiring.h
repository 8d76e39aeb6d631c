// Builds the health monitor from [health] (standard checks plus boot
// integrity through the TPM) and connects its verdict to the gateway: the
// health gate, the audit log, and the health report.
#pragma once

#include <memory>
#include <vector>

#include "agent/health/health_monitor.h"
#include "common/audit_sink.h"
#include "daemon/daemon_config.h"
#include "drivers/driver.h"

namespace portier::gateway {
class DeviceHub;
}

namespace portier::daemon {

using gateway::DeviceHub;

// Null when [health] monitor is off. Started; stop it before the hub goes.
std::unique_ptr<health::HealthMonitor> start_health_monitor(
    const DaemonConfig::Health& config, DeviceHub& hub, AuditSink& audit,
    const std::vector<drivers::SelfTestResult>& self_tests);

}  // namespace portier::daemon
