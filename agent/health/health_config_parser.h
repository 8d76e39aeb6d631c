// Reads the [health] table into a HealthConfig, and registers the health
// monitor as the feature of that table.
#pragma once

#include "agent/health/health_config.h"
#include "common/result.h"

namespace portier {
class TomlTable;
}
namespace portier::agent {
class FeatureRegistry;
}

namespace portier::health {

Result<HealthConfig> parse_health_config(TomlTable& table);
void register_health_feature(agent::FeatureRegistry& registry);

}  // namespace portier::health
