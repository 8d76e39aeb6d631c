// A card keeps its session (verified PIN, selected applet) across APDUs:
// when a lease on a reader ends, the card is reset so nothing carries over
// to the next app. The reset talks to the card, so it runs off the caller's
// thread, at most one per device; until it is done the device is pending
// and may not be claimed. close() (at shutdown) lets no new reset start and
// waits for those under way.
#pragma once

#include <condition_variable>
#include <mutex>
#include <set>
#include <string>

#include "common/audit_sink.h"
#include "drivers/driver.h"

namespace portier::gateway {

class CardReset {
 public:
  explicit CardReset(AuditSink& audit) : audit_(audit) {}
  ~CardReset() { close(); }
  // Resets `device_id` through `driver` in the background; audited. Nothing
  // when a reset of it is under way already, or after close().
  void after_lease(drivers::Driver& driver, const std::string& device_id);
  // A reset of `device_id` has not finished yet.
  bool pending(const std::string& device_id) const;
  void close();

 private:
  AuditSink& audit_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::set<std::string> pending_;
  bool closed_ = false;
};

}  // namespace portier::gateway
