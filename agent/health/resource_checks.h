// Resource checks (REQ-7 "CPU, memory"): load, memory and swap, disk space,
// temperature, file descriptors. Every path is rooted at a configurable
// proc_root / sys_root so tests run on fixture trees.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "agent/health/health_check.h"

namespace portier::health {

struct CpuLoadOptions {
  std::string proc_root = "/proc";
  std::optional<unsigned> cores;  // unset: online CPUs
  double warn_per_core = 2.0;     // 1-minute load average per core
  double fail_per_core = 4.0;
};
class CpuLoadCheck : public Check {
 public:
  explicit CpuLoadCheck(CpuLoadOptions o = {}) : o_(std::move(o)) {}
  std::string id() const override { return "cpu_load"; }
  CheckResult run(const std::atomic<bool>& cancel) override;

 private:
  CpuLoadOptions o_;
};

struct MemoryOptions {
  std::string proc_root = "/proc";
  double warn_available_below = 0.15;  // MemAvailable / MemTotal
  double fail_available_below = 0.05;
  double warn_swap_used_above = 0.80;  // (SwapTotal - SwapFree) / SwapTotal
};
class MemoryCheck : public Check {
 public:
  explicit MemoryCheck(MemoryOptions o = {}) : o_(std::move(o)) {}
  std::string id() const override { return "memory"; }
  CheckResult run(const std::atomic<bool>& cancel) override;

 private:
  MemoryOptions o_;
};

struct DiskOptions {
  std::string path = "/var/lib/portier";  // the state dir
  double warn_free_below = 0.10;          // f_bavail / f_blocks
  double fail_free_below = 0.05;
};
class DiskSpaceCheck : public Check {
 public:
  explicit DiskSpaceCheck(DiskOptions o = {}) : o_(std::move(o)) {}
  std::string id() const override { return "disk_space"; }
  CheckResult run(const std::atomic<bool>& cancel) override;

 private:
  DiskOptions o_;
};

struct TemperatureOptions {
  std::string sys_root = "/sys";
  double warn_celsius = 80.0;
  double fail_celsius = 95.0;
};
class TemperatureCheck : public Check {
 public:
  explicit TemperatureCheck(TemperatureOptions o = {}) : o_(std::move(o)) {}
  std::string id() const override { return "temperature"; }
  CheckResult run(const std::atomic<bool>& cancel) override;

 private:
  TemperatureOptions o_;
};

struct FdOptions {
  std::string proc_root = "/proc";
  std::optional<std::uint64_t> limit;  // unset: RLIMIT_NOFILE soft limit
  double warn_used_above = 0.80;
  double fail_used_above = 0.95;
};
class FdUsageCheck : public Check {
 public:
  explicit FdUsageCheck(FdOptions o = {}) : o_(std::move(o)) {}
  std::string id() const override { return "fd_usage"; }
  CheckResult run(const std::atomic<bool>& cancel) override;

 private:
  FdOptions o_;
};

}  // namespace portier::health
