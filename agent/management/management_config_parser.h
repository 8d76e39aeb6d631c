// Reads the [management] table into a ManagementConfig and registers the
// management link as the feature of that table.
#pragma once

#include "agent/management/management_config.h"
#include "common/result.h"

namespace portier {
class TomlTable;
}
namespace portier::agent {
class FeatureRegistry;
}

namespace portier::management {

Result<ManagementConfig> parse_management_config(TomlTable& table);
void register_management_feature(agent::FeatureRegistry& registry);

}  // namespace portier::management
