// Wires config, policy, audit, drivers, the hub and the gRPC server together
// and runs until SIGTERM/SIGINT. SIGHUP or a change of the policy file
// reloads the policy.
#pragma once

#include "daemon/daemon_config.h"

namespace portier::daemon {

// Returns the process exit code.
int run_daemon(const DaemonConfig& config);

}  // namespace portier::daemon
