// App identity comes from the kernel (SO_PEERCRED, /proc/<pid>/exe), and the
// policy decides per app. These tests run real processes under different
// uids against the real daemon; they need root to switch uids.
#include <grp.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "daemon_fixture.h"

namespace portier::test {
namespace {

constexpr uid_t kUidA = 64001, kUidB = 64002;

class IdentityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to run clients under other uids";
    group* g = getgrnam("nogroup");
    ASSERT_NE(g, nullptr);
    gid_ = g->gr_gid;
    // Clients run from copies inside the temp dir, readable by the test uids.
    ctl_ = dir_.file("allowed/portierctl");
    std::filesystem::create_directories(dir_.file("allowed"));
    std::filesystem::create_directories(dir_.file("other"));
    chmod(dir_.file("allowed").c_str(), 0755);
    chmod(dir_.file("other").c_str(), 0755);
    copy_file(bin("portierctl"), ctl_);
    digest_ = sha256_file(ctl_);
  }

  std::string policy() const {
    return "version = 1\n" + runner_app() + runner_rule("terminal", "[\"read\"]") +
           "[[app]]\nname = \"teller\"\nuid = " + std::to_string(kUidA) + "\nexe = \"" + ctl_ +
           "\"\nsha256 = \"" + digest_ +
           "\"\n"
           "[[app]]\nname = \"other-user\"\nuid = " +
           std::to_string(kUidB) +
           "\n"
           "[[rule]]\napp = \"teller\"\ndevice = \"sim*\"\nops = [\"list\", \"read\", \"claim\"]\n"
           "[[rule]]\napp = \"other-user\"\nops = [\"list\"]\nclass = \"terminal\"\n";
  }

  ProcessResult ctl_as(uid_t uid, const std::string& exe, std::vector<std::string> args) {
    args.insert(args.begin(), {exe, "--socket", daemon_->socket()});
    return run_as(uid, gid_, {gid_}, args);
  }

  void start() {
    DaemonOptions o;
    o.policy = policy();
    o.socket_group = "nogroup";
    o.extra_config = "[[scanner]]\nid = \"sim0\"\ntype = \"simulated\"\ninterval_ms = 50\n";
    daemon_ = std::make_unique<Daemon>(dir_, o);
    ASSERT_TRUE(daemon_->start()) << daemon_->log();
  }

  TempDir dir_;
  gid_t gid_ = 0;
  std::string ctl_, digest_;
  std::unique_ptr<Daemon> daemon_;
};

// REQ-10: two processes under different uids get different decisions.
TEST_F(IdentityTest, TwoUidsGetDifferentDecisions) {
  start();
  auto a = ctl_as(kUidA, ctl_, {"devices"});
  EXPECT_EQ(a.exit_code, 0) << a.err;
  EXPECT_NE(a.out.find("sim0"), std::string::npos) << a.out;
  EXPECT_EQ(a.out.find("terminal"), std::string::npos) << a.out;

  auto b = ctl_as(kUidB, ctl_, {"devices"});
  EXPECT_EQ(b.exit_code, 0) << b.err;
  EXPECT_EQ(b.out.find("sim0"), std::string::npos) << b.out;
  EXPECT_NE(b.out.find("terminal"), std::string::npos) << b.out;

  // The same command, the same binary: only the uid differs.
  auto ra = ctl_as(kUidA, ctl_, {"watch", "--device", "sim0", "--count", "1"});
  EXPECT_EQ(ra.exit_code, 0) << ra.err;
  auto rb = ctl_as(kUidB, ctl_, {"watch", "--device", "sim0", "--count", "1"});
  EXPECT_EQ(rb.exit_code, 3) << rb.err;
  EXPECT_NE(rb.err.find("PERMISSION_DENIED: app 'other-user' may not read 'sim0'"),
            std::string::npos)
      << rb.err;
}

// REQ-10: a copy of the allowed binary at another path is not the allowed app.
TEST_F(IdentityTest, CopyAtAnotherPathIsNotTheApp) {
  start();
  std::string copy = dir_.file("other/portierctl");
  copy_file(ctl_, copy);
  auto r = ctl_as(kUidA, copy, {"watch", "--device", "sim0", "--count", "1"});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("undeclared app (uid 64001, " + copy + ")"), std::string::npos) << r.err;
  EXPECT_TRUE(daemon_->audit_has("\"exe\":\"" + copy + "\""));
}

