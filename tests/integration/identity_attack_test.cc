// The attacks on caller identity of issue "Close the trust holes", each run
// as a local, unprivileged user would run it against the real daemon: an exe
// path borrowed through a private mount namespace, a unit borrowed through a
// user's cgroup, a pid that no longer holds the connection (kernels without
// SO_PEERPIDFD), and a huge executable that would stall everyone's accept.
// They need root (other uids, cgroups) and skip without it.
#include <grp.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "daemon_fixture.h"

namespace portier::test {
namespace {

constexpr uid_t kUid = 64011, kOtherUid = 64012;

class IdentityAttackTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to run clients under other uids";
    group* g = getgrnam("nogroup");
    ASSERT_NE(g, nullptr);
    gid_ = g->gr_gid;
    for (auto* d : {"allowed", "other"}) {
      std::filesystem::create_directories(dir_.file(d));
      chmod(dir_.file(d).c_str(), 0755);
    }
    ctl_ = dir_.file("allowed/portierctl");
    copy_file(bin("portierctl"), ctl_);
    // Another program of the attacker's: portierctl with one byte more (an
    // ELF still runs with trailing bytes), so its digest differs.
    other_ = dir_.file("other/portierctl");
    write_file(other_, read_file(ctl_) + "X", 0755);
  }

  void start(const std::string& policy, const std::string& extra = "") {
    DaemonOptions o;
    o.policy = "version = 1\n" + runner_app() + runner_rule("*", "[\"*\"]") + policy;
    o.socket_group = "nogroup";
    o.extra_config = "[[scanner]]\nid = \"sim0\"\ntype = \"simulated\"\ninterval_ms = 50\n" + extra;
    daemon_ = std::make_unique<Daemon>(dir_, o);
    ASSERT_TRUE(daemon_->start()) << daemon_->log();
  }

  ProcessResult as_user(uid_t uid, std::vector<std::string> argv,
                        std::chrono::seconds timeout = 20s) {
    return run_as(uid, gid_, {gid_}, argv, timeout);
  }

  TempDir dir_;
  gid_t gid_ = 0;
  std::string ctl_, other_;
  std::unique_ptr<Daemon> daemon_;
};

// Attack 1 (REQ-10, REQ-26): `unshare -Urm`, bind-mount one's own binary over
// the allowed app's path, run it. /proc/<pid>/exe names the allowed path from
// every namespace; the path must not count, the digest shows the truth.
TEST_F(IdentityAttackTest, ExePathBorrowedThroughAMountNamespaceDoesNotCount) {
  start("[[app]]\nname = \"teller\"\nuid = " + std::to_string(kUid) + "\nexe = \"" + ctl_ +
        "\"\n[[rule]]\napp = \"teller\"\ndevice = \"sim*\"\nops = [\"list\", \"read\"]\n");
  // The honest app is the app.
  auto honest = as_user(kUid, {ctl_, "--socket", daemon_->socket(), "whoami"});
  ASSERT_EQ(honest.exit_code, 0) << honest.err;
  EXPECT_NE(honest.out.find("exe " + ctl_ + "\n"), std::string::npos) << honest.out;
  EXPECT_NE(honest.out.find("apps teller"), std::string::npos) << honest.out;

  auto attack = as_user(kUid, {"/usr/bin/unshare", "-Urm", "/bin/sh", "-c",
                               "mount --bind \"$1\" \"$2\" && exec \"$2\" --socket \"$3\" whoami",
                               "sh", other_, ctl_, daemon_->socket()});
  ASSERT_EQ(attack.exit_code, 0) << attack.err << attack.out;
  EXPECT_NE(attack.out.find("apps (none"), std::string::npos) << attack.out;
  EXPECT_NE(attack.out.find("exe - (" + ctl_ + " does not count"), std::string::npos) << attack.out;
  EXPECT_NE(attack.out.find("sha256 " + sha256_file(other_)), std::string::npos) << attack.out;

  // Even the genuine binary does not get the path's identity from inside a
  // mount namespace an unprivileged user made (its libraries and files
  // could be anything there); uid and digest still identify it.
  auto inside =
      as_user(kUid, {"/usr/bin/unshare", "-Urm", ctl_, "--socket", daemon_->socket(), "whoami"});
  ASSERT_EQ(inside.exit_code, 0) << inside.err;
  EXPECT_NE(inside.out.find("apps (none"), std::string::npos) << inside.out;
  EXPECT_NE(inside.out.find("namespace"), std::string::npos) << inside.out;
}

