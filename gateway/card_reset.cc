#include "card_reset.h"

#include <thread>

#include "common/audit_events.h"
namespace portier::gateway {

void CardReset::after_lease(drivers::Driver& driver, const std::string& device_id) {
  {
    std::lock_guard lock(mu_);
    ++running_;
  }
  std::thread([this, &driver, device_id] {
    drivers::ActionRequest r;
    r.device_id = device_id;
    r.action = "reset";
    auto res = driver.act(r);
    audit_.record(audit::card_reset(device_id, res ? "" : res.error().message()));
    std::lock_guard lock(mu_);
    --running_;
    cv_.notify_all();
  }).detach();
}

void CardReset::drain() {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return running_ == 0; });
}

}  // namespace portier::gateway
