#include "card_reset.h"

#include <thread>

#include "common/audit_events.h"

namespace portier::gateway {

void CardReset::after_lease(drivers::Driver& driver, const std::string& device_id) {
  {
    std::lock_guard lock(mu_);
    if (closed_ || !pending_.insert(device_id).second) return;
  }
  std::thread([this, &driver, device_id] {
    drivers::ActionRequest r;
    r.device_id = device_id;
    r.action = "reset";
    auto res = driver.act(r);
    audit_.record(audit::card_reset(device_id, res ? "" : res.error().message()));
    std::lock_guard lock(mu_);
    pending_.erase(device_id);
    cv_.notify_all();
  }).detach();
}

bool CardReset::pending(const std::string& device_id) const {
  std::lock_guard lock(mu_);
  return pending_.count(device_id) != 0;
}

void CardReset::close() {
  std::unique_lock lock(mu_);
  closed_ = true;
  cv_.wait(lock, [&] { return pending_.empty(); });
}

}  // namespace portier::gateway
