#include "agent/health/peripheral_check.h"

namespace portier::health {

void PeripheralCheck::update(std::vector<PeripheralSelfTest> results) {
  std::lock_guard lk(mu_);
  results_ = std::move(results);
  reported_ = true;
}

CheckResult PeripheralCheck::run(const std::atomic<bool>&) {
  std::lock_guard lk(mu_);
  CheckResult r;
  if (!reported_) {
    r.reason = "no self-test results yet";
    return r;
  }
  std::string failed;
  int n_failed = 0;
  for (const auto& t : results_) {
    r.values[t.device_id] = t.passed ? "passed" : "failed: " + t.detail;
    if (!t.passed) {
      ++n_failed;
      failed += (failed.empty() ? "" : "; ") + t.device_id +
                (t.detail.empty() ? "" : " (" + t.detail + ")");
    }
  }
  r.values["devices"] = std::to_string(results_.size());
  r.values["failed"] = std::to_string(n_failed);
  if (n_failed > 0) {
    r.status = CheckResult::Status::fail;
    r.reason =
        "peripheral self-test failed: " + failed + ": check the device's cable, power and identity";
  } else {
    r.reason = std::to_string(results_.size()) + " peripherals passed their self-test";
  }
  return r;
}

}  // namespace portier::health
