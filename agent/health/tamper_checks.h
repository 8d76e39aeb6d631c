// Root and tamper signs (REQ-7 "root", "boot"): unexpected set-uid/set-gid
// files, unexpected uid-0 processes, root logins, writable system paths,
// kernel lockdown and secure-boot state.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "agent/health/health_check.h"

namespace portier::health {

struct SetuidOptions {
  std::vector<std::string> paths = {"/usr/local/bin", "/usr/local/sbin", "/opt/portier",
                                    "/var/lib/portier"};
  std::set<std::string> allowed;  // absolute paths of expected set-uid/set-gid files
  bool same_filesystem = true;    // do not descend into other mounts
  Severity severity = Severity::critical;
};
class SetuidFilesCheck : public Check {
 public:
  explicit SetuidFilesCheck(SetuidOptions o = {}) : o_(std::move(o)) {}
  std::string id() const override { return "setuid_files"; }
  Severity severity() const override { return o_.severity; }
  CheckResult run(const std::atomic<bool>& cancel) override;

 private:
  SetuidOptions o_;
};

struct RootProcessOptions {
  std::string proc_root = "/proc";
  // A uid-0 process is expected when its executable path (/proc/PID/exe) or,
  // when that cannot be read, its Name: is listed here. Kernel threads are
  // always expected.
  std::set<std::string> allowed;
  Severity severity = Severity::critical;
};
class RootProcessCheck : public Check {
 public:
  explicit RootProcessCheck(RootProcessOptions o = {}) : o_(std::move(o)) {}
  std::string id() const override { return "root_processes"; }
  Severity severity() const override { return o_.severity; }
  CheckResult run(const std::atomic<bool>& cancel) override;

 private:
  RootProcessOptions o_;
};

struct RootLoginOptions {
  std::string utmp_file;         // empty: the system's (/run/utmp)
  bool root_login_fails = true;  // false: warn
  Severity severity = Severity::critical;
};
class RootLoginCheck : public Check {
 public:
  explicit RootLoginCheck(RootLoginOptions o = {}) : o_(std::move(o)) {}
  std::string id() const override { return "root_login"; }
  Severity severity() const override { return o_.severity; }
  CheckResult run(const std::atomic<bool>& cancel) override;

 private:
  RootLoginOptions o_;
};

struct WritablePathsOptions {
  std::vector<std::string> paths = {"/etc",      "/etc/portier", "/usr/bin",
                                    "/usr/sbin", "/usr/lib",     "/boot"};
  Severity severity = Severity::critical;
};
// Fails when a path is world-writable, or writable by the daemon itself
// (access(W_OK); skipped when the daemon runs as root, which may write all).
class WritablePathsCheck : public Check {
 public:
  explicit WritablePathsCheck(WritablePathsOptions o = {}) : o_(std::move(o)) {}
  std::string id() const override { return "writable_paths"; }
  Severity severity() const override { return o_.severity; }
  CheckResult run(const std::atomic<bool>& cancel) override;

 private:
  WritablePathsOptions o_;
};

// /sys/kernel/security/lockdown: "[none]" → warn; absent → warn "not exposed".
class KernelLockdownCheck : public Check {
 public:
  explicit KernelLockdownCheck(std::string sys_root = "/sys") : sys_root_(std::move(sys_root)) {}
  std::string id() const override { return "kernel_lockdown"; }
  CheckResult run(const std::atomic<bool>& cancel) override;

 private:
  std::string sys_root_;
};

// efivars SecureBoot-8be4df61-93ca-11d2-aa0d-e0a0ec6c7d3a, 5th byte (after
// the 4 attribute bytes): 1 → ok, 0 → warn "disabled"; absent → warn.
class SecureBootCheck : public Check {
 public:
  explicit SecureBootCheck(std::string sys_root = "/sys") : sys_root_(std::move(sys_root)) {}
  std::string id() const override { return "secure_boot"; }
  CheckResult run(const std::atomic<bool>& cancel) override;

 private:
  std::string sys_root_;
};

}  // namespace portier::health
