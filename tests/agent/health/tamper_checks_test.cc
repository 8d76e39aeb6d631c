#include "agent/health/tamper_checks.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utmpx.h>

#include <cstdio>
#include <cstring>

#include "agent/health/self_binary_check.h"
#include "agent/health/temp_tree.h"

namespace portier::health {
namespace {

using Status = CheckResult::Status;
using testing::TempTree;
std::atomic<bool> no_cancel{false};

// REQ-7 (root)
TEST(SetuidFilesCheck, UnexpectedSetuidFileFailsAllowListedPasses) {
  TempTree t;
  auto ok_file = t.write("bin/tool", "x");
  auto suid = t.write("bin/sub/backdoor", "x");
  auto sgid = t.write("bin/mailer", "x");
  chmod(suid.c_str(), 04755);
  chmod(sgid.c_str(), 02755);
  SetuidOptions o;
  o.paths = {t.path("bin")};
  auto r = SetuidFilesCheck(o).run(no_cancel);
  EXPECT_EQ(r.status, Status::fail);
  EXPECT_NE(r.reason.find(suid + " (set-uid)"), std::string::npos) << r.reason;
  EXPECT_NE(r.reason.find(sgid + " (set-gid)"), std::string::npos) << r.reason;
  EXPECT_EQ(SetuidFilesCheck(o).severity(), Severity::critical);
  o.allowed = {suid, sgid};
  r = SetuidFilesCheck(o).run(no_cancel);
  EXPECT_EQ(r.status, Status::ok) << r.reason;
  EXPECT_EQ(r.values["scanned"], "4");  // tool, sub, backdoor, mailer
}

// REQ-7 (root): a symlink to a set-uid file outside the paths is not followed.
TEST(SetuidFilesCheck, DoesNotFollowSymlinks) {
  TempTree t;
  auto outside = t.write("outside/su", "x");
  chmod(outside.c_str(), 04755);
  t.mkdir("bin");
  ASSERT_EQ(symlink(t.path("outside").c_str(), t.path("bin/link").c_str()), 0);
  SetuidOptions o;
  o.paths = {t.path("bin")};
  EXPECT_EQ(SetuidFilesCheck(o).run(no_cancel).status, Status::ok);
}

void fake_proc(const TempTree& t, int pid, const std::string& name, int uid, int ppid,
               const std::string& exe, bool kthread = false) {
  auto base = "proc/" + std::to_string(pid);
  t.write(base + "/status", "Name:\t" + name + "\nPid:\t" + std::to_string(pid) + "\nPPid:\t" +
                                std::to_string(ppid) + "\nUid:\t" + std::to_string(uid) + "\t" +
                                std::to_string(uid) + "\t" + std::to_string(uid) + "\t" +
                                std::to_string(uid) + (kthread ? "\nKthread:\t1" : "") + "\n");
  if (!exe.empty()) symlink(exe.c_str(), t.path(base + "/exe").c_str());
}

// REQ-7 (root)
TEST(RootProcessCheck, UnexpectedUidZeroProcessFails) {
  TempTree t;
  fake_proc(t, 1, "systemd", 0, 0, "/usr/lib/systemd/systemd");
  fake_proc(t, 2, "kthreadd", 0, 0, "");
  fake_proc(t, 50, "kworker/0:1", 0, 2, "", true);
  fake_proc(t, 300, "portierd", 998, 1, "/usr/bin/portierd");
  RootProcessOptions o;
  o.proc_root = t.path("proc");
  o.allowed = {"/usr/lib/systemd/systemd"};
  auto r = RootProcessCheck(o).run(no_cancel);
  EXPECT_EQ(r.status, Status::ok) << r.reason;
  EXPECT_EQ(r.values["root_processes"], "1");
  fake_proc(t, 666, "sh", 0, 300, "/tmp/.x/sh");
  r = RootProcessCheck(o).run(no_cancel);
  EXPECT_EQ(r.status, Status::fail);
  EXPECT_NE(r.reason.find("666 /tmp/.x/sh"), std::string::npos) << r.reason;
}

// REQ-7 (root): on the real /proc it runs (results depend on the machine).
TEST(RootProcessCheck, RealProcRuns) {
  auto r = RootProcessCheck().run(no_cancel);
  EXPECT_FALSE(r.values["root_processes"].empty());
}

void write_utmp(const std::string& path, const std::vector<std::pair<std::string, short>>& users) {
  FILE* f = std::fopen(path.c_str(), "wb");
  ASSERT_TRUE(f);
  int i = 0;
  for (const auto& [user, type] : users) {
    utmpx u{};
    u.ut_type = type;
    u.ut_pid = 1000 + i;
    std::snprintf(u.ut_line, sizeof u.ut_line, "pts/%d", i++);
    std::strncpy(u.ut_user, user.c_str(), sizeof u.ut_user);
    std::fwrite(&u, sizeof u, 1, f);
  }
  std::fclose(f);
}

// REQ-7 (root): a root login is reported.
TEST(RootLoginCheck, RootLoginFailsOthersOk) {
  TempTree t;
  auto utmp = t.path("utmp");
  write_utmp(utmp, {{"maint", USER_PROCESS}, {"", LOGIN_PROCESS}});
  RootLoginOptions o;
  o.utmp_file = utmp;
  auto r = RootLoginCheck(o).run(no_cancel);
  EXPECT_EQ(r.status, Status::ok) << r.reason;
  EXPECT_EQ(r.values["sessions"], "1");
  write_utmp(utmp, {{"maint", USER_PROCESS}, {"root", USER_PROCESS}});
  r = RootLoginCheck(o).run(no_cancel);
  EXPECT_EQ(r.status, Status::fail);
  EXPECT_NE(r.reason.find("root@pts/1"), std::string::npos) << r.reason;
  o.root_login_fails = false;
  EXPECT_EQ(RootLoginCheck(o).run(no_cancel).status, Status::warn);
}

// REQ-7 (root)
TEST(WritablePathsCheck, WorldWritableSystemPathFails) {
  TempTree t;
  auto etc = t.mkdir("etc");
  chmod(etc.c_str(), 0755);
  WritablePathsOptions o;
  o.paths = {etc, t.path("absent")};
  if (geteuid() == 0) {
    EXPECT_EQ(WritablePathsCheck(o).run(no_cancel).status, Status::ok);
  } else {
    // Not root: the test owns the dir, so the daemon (this process) can write it.
    auto r = WritablePathsCheck(o).run(no_cancel);
    EXPECT_EQ(r.status, Status::fail);
    EXPECT_NE(r.reason.find("writable by the daemon"), std::string::npos);
  }
  chmod(etc.c_str(), 0777);
  auto r = WritablePathsCheck(o).run(no_cancel);
  EXPECT_EQ(r.status, Status::fail);
  EXPECT_NE(r.reason.find(etc + " (world-writable)"), std::string::npos) << r.reason;
}

// REQ-7 (boot)
TEST(KernelLockdownCheck, NoneWarnsIntegrityOkAbsentWarns) {
  TempTree t;
  auto r = KernelLockdownCheck(t.root()).run(no_cancel);
  EXPECT_EQ(r.status, Status::warn);
  EXPECT_NE(r.reason.find("not exposed"), std::string::npos);
  t.write("kernel/security/lockdown", "[none] integrity confidentiality\n");
  EXPECT_EQ(KernelLockdownCheck(t.root()).run(no_cancel).status, Status::warn);
  t.write("kernel/security/lockdown", "none [integrity] confidentiality\n");
  r = KernelLockdownCheck(t.root()).run(no_cancel);
  EXPECT_EQ(r.status, Status::ok);
  EXPECT_EQ(r.values["lockdown"], "integrity");
}

// REQ-7 (boot)
TEST(SecureBootCheck, FifthByteDecides) {
  TempTree t;
  auto r = SecureBootCheck(t.root()).run(no_cancel);
  EXPECT_EQ(r.status, Status::warn);
  EXPECT_NE(r.reason.find("not exposed"), std::string::npos);
  const std::string var = "firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-e0a0ec6c7d3a";
  t.write(var, std::string("\x06\x00\x00\x00\x01", 5));
  r = SecureBootCheck(t.root()).run(no_cancel);
  EXPECT_EQ(r.status, Status::ok);
  EXPECT_EQ(r.values["secure_boot"], "enabled");
  t.write(var, std::string("\x06\x00\x00\x00\x00", 5));
  EXPECT_EQ(SecureBootCheck(t.root()).run(no_cancel).status, Status::warn);
}

// REQ-5 (self-test): Portier's own binary against the installed one
TEST(SelfBinaryCheck, DifferentInstalledBinaryFails) {
  TempTree t;
  auto running = t.write("running", "portierd build 1");
  auto installed = t.write("installed", "portierd build 1");
  EXPECT_EQ(SelfBinaryCheck().run(no_cancel).reason, "not configured");
  SelfBinaryOptions o{running, installed};
  EXPECT_EQ(SelfBinaryCheck(o).run(no_cancel).status, Status::ok);
  t.write("installed", "portierd build 2");
  auto r = SelfBinaryCheck(o).run(no_cancel);
  EXPECT_EQ(r.status, Status::fail);
  EXPECT_NE(r.reason.find(installed), std::string::npos);
  EXPECT_EQ(SelfBinaryCheck(o).severity(), Severity::critical);
  // The real /proc/self/exe reads.
  o.running = "/proc/self/exe";
  o.installed = "/proc/self/exe";
  EXPECT_EQ(SelfBinaryCheck(o).run(no_cancel).status, Status::ok);
}

}  // namespace
}  // namespace portier::health
