#include "agent/health/peripheral_check.h"

#include <gtest/gtest.h>

#include "agent/health/health_monitor.h"

namespace portier::health {
namespace {

using Status = CheckResult::Status;
std::atomic<bool> no_cancel{false};

// REQ-6 (self-test with alarm), REQ-5 (diagnostics), REQ-12
TEST(PeripheralCheck, AnyFailedDeviceFailsNamingIt) {
  PeripheralCheck c;
  EXPECT_EQ(c.run(no_cancel).status, Status::ok);
  c.update({{"scanner0", true, "ok"}, {"reader0", true, ""}});
  auto r = c.run(no_cancel);
  EXPECT_EQ(r.status, Status::ok);
  EXPECT_EQ(r.values["devices"], "2");
  c.update(
      {{"scanner0", true, "ok"}, {"reader0", false, "identity differs from the pinned reader"}});
  r = c.run(no_cancel);
  EXPECT_EQ(r.status, Status::fail);
  EXPECT_NE(r.reason.find("reader0 (identity differs from the pinned reader)"), std::string::npos)
      << r.reason;
  EXPECT_EQ(r.values["reader0"], "failed: identity differs from the pinned reader");
}

// REQ-6: the alarm reaches the monitor's listener as DEGRADED (normal
// severity by default), COMPROMISED when configured critical.
TEST(PeripheralCheck, FailedSelfTestChangesMonitorState) {
  auto c = std::make_shared<PeripheralCheck>(PeripheralOptions{Severity::critical});
  c->update({{"pinpad0", false, "not responding"}});
  HealthMonitor m(HealthMonitor::Options{1});
  CheckSettings s;
  s.interval = std::chrono::hours(1);
  m.add(c, s);
  m.start();
  auto r = m.run_all_now();
  EXPECT_EQ(r.state, HealthState::compromised);
  ASSERT_EQ(r.reasons.size(), 1u);
  EXPECT_NE(r.reasons[0].find("peripherals: peripheral self-test failed: pinpad0"),
            std::string::npos);
}

}  // namespace
}  // namespace portier::health