// The cgroup hierarchies libsystemd reads the unit from (cgroup v2, or the
// hybrid layout's unified and name=systemd trees).
std::vector<std::string> cgroup_roots() {
  std::vector<std::string> roots;
  for (auto* r : {"/sys/fs/cgroup/unified", "/sys/fs/cgroup/systemd"}) {
    if (std::filesystem::exists(std::string(r) + "/cgroup.procs")) roots.push_back(r);
  }
  if (roots.empty() && std::filesystem::exists("/sys/fs/cgroup/cgroup.procs")) {
    roots.push_back("/sys/fs/cgroup");
  }
  return roots;
}

// Runs `argv` as `uid` from inside cgroup `path` (relative to each root).
ProcessResult run_in_cgroup(const std::string& path, uid_t uid, gid_t gid,
                            const std::vector<std::string>& argv) {
  std::string script = "for r in";
  for (auto& r : cgroup_roots()) script += " " + r;
  script +=
      "; do mkdir -p \"$r$0\" && echo $$ > \"$r$0/cgroup.procs\" || exit 99; done; exec "
      "setpriv --reuid=" +
      std::to_string(uid) + " --regid=" + std::to_string(gid) + " --clear-groups \"$@\"";
  std::vector<std::string> full = {"/bin/sh", "-c", script, path};
  full.insert(full.end(), argv.begin(), argv.end());
  return run(full);
}

// Attack 2 (REQ-10, REQ-26): a cgroup named like the app's unit, made under
// the attacker's own systemd user manager (`systemd-run --user
// --unit=payment`) or in a delegated subtree, is not that system unit.
TEST_F(IdentityAttackTest, UnitBorrowedThroughAUserOrDelegatedCgroupDoesNotCount) {
  if (cgroup_roots().empty()) GTEST_SKIP() << "no writable cgroup hierarchy here";
  start(
      "[[app]]\nname = \"payment\"\nunit = \"payment.service\"\n"
      "[[rule]]\napp = \"payment\"\ndevice = \"sim*\"\nops = [\"list\"]\n");
  const std::string user = "/user.slice/user-" + std::to_string(kUid) + ".slice/user@" +
                           std::to_string(kUid) + ".service/app.slice/payment.service";
  const std::string delegated = "/system.slice/kiosk.service/payment.service";
  const std::string system = "/system.slice/payment.service";
  std::vector<std::string> whoami = {ctl_, "--socket", daemon_->socket(), "whoami"};

  auto u = run_in_cgroup(user, kUid, gid_, whoami);
  ASSERT_EQ(u.exit_code, 0) << u.err << u.out;
  EXPECT_NE(u.out.find("unit user@" + std::to_string(kUid) + ".service"), std::string::npos)
      << u.out;
  EXPECT_NE(u.out.find("apps (none"), std::string::npos) << u.out;

  auto d = run_in_cgroup(delegated, kUid, gid_, whoami);
  ASSERT_EQ(d.exit_code, 0) << d.err << d.out;
  EXPECT_NE(d.out.find("unit kiosk.service"), std::string::npos) << d.out;
  EXPECT_NE(d.out.find("apps (none"), std::string::npos) << d.out;

  // The real system unit is the app, whatever its uid.
  auto s = run_in_cgroup(system, kOtherUid, gid_, whoami);
  ASSERT_EQ(s.exit_code, 0) << s.err << s.out;
  EXPECT_NE(s.out.find("unit payment.service"), std::string::npos) << s.out;
  EXPECT_NE(s.out.find("apps payment"), std::string::npos) << s.out;

  for (auto& r : cgroup_roots()) {
    for (auto& p : {user, delegated, system}) ::rmdir((r + p).c_str());
  }
}

// A file whose daemon-side descriptor shows the daemon is hashing it now.
bool daemon_has_open(pid_t daemon, const std::string& path) {
  std::error_code ec;
  for (auto& e :
       std::filesystem::directory_iterator("/proc/" + std::to_string(daemon) + "/fd", ec)) {
    std::error_code ec2;
    if (std::filesystem::read_symlink(e.path(), ec2).string() == path) return true;
  }
  return false;
}

// A copy of portierctl extended (sparse) to `bytes`: it still runs.
std::string huge_binary(const TempDir& dir, std::uint64_t bytes) {
  std::string path = dir.file("other/huge-portierctl");
  copy_file(bin("portierctl"), path);
  std::filesystem::resize_file(path, bytes);
  return path;
}

