// Device changes (added, removed, state, claimed_by, the terminal's health)
// to the apps watching them, each change decided per watcher (`watch`), and
// to in-process listeners. Runs with the hub's lock held, except the calls
// that only touch the fan-out (remove, entries, close).
#pragma once

#include <memory>

#include "access_decider.h"
#include "device_registry.h"
#include "device_view.h"
#include "fan_out.h"
#include "gateway_view.h"
#include "lease_table.h"
#include "policy_store.h"

namespace portier::gateway {

class DeviceChanges {
 public:
  DeviceChanges(PolicyStore& policy, AccessDecider& access, const LeaseTable& leases)
      : policy_(policy), access_(access), leases_(leases) {}

  // The device as apps see it: with the app holding its lease.
  DeviceView view(const DeviceRecord& dev) const;
  void notify(DeviceRecord& dev, ChangeKind kind);
  // `subscriber` gets the changes `conn` may watch, first the devices there
  // are now when `include_existing`; unavailable once closed.
  Result<std::uint64_t> watch(const std::shared_ptr<Connection>& conn,
                              std::shared_ptr<ChangeSubscriber> subscriber, bool include_existing,
                              DeviceRegistry& registry);
  std::uint64_t listen(std::shared_ptr<ChangeSubscriber> subscriber) {
    return fan_.add({nullptr, 0, "", ""}, std::move(subscriber));
  }
  void remove(std::uint64_t id) { fan_.remove(id); }
  FanOut<DeviceChangeRecord>& fan_out() { return fan_; }

 private:
  PolicyStore& policy_;
  AccessDecider& access_;
  const LeaseTable& leases_;
  FanOut<DeviceChangeRecord> fan_;
};

}  // namespace portier::gateway
