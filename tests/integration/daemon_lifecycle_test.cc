// The daemon as systemd runs it: sd_notify READY/WATCHDOG/STOPPING, clean
// exit on SIGTERM, the socket's mode, a stale socket reused and a live one
// never stolen, and running without root (REQ-35).
#include <grp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <filesystem>
#include <regex>

#include "daemon_fixture.h"

namespace portier::test {
namespace {

// Receives sd_notify datagrams the way systemd does.
class NotifySocket {
 public:
  explicit NotifySocket(const std::string& path) : path_(path) {
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  }
  ~NotifySocket() { close(fd_); }
  // Collects datagrams until one contains `what`.
  bool saw(const std::string& what) {
    return wait_until([&] {
      char buf[512];
      ssize_t n;
      while ((n = recv(fd_, buf, sizeof(buf), 0)) > 0) all_ += std::string(buf, n) + "\n";
      return all_.find(what) != std::string::npos;
    });
  }

 private:
  std::string path_, all_;
  int fd_;
};

std::string basic_policy() { return "version = 1\n" + runner_app() + runner_rule("*", "[\"*\"]"); }

TEST(DaemonLifecycleTest, NotifiesReadyWatchdogAndStopping) {
  TempDir dir;
  NotifySocket notify(dir.file("notify.sock"));
  DaemonOptions o;
  o.policy = basic_policy();
  o.env = {"NOTIFY_SOCKET=" + dir.file("notify.sock"), "WATCHDOG_USEC=200000"};
  Daemon d(dir, o);
  ASSERT_TRUE(d.start()) << d.log();
  EXPECT_TRUE(notify.saw("READY=1"));
  EXPECT_TRUE(notify.saw("WATCHDOG=1"));
  EXPECT_EQ(d.stop(), 0);
  EXPECT_TRUE(notify.saw("STOPPING=1"));
}

TEST(DaemonLifecycleTest, SigtermStopsCleanlyAndRemovesTheSocket) {
  TempDir dir;
  DaemonOptions o;
  o.policy = basic_policy();
  o.extra_config = "[[scanner]]\nid = \"sim0\"\ntype = \"simulated\"\ninterval_ms = 10\n";
  Daemon d(dir, o);
  ASSERT_TRUE(d.start()) << d.log();
  struct stat st {};
  ASSERT_EQ(stat(d.socket().c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0660u);
  // A subscriber is streaming while the daemon stops: it gets a clear status.
  auto stub = d.connect();
  grpc::ClientContext ctx;
  v1::SubscribeRequest req;
  req.set_device_id("sim0");
  auto reader = stub->Subscribe(&ctx, req);
  v1::PeripheralEvent ev;
  ASSERT_TRUE(reader->Read(&ev));
  EXPECT_EQ(d.stop(), 0);
  while (reader->Read(&ev)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_FALSE(std::filesystem::exists(d.socket()));
  EXPECT_NE(d.log().find("stopped"), std::string::npos);
}

TEST(DaemonLifecycleTest, ReadyQuicklyAndReportsIt) {
  TempDir dir;
  DaemonOptions o;
  o.policy = basic_policy();
  Daemon d(dir, o);
  ASSERT_TRUE(d.start());
  std::smatch m;
  auto log = d.log();
  ASSERT_TRUE(std::regex_search(log, m, std::regex("ready in ([0-9]+) ms")));
}

TEST(DaemonLifecycleTest, StaleSocketIsReplacedLiveOneIsNotStolen) {
  TempDir dir;
  DaemonOptions o;
  o.policy = basic_policy();
  {
    Daemon first(dir, o);
    ASSERT_TRUE(first.start());
    first.signal(SIGKILL);  // leaves its socket file behind
    ASSERT_TRUE(wait_until([&] { return !first.alive(); }));
    ASSERT_TRUE(std::filesystem::exists(first.socket()));
  }
  Daemon second(dir, o);
  ASSERT_TRUE(second.start()) << second.log();
  Daemon third(dir, o);  // same socket path, while the second serves it
  EXPECT_FALSE(third.start());
  EXPECT_NE(third.log().find("another portierd is serving this socket"), std::string::npos)
      << third.log();
  EXPECT_TRUE(second.alive());
  EXPECT_NO_THROW(second.health());
}

// REQ-35: the daemon runs without root. Unprivileged, it still identifies
// same-uid apps; other users' apps get a clear refusal, not a wrong identity.
TEST(DaemonLifecycleTest, RunsWithoutRoot) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to switch to an unprivileged uid";
  constexpr uid_t kDaemonUid = 64010;
  group* g = getgrnam("nogroup");
  ASSERT_NE(g, nullptr);
  TempDir dir;
  std::filesystem::create_directories(dir.file("state"));
  chown(dir.file("state").c_str(), kDaemonUid, g->gr_gid);
  chown(dir.path().c_str(), kDaemonUid, g->gr_gid);
  copy_file(bin("portierctl"), dir.file("portierctl"));
  DaemonOptions o;
  o.uid = kDaemonUid;
  o.gid = g->gr_gid;
  o.socket_group = "nogroup";
  o.policy = "version = 1\n[[app]]\nname = \"ctl\"\nuid = " + std::to_string(kDaemonUid) +
             "\nexe = \"" + dir.file("portierctl") + "\"\n" +
             "[[rule]]\napp = \"ctl\"\nops = [\"*\"]\n";
  Daemon d(dir, o);
  ASSERT_TRUE(d.start()) << d.log();
  std::string status = read_file("/proc/" + std::to_string(d.pid()) + "/status");
  EXPECT_NE(status.find("Uid:\t" + std::to_string(kDaemonUid)), std::string::npos);
  EXPECT_NE(status.find("CapEff:\t0000000000000000"), std::string::npos) << status;

  auto same = run_as(kDaemonUid, g->gr_gid, {g->gr_gid},
                     {dir.file("portierctl"), "--socket", d.socket(), "whoami"});
  EXPECT_EQ(same.exit_code, 0) << same.err;
  EXPECT_NE(same.out.find("apps ctl"), std::string::npos) << same.out;

  auto root = run({dir.file("portierctl"), "--socket", d.socket(), "devices"});
  EXPECT_EQ(root.exit_code, 3) << root.err;
  EXPECT_NE(root.err.find("CAP_SYS_PTRACE"), std::string::npos) << root.err;
}

// REQ-35: the shipped unit runs portierd as its own user with one capability,
// sandboxed, and systemd accepts it.
TEST(SystemdUnitTest, UnitIsLeastPrivilegeAndVerifies) {
  auto unit = read_file(std::string(PORTIER_SOURCE_DIR) + "/systemd/portierd.service");
  for (const char* line :
       {"Type=notify", "User=portier", "NoNewPrivileges=yes",
        "CapabilityBoundingSet=CAP_SYS_PTRACE\n", "AmbientCapabilities=CAP_SYS_PTRACE\n",
        "ProtectSystem=strict", "PrivateTmp=yes", "RestrictAddressFamilies=AF_UNIX AF_NETLINK\n",
        "WatchdogSec=", "ProtectHome=yes"}) {
    EXPECT_NE(unit.find(line), std::string::npos) << "missing " << line;
  }
  EXPECT_EQ(unit.find("User=root"), std::string::npos);
  if (access("/usr/bin/systemd-analyze", X_OK) != 0) GTEST_SKIP() << "no systemd-analyze";
  TempDir dir;
  // Point the unit at the built binary (it is not installed in /usr/bin here).
  std::string local = std::regex_replace(unit, std::regex("/usr/bin/portierd"), bin("portierd"));
  write_file(dir.file("portierd.service"), local);
  auto r = run({"/usr/bin/systemd-analyze", "verify", dir.file("portierd.service")});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
}

}  // namespace
}  // namespace portier::test
