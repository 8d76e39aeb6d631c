// REQ-32: a failing agent feature never takes the daemon down. In
// portierd_test (portierd plus two test-only features), one feature fails at
// start and another throws from check() later; both are restarted with
// backoff, reported in health and the audit trail, and recover, while the
// daemon keeps answering API calls.
#include <gtest/gtest.h>
#include <unistd.h>

#include "daemon_fixture.h"

namespace portier::test {
namespace {

bool has_reason(const v1::Health& h, const std::string& text) {
  for (const auto& r : h.reasons()) {
    if (r.find(text) != std::string::npos) return true;
  }
  return false;
}

bool lists_devices(const Daemon& d) {
  auto stub = d.connect();
  grpc::ClientContext ctx;
  v1::ListDevicesRequest req;
  v1::ListDevicesResponse resp;
  if (!stub->ListDevices(&ctx, req, &resp).ok()) return false;
  for (const auto& dev : resp.devices()) {
    if (dev.id() == "nfc0") return true;
  }
  return false;
}

TEST(FeatureSupervisionTest, FailingFeaturesAreRestartedAndReportedWhileTheDaemonServes_REQ32) {
  TempDir dir;
  const std::string start_gate = dir.file("fail_start"), check_gate = dir.file("fail_check");
  write_file(start_gate, "");  // failing_start fails at start until this goes
  DaemonOptions o;
  o.binary = "portierd_test";
  o.policy = "version = 1\n" + runner_app() + runner_rule("*", "[\"list\", \"read\"]");
  o.extra_config =
      "[[reader]]\nid = \"nfc0\"\ntype = \"simulated\"\n"
      "[failing_start]\ncontrol_file = \"" +
      start_gate + "\"\n[failing_check]\ncontrol_file = \"" + check_gate + "\"\n";
  Daemon d(dir, o);
  ASSERT_TRUE(d.start()) << d.log();

  // Failing at start: reported, retried with a growing backoff, and the
  // daemon serves meanwhile.
  ASSERT_TRUE(d.audit_has("feature failing_start failed to start")) << d.audit();
  EXPECT_TRUE(wait_until([&] {
    auto h = d.health();
    return h.state() == v1::Health::DEGRADED && has_reason(h, "feature failing_start failed");
  })) << d.health().DebugString();
  EXPECT_TRUE(d.audit_has("retry in 1000 ms")) << "the backoff doubles: " << d.audit();
  EXPECT_TRUE(lists_devices(d));

  // Failing later: check() throws; the feature is stopped, restarted, reported.
  write_file(check_gate, "");
  ASSERT_TRUE(d.audit_has("feature failing_check failed while running")) << d.audit();
  EXPECT_TRUE(wait_until([&] { return has_reason(d.health(), "feature failing_check failed"); }))
      << d.health().DebugString();
  EXPECT_NE(d.audit().find("failing_check threw on command"), std::string::npos);
  EXPECT_TRUE(lists_devices(d));
  EXPECT_TRUE(d.alive());

  // Both come back by themselves once their cause is gone.
  ::unlink(start_gate.c_str());
  ::unlink(check_gate.c_str());
  EXPECT_TRUE(wait_until([&] { return d.health().state() == v1::Health::OK; }, 40s))
      << d.health().DebugString();
  EXPECT_TRUE(d.audit_has("feature failing_start runs again")) << d.audit();
  EXPECT_TRUE(d.audit_has("feature failing_check runs again")) << d.audit();
  EXPECT_NE(d.audit().find("feature_recovered"), std::string::npos);
  EXPECT_NE(d.audit().find("feature_failed"), std::string::npos);
  EXPECT_TRUE(lists_devices(d));
  EXPECT_EQ(d.stop(), 0) << d.log();
}

// The shipped portierd knows none of the test features.
TEST(FeatureSupervisionTest, ThePortierdBinaryHasNoTestFeatures) {
  TempDir dir;
  write_file(dir.file("c.toml"), "[failing_start]\ncontrol_file = \"/x\"\n");
  auto r = run({bin("portierd"), "--check-config", "--config", dir.file("c.toml")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("failing_start: unknown key"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace portier::test
