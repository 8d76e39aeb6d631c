// REQ-35: portierd refuses a policy that anyone but root or its own user
// could have written (owner, world-writable file or directory, a file right
// in /tmp): fatal at start and in --check-config, rejected on reload with the
// old policy kept in force. Giving files to other owners needs root.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "daemon_fixture.h"

namespace portier::test {
namespace {

constexpr uid_t kStranger = 1000;

std::string policy_text(const std::string& sim_ops) {
  return "version = 1\n" + runner_app() + runner_rule("terminal", "[\"read\"]") +
         runner_rule("sim0", sim_ops);
}

class PolicyOwnershipTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to give files to other owners";
  }

  // A config of our own for portierd run to completion (start or --check-config).
  std::string config_for(const std::string& policy) {
    const std::string cfg = dir_.file("own.toml");
    write_file(cfg, "socket = \"" + dir_.file("own.sock") + "\"\nstate_dir = \"" +
                        dir_.file("own-state") + "\"\npolicy = \"" + policy + "\"\n");
    return cfg;
  }

  // Both ways portierd loads a policy before serving: `--check-config`
  // (ExecStartPre) and the start itself; each must exit 1 naming `why`.
  void expect_refused(const std::string& policy, const std::string& why) {
    const std::string cfg = config_for(policy);
    auto check = run({bin("portierd"), "--config", cfg, "--check-config"});
    EXPECT_EQ(check.exit_code, 1) << check.out << check.err;
    EXPECT_NE(check.err.find(why), std::string::npos) << check.err;
    auto start = run({bin("portierd"), "--config", cfg}, std::chrono::seconds(10));
    EXPECT_EQ(start.exit_code, 1) << start.err;
    EXPECT_NE(start.err.find(why), std::string::npos) << start.err;
    EXPECT_FALSE(std::filesystem::exists(dir_.file("own.sock")));
  }

  TempDir dir_;
};

TEST_F(PolicyOwnershipTest, FileOfAnotherUserIsRefusedAtStart) {
  const std::string p = dir_.file("policy.toml");
  write_file(p, policy_text("[\"read\"]"));
  ASSERT_EQ(chown(p.c_str(), kStranger, 0), 0);
  expect_refused(
      p, "policy " + p + ": owned by uid 1000 (must be root or portierd's user 0); refused");
}

TEST_F(PolicyOwnershipTest, WorldWritableFileIsRefusedAtStart) {
  const std::string p = dir_.file("policy.toml");
  write_file(p, policy_text("[\"read\"]"), 0666);
  expect_refused(p, "writable by group or others (mode 0666)");
}

TEST_F(PolicyOwnershipTest, WorldWritableDirectoryIsRefusedAtStart) {
  std::filesystem::create_directories(dir_.file("shared"));
  ASSERT_EQ(chmod(dir_.file("shared").c_str(), 0777), 0);
  const std::string p = dir_.file("shared/policy.toml");
  write_file(p, policy_text("[\"read\"]"));
  expect_refused(p, "policy " + p + ": directory " + dir_.file("shared") +
                        " is writable by others (mode 0777)");
}

// /tmp is 1777: the sticky bit keeps others from replacing a file there, but
// not from planting its name (or a link by that name) while it is absent.
TEST_F(PolicyOwnershipTest, FileDirectlyInTmpIsRefusedAtStart) {
  std::string p = "/tmp/portier-policy-XXXXXX.toml";
  int fd = mkstemps(p.data(), 5);
  ASSERT_GE(fd, 0);
  close(fd);
  write_file(p, policy_text("[\"read\"]"));
  expect_refused(p, "policy " + p + ": directory /tmp is writable by others (mode 1777");
  unlink(p.c_str());
}

class PolicyOwnershipReloadTest : public PolicyOwnershipTest {
 protected:
  void SetUp() override {
    PolicyOwnershipTest::SetUp();
    if (IsSkipped()) return;
    DaemonOptions o;
    o.policy = policy_text("[\"list\", \"read\"]");
    o.extra_config = "[[scanner]]\nid = \"sim0\"\ntype = \"simulated\"\ninterval_ms = 20\n";
    daemon_ = std::make_unique<Daemon>(dir_, o);
    ASSERT_TRUE(daemon_->start()) << daemon_->log();
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

  // Waits until the health report shows a rejected reload naming `why`.
  bool rejected_with(const std::string& why) {
    return wait_until(
        [&] { return daemon_->health().policy().last_error().find(why) != std::string::npos; });
  }

  std::unique_ptr<Daemon> daemon_;
};

TEST_F(PolicyOwnershipReloadTest, FileOfAnotherUserIsRejectedAndOldPolicyStays) {
  const std::string p = daemon_->policy_path();
  // Written, given away, then renamed into place, as a config manager would.
  write_file(p + ".new", policy_text("[\"read\"]"));
  ASSERT_EQ(chown((p + ".new").c_str(), kStranger, 0), 0);
  std::filesystem::rename(p + ".new", p);
  ASSERT_TRUE(rejected_with("owned by uid 1000 (must be root or portierd's user 0); refused"))
      << daemon_->health().policy().last_error() << daemon_->log();
  EXPECT_EQ(daemon_->health().policy().generation(), 1u);
  EXPECT_TRUE(lists_sim0());  // the old policy is still in force
  EXPECT_TRUE(daemon_->audit_has("owned by uid 1000")) << daemon_->audit();
  EXPECT_TRUE(daemon_->audit_has("\"event\":\"policy_rejected\""));

  // Given back to root: the next reload takes it.
  ASSERT_EQ(chown(p.c_str(), 0, 0), 0);
  daemon_->signal(SIGHUP);
  ASSERT_TRUE(wait_until([&] { return daemon_->health().policy().generation() == 2; }))
      << daemon_->log();
  EXPECT_FALSE(lists_sim0());
}

TEST_F(PolicyOwnershipReloadTest, WorldWritableDirectoryIsRejectedAndOldPolicyStays) {
  ASSERT_EQ(chmod(dir_.path().c_str(), 0777), 0);
  replace_file(daemon_->policy_path(), policy_text("[\"read\"]"));
  ASSERT_TRUE(rejected_with("directory " + dir_.path() + " is writable by others (mode 0777)"))
      << daemon_->health().policy().last_error();
  EXPECT_EQ(daemon_->health().policy().generation(), 1u);
  EXPECT_TRUE(lists_sim0());

  ASSERT_EQ(chmod(dir_.path().c_str(), 0755), 0);
  daemon_->signal(SIGHUP);
  ASSERT_TRUE(wait_until([&] { return daemon_->health().policy().generation() == 2; }));
  EXPECT_FALSE(lists_sim0());
}

}  // namespace
}  // namespace portier::test
