#include "device_events.h"

namespace portier::gateway {

void DeviceEvents::device_removed(const std::string& device_id) {
  fan_.end_if([&](const Audience& a) { return a.device_id == device_id; },
              fail_msg(Errc::not_found, "device removed"));
}

std::vector<std::pair<std::uint64_t, Error>> DeviceEvents::unreadable(const PolicySnapshot& snap,
                                                                      DeviceRegistry& registry) {
  std::vector<std::pair<std::uint64_t, Error>> ending;
  for (auto& s : fan_.entries()) {
    auto* dev = registry.find(s.audience.device_id);
    if (!s.audience.conn || !dev) continue;
    auto d = access_.decide(*s.audience.conn, *dev, policy::Op::read, snap);
    if (d.allow) continue;
    ending.emplace_back(s.id, fail_msg(Errc::permission_denied,
                                       "the new policy no longer allows " +
                                           AccessDecider::describe(*s.audience.conn, d.app) +
                                           " to read '" + s.audience.device_id + "'")
                                  .error());
  }
  return ending;
}

std::vector<SubscriberReport> DeviceEvents::report() const {
  std::vector<SubscriberReport> out;
  for (auto& s : fan_.entries()) {
    if (!s.audience.conn) continue;  // agent features are not apps' business
    out.push_back({s.id, s.audience.app, s.audience.conn ? s.audience.conn->caller().pid : 0,
                   s.audience.device_id, s.sub->stats()});
  }
  return out;
}

}  // namespace portier::gateway
