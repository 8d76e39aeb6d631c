// Peripherals (REQ-6 self-test with alarm, REQ-12): the daemon feeds the
// drivers' self-test results in (copied from drivers::SelfTestResult, so this
// library does not depend on drivers/); any failed device fails the check.
#pragma once

#include <mutex>
#include <string>
#include <vector>

#include "agent/health/health_check.h"

namespace portier::health {

struct PeripheralSelfTest {
  std::string device_id;
  bool passed = false;
  std::string detail;  // for a person
};

struct PeripheralOptions {
  Severity severity = Severity::normal;
};
class PeripheralCheck : public Check {
 public:
  explicit PeripheralCheck(PeripheralOptions o = {}) : o_(o) {}
  std::string id() const override { return "peripherals"; }
  Severity severity() const override { return o_.severity; }
  CheckResult run(const std::atomic<bool>& cancel) override;
  // Thread-safe; replaces the snapshot.
  void update(std::vector<PeripheralSelfTest> results);

 private:
  PeripheralOptions o_;
  std::mutex mu_;
  bool reported_ = false;
  std::vector<PeripheralSelfTest> results_;
};

}  // namespace portier::health
