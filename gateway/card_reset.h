// A card keeps its session (verified PIN, selected applet) across APDUs:
// when a lease on a reader ends, the card is reset so nothing carries over
// to the next app. The reset talks to the card, so it runs off the caller's
// thread; drain() waits for the resets under way (before drivers stop).
#pragma once

#include <condition_variable>
#include <mutex>
#include <string>

#include "common/audit_sink.h"
#include "drivers/driver.h"

namespace portier::gateway {

class CardReset {
 public:
  explicit CardReset(AuditSink& audit) : audit_(audit) {}
  ~CardReset() { drain(); }
  // Resets `device_id` through `driver` in the background; audited.
  void after_lease(drivers::Driver& driver, const std::string& device_id);
  void drain();

 private:
  AuditSink& audit_;
  std::mutex mu_;
  std::condition_variable cv_;
  int running_ = 0;
};

}  // namespace portier::gateway
