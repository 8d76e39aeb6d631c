// For the management link's benches: the fleet's acknowledgement without
// its store. Subscribes to every terminal's up/ topics and answers each
// envelope with its sequence on down/ack, as portier-fleet does once it has
// stored it, so the benches measure the terminal's side and the broker
// (the fleet's own receive rate is in tools/fleet/README.md).
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "common/mqtt/mqtt_client.h"

namespace portier::bench {

class FleetAcker {
 public:
  // Connected and subscribed when it returns (or throws).
  FleetAcker(const std::string& uri, const std::string& fleet, mqtt::TlsFiles tls);
  ~FleetAcker();
  std::uint64_t acked() const { return acked_; }

 private:
  std::string fleet_;
  std::unique_ptr<mqtt::MqttClient> client_;
  std::atomic<std::uint64_t> acked_{0};
};

}  // namespace portier::bench
