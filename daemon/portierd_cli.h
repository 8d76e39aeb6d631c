// portierd's command line (--config, --check-config, --demo, --version):
// main() of portierd, and of test builds that register extra features.
#pragma once

#include "agent/feature_registry.h"

namespace portier::daemon {

// Returns the process exit code.
int run_portierd(int argc, char** argv, const agent::FeatureRegistry& features);

}  // namespace portier::daemon
