// The links of this build (ManagementConfig::link): MQTT through a broker,
// gRPC straight to the fleet.
#include "agent/management/management_feature.h"

namespace portier::management {

LinkFactory default_link_factory() {
  return [](const ManagementConfig& config,
            const LinkContext&) -> Result<std::unique_ptr<link::Link>> {
    return fail(Errc::failed_precondition, "management", "link",
                "the " + config.link + " link is not built into this portierd yet");
  };
}

}  // namespace portier::management
