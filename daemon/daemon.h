// Wires config, policy, audit, drivers, the hub and the gRPC server together
// and runs until SIGTERM/SIGINT. SIGHUP or a change of the policy file
// reloads the policy.
#pragma once

#include "daemon/daemon_config.h"

namespace portier::daemon {

// Returns the process exit code.
// Returns the process exit code. Features are built through `features`
// (the same registry that read the config).
int run_daemon(const DaemonConfig& config,
               const agent::FeatureRegistry& features = builtin_features());

}  // namespace portier::daemon
