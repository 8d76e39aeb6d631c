// The links of this build (ManagementConfig::link): MQTT through a broker,
// gRPC straight to the fleet's endpoint.
#include "agent/link/grpc_link.h"
#include "agent/link/mqtt_link.h"
#include "agent/management/management_feature.h"

namespace portier::management {

LinkFactory default_link_factory() {
  return [](const ManagementConfig& config,
            const LinkContext& context) -> Result<std::unique_ptr<link::Link>> {
    if (config.link == "mqtt") {
      link::MqttLinkOptions o;
      o.server_uri = config.server;
      o.fleet = config.fleet;
      o.terminal_id = context.terminal_id;
      o.tls = {config.ca_file, config.cert_file,
               config.tls_key_file.empty() ? context.device_key_file : config.tls_key_file};
      o.will_payload = context.offline_notice;
      o.max_in_flight = static_cast<int>(config.window);
      auto l = link::MqttLink::create(std::move(o));
      if (!l) return std::unexpected(l.error());
      return std::unique_ptr<link::Link>(std::move(*l));
    }
    if (config.link == "grpc") {
      link::GrpcLinkOptions o;
      o.target = config.server;
      o.ca_file = config.ca_file;
      o.cert_file = config.cert_file;
      o.key_file = config.tls_key_file.empty() ? context.device_key_file : config.tls_key_file;
      o.offline_notice = context.offline_notice;
      auto l = link::GrpcLink::create(std::move(o));
      if (!l) return std::unexpected(l.error());
      return std::unique_ptr<link::Link>(std::move(*l));
    }
    return fail(Errc::failed_precondition, "management", "link",
                "the " + config.link + " link is not built into this portierd");
  };
}

}  // namespace portier::management
