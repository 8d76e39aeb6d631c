// Test-only agent features for portierd_test (never in the shipped
// portierd), failing on command so that a test can watch the supervisor:
//   [failing_start] control_file = "..."  start() fails while the file exists
//   [failing_check] control_file = "..."  check() throws while the file exists
#pragma once

#include "agent/feature_registry.h"

namespace portier::test {

void register_gated_features(agent::FeatureRegistry& registry);

}  // namespace portier::test
