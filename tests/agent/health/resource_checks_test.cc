#include "agent/health/resource_checks.h"

#include <gtest/gtest.h>

#include "agent/health/temp_tree.h"

namespace portier::health {
namespace {

using Status = CheckResult::Status;
using testing::TempTree;
std::atomic<bool> no_cancel{false};

// REQ-7 (CPU)
TEST(CpuLoadCheck, ThresholdsPerCoreGiveOkWarnFail) {
  TempTree t;
  CpuLoadOptions o;
  o.proc_root = t.root();
  o.cores = 4;
  t.write("loadavg", "0.50 0.40 0.30 1/100 123\n");
  auto r = CpuLoadCheck(o).run(no_cancel);
  EXPECT_EQ(r.status, Status::ok);
  EXPECT_EQ(r.values["load1"], "0.50");
  EXPECT_EQ(r.values["cores"], "4");
  t.write("loadavg", "9.00 4.00 3.00 1/100 123\n");
  r = CpuLoadCheck(o).run(no_cancel);
  EXPECT_EQ(r.status, Status::warn);
  EXPECT_NE(r.reason.find("2.25 per core"), std::string::npos) << r.reason;
  t.write("loadavg", "20.00 4.00 3.00 1/100 123\n");
  r = CpuLoadCheck(o).run(no_cancel);
  EXPECT_EQ(r.status, Status::fail);
  EXPECT_NE(r.reason.find("top"), std::string::npos);
}

// REQ-7 (CPU): an unreadable source is a fail naming the file.
TEST(CpuLoadCheck, MissingLoadavgFails) {
  TempTree t;
  CpuLoadOptions o;
  o.proc_root = t.root();
  auto r = CpuLoadCheck(o).run(no_cancel);
  EXPECT_EQ(r.status, Status::fail);
  EXPECT_NE(r.reason.find("loadavg"), std::string::npos);
}

std::string meminfo(long total, long avail, long swap_total, long swap_free) {
  return "MemTotal:       " + std::to_string(total) +
         " kB\nMemFree:  1000 kB\nMemAvailable:   " + std::to_string(avail) +
         " kB\nSwapTotal:      " + std::to_string(swap_total) +
         " kB\nSwapFree:       " + std::to_string(swap_free) + " kB\n";
}

// REQ-7 (memory)
TEST(MemoryCheck, AvailableRatioAndSwapGiveOkWarnFail) {
  TempTree t;
  MemoryOptions o;
  o.proc_root = t.root();
  t.write("meminfo", meminfo(1000000, 500000, 0, 0));
  auto r = MemoryCheck(o).run(no_cancel);
  EXPECT_EQ(r.status, Status::ok) << r.reason;
  EXPECT_EQ(r.values["mem_available_ratio"], "0.500");
  t.write("meminfo", meminfo(1000000, 100000, 0, 0));
  r = MemoryCheck(o).run(no_cancel);
  EXPECT_EQ(r.status, Status::warn);
  EXPECT_NE(r.reason.find("10.0%"), std::string::npos) << r.reason;
  t.write("meminfo", meminfo(1000000, 20000, 0, 0));
  EXPECT_EQ(MemoryCheck(o).run(no_cancel).status, Status::fail);
  t.write("meminfo", meminfo(1000000, 500000, 1000, 100));
  r = MemoryCheck(o).run(no_cancel);
  EXPECT_EQ(r.status, Status::warn);
  EXPECT_NE(r.reason.find("swap"), std::string::npos);
}

// REQ-7 (memory): garbage input is a fail, not a crash.
TEST(MemoryCheck, MalformedMeminfoFails) {
  TempTree t;
  MemoryOptions o;
  o.proc_root = t.root();
  t.write("meminfo", "nonsense\n\x01\x02");
  EXPECT_EQ(MemoryCheck(o).run(no_cancel).status, Status::fail);
}

// REQ-7: disk space of the state dir
TEST(DiskSpaceCheck, ThresholdsAndMissingDir) {
  TempTree t;
  DiskOptions o;
  o.path = t.root();
  o.warn_free_below = 0;
  o.fail_free_below = 0;
  auto r = DiskSpaceCheck(o).run(no_cancel);
  EXPECT_EQ(r.status, Status::ok) << r.reason;
  EXPECT_FALSE(r.values["free_bytes"].empty());
  o.warn_free_below = 1.01;  // every file system has less than 101% free
  EXPECT_EQ(DiskSpaceCheck(o).run(no_cancel).status, Status::warn);
  o.fail_free_below = 1.01;
  EXPECT_EQ(DiskSpaceCheck(o).run(no_cancel).status, Status::fail);
  o.path = t.path("absent");
  r = DiskSpaceCheck(o).run(no_cancel);
  EXPECT_EQ(r.status, Status::fail);
  EXPECT_NE(r.reason.find("absent"), std::string::npos);
}

// REQ-7
TEST(TemperatureCheck, NoZoneIsOkNaAndHottestZoneDecides) {
  TempTree t;
  TemperatureOptions o;
  o.sys_root = t.root();
  auto r = TemperatureCheck(o).run(no_cancel);
  EXPECT_EQ(r.status, Status::ok);
  EXPECT_EQ(r.values["max_celsius"], "n/a");
  t.write("class/thermal/thermal_zone0/temp", "45000\n");
  t.write("class/thermal/thermal_zone1/temp", "52500\n");
  r = TemperatureCheck(o).run(no_cancel);
  EXPECT_EQ(r.status, Status::ok);
  EXPECT_EQ(r.values["max_celsius"], "52.5");
  t.write("class/thermal/thermal_zone1/temp", "85000\n");
  EXPECT_EQ(TemperatureCheck(o).run(no_cancel).status, Status::warn);
  t.write("class/thermal/thermal_zone1/temp", "99000\n");
  r = TemperatureCheck(o).run(no_cancel);
  EXPECT_EQ(r.status, Status::fail);
  EXPECT_NE(r.reason.find("thermal_zone1"), std::string::npos);
}

// REQ-7
TEST(FdUsageCheck, CountsAgainstTheLimit) {
  TempTree t;
  FdOptions o;
  o.proc_root = t.root();
  o.limit = 10;
  for (int i = 0; i < 5; ++i) t.write("self/fd/" + std::to_string(i), "");
  auto r = FdUsageCheck(o).run(no_cancel);
  EXPECT_EQ(r.status, Status::ok);
  EXPECT_EQ(r.values["open_fds"], "5");
  for (int i = 5; i < 9; ++i) t.write("self/fd/" + std::to_string(i), "");
  EXPECT_EQ(FdUsageCheck(o).run(no_cancel).status, Status::warn);
  t.write("self/fd/9", "");
  EXPECT_EQ(FdUsageCheck(o).run(no_cancel).status, Status::fail);
}

// REQ-7: on this machine's real /proc, with the real limit.
TEST(FdUsageCheck, RealProcessIsOk) {
  auto r = FdUsageCheck().run(no_cancel);
  EXPECT_EQ(r.status, Status::ok) << r.reason;
}

}  // namespace
}  // namespace portier::health
