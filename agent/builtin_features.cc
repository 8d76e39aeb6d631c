// The agent features built into portierd, listed explicitly: self-
// registering static initialisers in static libraries would be dropped by
// the linker. A feature folder compiled out (PORTIER_WITH_<NAME>=OFF) is
// registered as absent, so that its config table is a clear error.
#include "agent/feature_registry.h"

#if PORTIER_WITH_HEALTH
#include "agent/health/health_config_parser.h"
#endif
#if PORTIER_WITH_MANAGEMENT
#include "agent/management/management_config_parser.h"
#endif

namespace portier::agent {

void register_builtin_features(FeatureRegistry& registry) {
#if PORTIER_WITH_HEALTH
  health::register_health_feature(registry);
#else
  registry.add_absent("health");
#endif
#if PORTIER_WITH_MANAGEMENT
  management::register_management_feature(registry);
#else
  registry.add_absent("management");
#endif
}

}  // namespace portier::agent
