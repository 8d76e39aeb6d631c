// What a new user ran into, fixed (issue "Make room for the management
// half", item 7); each test is named after what broke.
#include <grp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include "daemon_fixture.h"

namespace portier::test {
namespace {

class NewUserFixesTest : public ::testing::Test {
 protected:
  void start(const std::string& extra = "") {
    ctl_ = dir_.file("portierctl");
    copy_file(bin("portierctl"), ctl_);
    DaemonOptions o;
    o.policy = "version = 1\n" + runner_app() + "[[app]]\nname = \"admin-cli\"\nuid = 0\nexe = \"" +
               ctl_ + "\"\n[[rule]]\napp = \"admin-cli\"\nops = [\"*\"]\n";
    o.extra_config = "[[scanner]]\nid = \"sim0\"\ntype = \"simulated\"\ninterval_ms = 50\n" + extra;
    daemon_ = std::make_unique<Daemon>(dir_, o);
    ASSERT_TRUE(daemon_->start()) << daemon_->log();
  }
  ProcessResult ctl(std::vector<std::string> args) {
    args.insert(args.begin(), {ctl_, "--socket", daemon_->socket()});
    return run(args);
  }

  TempDir dir_;
  std::string ctl_;
  std::unique_ptr<Daemon> daemon_;
};

// Another uid that may not open the socket was told UNAVAILABLE (exit 4),
// which reads as "daemon down".
TEST_F(NewUserFixesTest, SocketPermissionDeniedIsNotDaemonDown) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to run portierctl as another uid";
  start();
  group* g = getgrnam("nogroup");
  ASSERT_NE(g, nullptr);
  auto r = run_as(64031, g->gr_gid, {g->gr_gid}, {ctl_, "--socket", daemon_->socket(), "devices"});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("socket permission denied: " + daemon_->socket()), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("is this user in group root?"), std::string::npos) << r.err;
  // A daemon that is not there is still UNAVAILABLE, exit 4.
  auto gone = run({ctl_, "--socket", dir_.file("none.sock"), "devices"});
  EXPECT_EQ(gone.exit_code, 4) << gone.err;
}

// `send ID --text a --data 41` was accepted and sent --text.
TEST_F(NewUserFixesTest, SendTakesTextOrDataNotBoth) {
  start();
  auto r = ctl({"send", "sim0", "--text", "a", "--data", "41"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("not both"), std::string::npos) << r.err;
}

// "sent 1 bytes".
TEST_F(NewUserFixesTest, SendSaysOneByte) {
  start();
  auto one = ctl({"send", "sim0", "--data", "41"});
  ASSERT_EQ(one.exit_code, 0) << one.err;
  EXPECT_NE(one.out.find("sent 1 byte\n"), std::string::npos) << one.out;
  auto two = ctl({"send", "sim0", "--text", "ab"});
  ASSERT_EQ(two.exit_code, 0) << two.err;
  EXPECT_NE(two.out.find("sent 2 bytes"), std::string::npos) << two.out;
}

// Text `watch` printed "unknown" for a scan without AIM identifier, where
// the README says the symbology is empty.
TEST_F(NewUserFixesTest, WatchShowsADashForAScanWithoutAimIdentifier) {
  Pty pty(dir_.file("ttyACM0"));
  start("[[scanner]]\nid = \"scanner0\"\npath = \"" + pty.link() + "\"\n");
  ASSERT_TRUE(wait_until(
      [&] { return ctl({"devices"}).out.find("scanner0\tscanner\tready") != std::string::npos; }));
  std::string out = dir_.file("watch.out");
  Child watch({"/bin/sh", "-c", "exec \"$0\" --socket \"$1\" watch --device scanner0 > \"$2\"",
               ctl_, daemon_->socket(), out});
  ASSERT_TRUE(wait_until([&] {
    pty.write("4006381333931\r");
    return read_file(out).find("scanner0") != std::string::npos;
  }));
  auto text = read_file(out);
  EXPECT_NE(text.find(" - utf-8 \"4006381333931\""), std::string::npos) << text;
  EXPECT_EQ(text.find("unknown"), std::string::npos) << text;
}

}  // namespace
}  // namespace portier::test
