// Device events (scans, cards, faults, alarms) to the apps subscribed to
// them and to in-process listeners. While a device is claimed its events go
// to the claimant's connection only. Thread-safe (its fan-out locks);
// unreadable() runs with the hub's lock held (it decides policy).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "access_decider.h"
#include "device_registry.h"
#include "device_view.h"
#include "fan_out.h"
#include "gateway_view.h"

namespace portier::gateway {

struct SubscriberReport {
  std::uint64_t id = 0;
  std::string app;
  std::int64_t pid = 0;
  std::string device_id;
  SubscriberStats stats;
};

class DeviceEvents {
 public:
  explicit DeviceEvents(AccessDecider& access) : access_(access) {}

  // 0 once closed.
  std::uint64_t add(Audience audience, std::shared_ptr<EventSubscriber> subscriber) {
    return fan_.add(std::move(audience), std::move(subscriber));
  }
  void remove(std::uint64_t id) { fan_.remove(id); }
  // `holder`: the connection holding the device's lease, 0 when free.
  void deliver(const std::string& device_id, std::uint64_t holder,
               std::shared_ptr<const DeviceEventRecord> event) {
    fan_.deliver_device(device_id, holder, event);
  }
  // The device went away: its streams end (not_found).
  void device_removed(const std::string& device_id);
  // The streams whose read `snap` no longer allows, with the reason: to be
  // ended (end()) once the hub's lock is released.
  std::vector<std::pair<std::uint64_t, Error>> unreadable(const PolicySnapshot& snap,
                                                          DeviceRegistry& registry);
  void end(std::uint64_t id, const Error& why) { fan_.end(id, std::unexpected(why)); }
  std::vector<SubscriberReport> report() const;
  FanOut<DeviceEventRecord>& fan_out() { return fan_; }

 private:
  AccessDecider& access_;
  FanOut<DeviceEventRecord> fan_;
};

}  // namespace portier::gateway
