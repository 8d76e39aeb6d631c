// Hot reload: on file change and on SIGHUP. A broken new file is rejected
// with its line number and the old policy stays in force; streams the new
// policy no longer allows are ended.
#include <gtest/gtest.h>
#include <signal.h>

#include "daemon_fixture.h"

namespace portier::test {
namespace {

class PolicyReloadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    DaemonOptions o;
    o.policy = policy("[\"list\", \"read\"]");
    o.extra_config = "[[scanner]]\nid = \"sim0\"\ntype = \"simulated\"\ninterval_ms = 20\n";
    daemon_ = std::make_unique<Daemon>(dir_, o);
    ASSERT_TRUE(daemon_->start()) << daemon_->log();
  }

  static std::string policy(const std::string& sim_ops) {
    return "version = 1\n" + runner_app() + runner_rule("terminal", "[\"read\"]") +
           runner_rule("sim0", sim_ops);
  }

  bool lists_sim0() {
    auto stub = daemon_->connect();
    grpc::ClientContext ctx;
    v1::ListDevicesResponse r;
    EXPECT_TRUE(stub->ListDevices(&ctx, {}, &r).ok());
    for (auto& d : r.devices()) {
      if (d.id() == "sim0") return true;
    }
    return false;
  }

  std::uint64_t generation() { return daemon_->health().policy().generation(); }

  TempDir dir_;
  std::unique_ptr<Daemon> daemon_;
};

// REQ-10: permissions change with the policy file, without a restart.
TEST_F(PolicyReloadTest, FileChangeTakesEffect) {
  ASSERT_TRUE(lists_sim0());
  replace_file(daemon_->policy_path(), policy("[\"read\"]"));
  ASSERT_TRUE(wait_until([&] { return generation() == 2; })) << daemon_->log();
  EXPECT_FALSE(lists_sim0());
  EXPECT_TRUE(daemon_->audit_has("\"event\":\"policy_loaded\""));
}

// Regression: the directory watch was set up only after "ready", so an edit
// made right after the start could go unseen (this suite's first edit
// follows the start at once; it failed once under load).
TEST_F(PolicyReloadTest, AnEditRightAfterReadyIsNotMissed) {
  replace_file(daemon_->policy_path(), policy("[\"read\"]"));
  ASSERT_TRUE(wait_until([&] { return generation() == 2; })) << daemon_->log();
  EXPECT_FALSE(lists_sim0());
}

TEST_F(PolicyReloadTest, BrokenFileIsRejectedAndOldPolicyStays) {
  replace_file(daemon_->policy_path(),
               "version = 1\n[[rule]]\napp = \"nobody-declared\"\nops = [\"list\"]\n");
  ASSERT_TRUE(wait_until([&] { return !daemon_->health().policy().last_error().empty(); }));
  auto h = daemon_->health();
  EXPECT_EQ(h.policy().generation(), 1u);
  EXPECT_NE(h.policy().last_error().find("policy.toml:3"), std::string::npos)
      << h.policy().last_error();
  EXPECT_EQ(h.state(), v1::Health::DEGRADED);
  EXPECT_TRUE(lists_sim0());  // the old policy is still in force
  EXPECT_TRUE(daemon_->audit_has("\"event\":\"policy_rejected\""));

  // A syntax error too.
  replace_file(daemon_->policy_path(), "version = 1\n[[rule]\n");
  ASSERT_TRUE(wait_until([&] {
    return daemon_->health().policy().last_error().find("policy.toml:2") != std::string::npos;
  }));
  EXPECT_TRUE(lists_sim0());

  // Fixed: the new policy loads and the error clears.
  replace_file(daemon_->policy_path(), policy("[\"read\"]"));
  ASSERT_TRUE(wait_until([&] { return generation() == 2; }));
  EXPECT_TRUE(daemon_->health().policy().last_error().empty());
  EXPECT_FALSE(lists_sim0());
}

TEST_F(PolicyReloadTest, GroupWritableFileIsRejected) {
  replace_file(daemon_->policy_path(), policy("[\"read\"]"), 0666);
  ASSERT_TRUE(wait_until([&] { return !daemon_->health().policy().last_error().empty(); }));
  EXPECT_NE(daemon_->health().policy().last_error().find("chmod go-w"), std::string::npos);
  EXPECT_TRUE(lists_sim0());
}

TEST_F(PolicyReloadTest, SighupReloads) {
  ASSERT_EQ(generation(), 1u);
  daemon_->signal(SIGHUP);
  ASSERT_TRUE(wait_until([&] { return generation() == 2; }));
  EXPECT_NE(daemon_->log().find("policy reloaded (SIGHUP)"), std::string::npos);
}

TEST_F(PolicyReloadTest, RevokedReadEndsTheSubscription) {
  auto stub = daemon_->connect();
  grpc::ClientContext ctx;
  v1::SubscribeRequest req;
  req.set_device_id("sim0");
  auto reader = stub->Subscribe(&ctx, req);
  v1::PeripheralEvent ev;
  ASSERT_TRUE(reader->Read(&ev));
  replace_file(daemon_->policy_path(), policy("[\"list\"]"));
  while (reader->Read(&ev)) {
  }
  auto st = reader->Finish();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(st.error_message().find("no longer allows app 'test-runner' to read 'sim0'"),
            std::string::npos)
      << st.error_message();
}

}  // namespace
}  // namespace portier::test