// Attack 3, on the path of kernels without SO_PEERPIDFD (switched off here
// with [identity] peer_pidfd = false): the pid from SO_PEERCRED is pinned
// only when the connection is identified, and the process that then has it
// must be shown to hold this very connection. The connector here hands the
// socket to a child and lets go of it before it is identified (its
// identification is held back behind a huge executable of the same uid, as
// an attacker can arrange), like a process that got a reused pid: refused.
TEST_F(IdentityAttackTest, WithoutPeerPidfdAPidThatDoesNotHoldTheConnectionIsRefused) {
  start("[[app]]\nname = \"teller\"\nuid = " + std::to_string(kUid) +
            "\n[[rule]]\napp = \"teller\"\nops = [\"list\"]\n",
        "[identity]\npeer_pidfd = false\nresolving_per_uid = 1\nhash_timeout_ms = 1500\n"
        "max_exe_bytes = 68719476736\n");
  std::string fdc = dir_.file("allowed/fd_client");
  copy_file(bin("fd_client"), fdc);

  // The old-kernel path identifies an honest caller as before.
  auto honest = as_user(kUid, {ctl_, "--socket", daemon_->socket(), "whoami"});
  ASSERT_EQ(honest.exit_code, 0) << honest.err;
  EXPECT_NE(honest.out.find("apps teller"), std::string::npos) << honest.out;
  auto handed_early = as_user(kUid, {fdc, daemon_->socket()});
  EXPECT_EQ(handed_early.exit_code, 0) << handed_early.err;

  std::string huge = huge_binary(dir_, 64ull << 30);
  Child slow({huge, "--socket", daemon_->socket(), "whoami"}, kUid, gid_);
  ASSERT_TRUE(wait_until([&] { return daemon_has_open(daemon_->pid(), huge); }))
      << "the daemon never started hashing the huge executable";
  auto handed = as_user(kUid, {fdc, daemon_->socket(), "--pass"});
  EXPECT_EQ(handed.exit_code, 3) << handed.err;
  EXPECT_NE(handed.err.find("does not hold the connection"), std::string::npos) << handed.err;
  EXPECT_TRUE(daemon_->audit_has("does not hold the connection"));
}

// Attack 6b: a caller whose executable is huge is refused with a clear
// reason, audited once (not per call or connection), and no other caller
// waits for it.
TEST_F(IdentityAttackTest, HugeExecutableIsRefusedOnceAndDelaysNoOtherCaller) {
  start("[[app]]\nname = \"teller\"\nuid = " + std::to_string(kUid) +
            "\n[[rule]]\napp = \"teller\"\nops = [\"list\"]\n",
        "[identity]\nmax_exe_bytes = 8589934592\nhash_timeout_ms = 30000\n"
        "resolving_per_uid = 2\n");
  std::string huge = huge_binary(dir_, 6ull << 30);
  Child slow({huge, "--socket", daemon_->socket(), "whoami"}, kUid, gid_);
  ASSERT_TRUE(wait_until([&] { return daemon_has_open(daemon_->pid(), huge); }))
      << "the daemon never started hashing the huge executable";
  // While it is hashed, another uid (and the same uid, within its share of
  // the pool: 2 here) is identified and served.
  auto other = as_user(kOtherUid, {ctl_, "--socket", daemon_->socket(), "whoami"}, 10s);
  EXPECT_EQ(other.exit_code, 0) << other.err;
  auto same = as_user(kUid, {ctl_, "--socket", daemon_->socket(), "whoami"}, 10s);
  EXPECT_EQ(same.exit_code, 0) << same.err;
  EXPECT_TRUE(daemon_has_open(daemon_->pid(), huge)) << "hashing ended before the checks";
  slow.signal(SIGKILL);

  // Over the size limit: refused at once, with the limit named, audited once.
  std::string too_big = dir_.file("other/too-big");
  copy_file(bin("portierctl"), too_big);
  std::filesystem::resize_file(too_big, 9ull << 30);
  for (int i = 0; i < 3; ++i) {
    auto r = as_user(kUid, {too_big, "--socket", daemon_->socket(), "whoami"});
    EXPECT_EQ(r.exit_code, 3) << r.err;
    EXPECT_NE(r.err.find("caller could not be identified"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("max_exe_bytes"), std::string::npos) << r.err;
  }
  ASSERT_TRUE(daemon_->audit_has("identity_refused"));
  auto audit = daemon_->audit();
  std::size_t records = 0;
  for (auto p = audit.find("9663676416 bytes"); p != std::string::npos;
       p = audit.find("9663676416 bytes", p + 1)) {
    ++records;
  }
  EXPECT_EQ(records, 1u) << audit;
}

}  // namespace
}  // namespace portier::test
