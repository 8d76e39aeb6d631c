#include "device_changes.h"

namespace portier::gateway {

DeviceView DeviceChanges::view(const DeviceRecord& dev) const {
  DeviceView v = dev.view;
  if (auto* l = leases_.holder(dev.id())) v.claimed_by = l->app;
  return v;
}

void DeviceChanges::notify(DeviceRecord& dev, ChangeKind kind) {
  auto ch = std::make_shared<DeviceChangeRecord>();
  ch->kind = kind;
  ch->device = view(dev);
  ch->time = std::chrono::system_clock::now();
  auto snap = policy_.current();
  // Decided per watcher (on the removed device's copy for a removal).
  fan_.deliver(ch, [&](const Audience& a) {
    return !a.conn || access_.decide(*a.conn, dev, policy::Op::watch, snap).allow;
  });
}

Result<std::uint64_t> DeviceChanges::watch(const std::shared_ptr<Connection>& conn,
                                           std::shared_ptr<ChangeSubscriber> subscriber,
                                           bool include_existing, DeviceRegistry& registry) {
  if (fan_.closed()) return fail_msg(Errc::unavailable, "portierd is stopping");
  if (!conn->identify_error.empty()) {
    return fail_msg(Errc::permission_denied,
                    "caller could not be identified: " + conn->identify_error);
  }
  if (include_existing) {
    auto snap = policy_.current();
    for (auto& [id, dev] : registry.all()) {
      if (!access_.decide(*conn, dev, policy::Op::watch, snap).allow) continue;
      auto ch = std::make_shared<DeviceChangeRecord>();
      ch->kind = ChangeKind::existing;
      ch->device = view(dev);
      ch->time = std::chrono::system_clock::now();
      subscriber->push(std::move(ch));
    }
  }
  // Under the hub's lock: no change slips between the devices and the stream.
  auto id = fan_.add({conn, conn->id, "", ""}, std::move(subscriber));
  if (!id) return fail_msg(Errc::unavailable, "portierd is stopping");
  return id;
}

}  // namespace portier::gateway