// REQ-10: the allowed path with other contents (digest differs) is not the app.
TEST_F(IdentityTest, OtherContentsAtTheAllowedPathIsNotTheApp) {
  start();
  auto before = ctl_as(kUidA, ctl_, {"watch", "--device", "sim0", "--count", "1"});
  ASSERT_EQ(before.exit_code, 0) << before.err;
  // Same path, one byte more: an ELF still runs with trailing garbage.
  std::string patched = read_file(ctl_) + "X";
  std::filesystem::remove(ctl_);
  write_file(ctl_, patched, 0755);
  auto after = ctl_as(kUidA, ctl_, {"watch", "--device", "sim0", "--count", "1"});
  EXPECT_EQ(after.exit_code, 3) << after.err;
  EXPECT_NE(after.err.find("undeclared app"), std::string::npos) << after.err;
}

TEST_F(IdentityTest, WhoAmIReportsWhatTheKernelSays) {
  start();
  auto r = ctl_as(kUidA, ctl_, {"--json", "whoami"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("\"uid\":64001"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"exe\":\"" + ctl_ + "\""), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"sha256\":\"" + digest_ + "\""), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"apps\":[\"teller\"]"), std::string::npos) << r.out;
}

// A process that connects as the allowed app and then exec()s another
// program keeping the socket must not keep the identity.
TEST_F(IdentityTest, ExecAfterConnectLosesTheIdentity) {
  start();
  std::string fdc = dir_.file("allowed/fd_client");
  copy_file(bin("fd_client"), fdc);
  std::string other = dir_.file("other/fd_client");
  copy_file(bin("fd_client"), other);
  // Declare fd_client (at its allowed path) as the teller app instead.
  std::string p = "version = 1\n" + runner_app() + runner_rule("terminal", "[\"read\"]") +
                  "[[app]]\nname = \"teller\"\nuid = " + std::to_string(kUidA) + "\nexe = \"" +
                  fdc + "\"\n[[rule]]\napp = \"teller\"\nops = [\"list\"]\n";
  replace_file(daemon_->policy_path(), p);
  ASSERT_TRUE(wait_until([&] { return daemon_->health().policy().generation() == 2; }));

  // Control: connect and list without exec → allowed, sees devices.
  auto ok = run_as(kUidA, gid_, {gid_}, {fdc, daemon_->socket()});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_NE(ok.out.find("devices: 2"), std::string::npos) << ok.out;

  // Connect as fd_client, exec the copy at another path, list on the same socket.
  auto r = run_as(kUidA, gid_, {gid_}, {fdc, daemon_->socket(), "--exec", other});
  EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
  EXPECT_NE(r.err.find("exec after connect"), std::string::npos) << r.err;
}

// A stream allowed at subscribe time is taken back once the subscriber has
// exec'd another program (checked every second), and that is audited.
TEST_F(IdentityTest, ExecAfterSubscribeEndsTheStream) {
  start();
  std::string fdc = dir_.file("allowed/fd_client");
  copy_file(bin("fd_client"), fdc);
  std::string other = dir_.file("other/fd_client");
  copy_file(bin("fd_client"), other);
  std::string p = "version = 1\n" + runner_app() + runner_rule("terminal", "[\"read\"]") +
                  "[[app]]\nname = \"teller\"\nuid = " + std::to_string(kUidA) + "\nexe = \"" +
                  fdc + "\"\n[[rule]]\napp = \"teller\"\nops = [\"read\"]\n";
  replace_file(daemon_->policy_path(), p);
  ASSERT_TRUE(wait_until([&] { return daemon_->health().policy().generation() == 2; }));
  auto r =
      run_as(kUidA, gid_, {gid_}, {fdc, daemon_->socket(), "--subscribe", "sim0", "--exec", other});
  EXPECT_NE(r.out.find("subscribed"), std::string::npos) << r.out << r.err;
  EXPECT_EQ(r.exit_code, 0) << "the daemon should have closed the stream and the connection";
  EXPECT_TRUE(daemon_->audit_has("\"event\":\"identity_lost\""));
}

}  // namespace
}  // namespace portier::test
