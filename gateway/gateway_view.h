// What the agent's features see of the gateway, in process and without a
// socket: the devices with their identities (attributes) and states, the
// terminal's health, and subscriptions to device events and changes.
// Subscribers are pushed to from driver threads, some with the gateway's
// lock held: push() and end() must never block and never call back into the
// gateway (QueueSubscriber is the usual kind). While an app holds a device's lease,
// that device's events go to that app only, never to a feature.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "device_view.h"
#include "health_state.h"
#include "subscriber.h"

namespace portier::gateway {

using EventSubscriber = Subscriber<DeviceEventRecord>;
using ChangeSubscriber = Subscriber<DeviceChangeRecord>;

class GatewayView {
 public:
  virtual ~GatewayView() = default;
  // Every device, the terminal among them, by id.
  virtual std::vector<DeviceView> devices() = 0;
  virtual std::optional<DeviceView> device(const std::string& id) = 0;
  virtual HealthState health() = 0;
  // Events of `device_id` ("" = every device) from now on; 0 when the
  // gateway is stopping. Ended (with an error) when the device goes away or
  // the gateway stops.
  virtual std::uint64_t listen_events(std::shared_ptr<EventSubscriber> subscriber,
                                      const std::string& device_id = "") = 0;
  // Device changes (added, removed, state), the terminal's health included.
  virtual std::uint64_t listen_changes(std::shared_ptr<ChangeSubscriber> subscriber) = 0;
  virtual void unlisten_events(std::uint64_t id) = 0;
  virtual void unlisten_changes(std::uint64_t id) = 0;
};

}  // namespace portier::gateway
