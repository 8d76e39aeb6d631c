#include "agent/health/resource_checks.h"

#include <dirent.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "common/file_read.h"

namespace portier::health {
namespace {

std::string fmt(double v, int prec = 2) {
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", prec, v);
  return b;
}

std::string pct(double ratio) { return fmt(ratio * 100.0, 1) + "%"; }

}  // namespace

CheckResult CpuLoadCheck::run(const std::atomic<bool>&) {
  std::string text;
  auto path = o_.proc_root + "/loadavg";
  if (read_small_file(path, text) != 0)
    return CheckResult::fail("cannot read " + path + ": " + std::strerror(errno));
  double l1 = 0, l5 = 0, l15 = 0;
  if (std::sscanf(text.c_str(), "%lf %lf %lf", &l1, &l5, &l15) != 3)
    return CheckResult::fail("cannot parse " + path);
  long online = sysconf(_SC_NPROCESSORS_ONLN);
  unsigned cores = o_.cores.value_or(online > 0 ? static_cast<unsigned>(online) : 1);
  if (cores == 0) cores = 1;
  double per_core = l1 / cores;
  CheckResult r;
  r.values = {{"load1", fmt(l1)},
              {"load5", fmt(l5)},
              {"load15", fmt(l15)},
              {"cores", std::to_string(cores)},
              {"load_per_core", fmt(per_core)}};
  auto what = "1-minute load " + fmt(l1) + " on " + std::to_string(cores) + " cores (" +
              fmt(per_core) + " per core)";
  if (per_core >= o_.fail_per_core) {
    r.status = CheckResult::Status::fail;
    r.reason = what + " is at or above the fail threshold " + fmt(o_.fail_per_core) +
               ": find the busy process (top) and stop or restart it";
  } else if (per_core >= o_.warn_per_core) {
    r.status = CheckResult::Status::warn;
    r.reason = what + " is at or above the warn threshold " + fmt(o_.warn_per_core) +
               ": look for a busy process (top)";
  } else {
    r.reason = what;
  }
  return r;
}

CheckResult MemoryCheck::run(const std::atomic<bool>&) {
  std::string text;
  auto path = o_.proc_root + "/meminfo";
  if (read_small_file(path, text) != 0)
    return CheckResult::fail("cannot read " + path + ": " + std::strerror(errno));
  std::map<std::string, unsigned long long> kb;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    kb[line.substr(0, colon)] = std::strtoull(line.c_str() + colon + 1, nullptr, 10);
  }
  if (!kb.count("MemTotal") || kb["MemTotal"] == 0 || !kb.count("MemAvailable"))
    return CheckResult::fail(path + " has no MemTotal/MemAvailable (kernel older than 3.14?)");
  double avail = double(kb["MemAvailable"]) / double(kb["MemTotal"]);
  CheckResult r;
  r.values = {{"mem_total_kb", std::to_string(kb["MemTotal"])},
              {"mem_available_kb", std::to_string(kb["MemAvailable"])},
              {"mem_available_ratio", fmt(avail, 3)},
              {"swap_total_kb", std::to_string(kb["SwapTotal"])},
              {"swap_free_kb", std::to_string(kb["SwapFree"])}};
  double swap_used = 0;
  if (kb["SwapTotal"] > 0) {
    swap_used = double(kb["SwapTotal"] - std::min(kb["SwapFree"], kb["SwapTotal"])) /
                double(kb["SwapTotal"]);
    r.values["swap_used_ratio"] = fmt(swap_used, 3);
  }
  if (avail < o_.fail_available_below) {
    r.status = CheckResult::Status::fail;
    r.reason = "only " + pct(avail) + " of memory available (fail below " +
               pct(o_.fail_available_below) + "): find the process using memory and restart it";
  } else if (avail < o_.warn_available_below) {
    r.status = CheckResult::Status::warn;
    r.reason = "only " + pct(avail) + " of memory available (warn below " +
               pct(o_.warn_available_below) + ")";
  } else if (kb["SwapTotal"] > 0 && swap_used > o_.warn_swap_used_above) {
    r.status = CheckResult::Status::warn;
    r.reason = pct(swap_used) + " of swap in use (warn above " + pct(o_.warn_swap_used_above) +
               "): the terminal is short of memory";
  } else {
    r.reason = pct(avail) + " of memory available";
  }
  return r;
}

CheckResult DiskSpaceCheck::run(const std::atomic<bool>&) {
  struct statvfs st {};
  if (statvfs(o_.path.c_str(), &st) != 0)
    return CheckResult::fail("cannot stat the file system of " + o_.path + ": " +
                             std::strerror(errno) + " (does the directory exist?)");
  if (st.f_blocks == 0)
    return CheckResult::fail("file system of " + o_.path + " reports no blocks");
  double free_ratio = double(st.f_bavail) / double(st.f_blocks);
  unsigned long long free_bytes = (unsigned long long)st.f_bavail * st.f_frsize;
  CheckResult r;
  r.values = {{"path", o_.path},
              {"free_bytes", std::to_string(free_bytes)},
              {"free_ratio", fmt(free_ratio, 3)},
              {"free_inodes", std::to_string(st.f_favail)}};
  if (free_ratio < o_.fail_free_below) {
    r.status = CheckResult::Status::fail;
    r.reason = "only " + pct(free_ratio) + " free on the file system of " + o_.path +
               " (fail below " + pct(o_.fail_free_below) +
               "): free space (old logs, outbox) before writes fail";
  } else if (free_ratio < o_.warn_free_below) {
    r.status = CheckResult::Status::warn;
    r.reason = "only " + pct(free_ratio) + " free on the file system of " + o_.path +
               " (warn below " + pct(o_.warn_free_below) + ")";
  } else {
    r.reason = pct(free_ratio) + " free on the file system of " + o_.path;
  }
  return r;
}

CheckResult TemperatureCheck::run(const std::atomic<bool>&) {
  auto dir = o_.sys_root + "/class/thermal";
  CheckResult r;
  double max_c = -1000;
  std::string max_zone;
  int zones = 0;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* de = readdir(d)) {
      if (std::strncmp(de->d_name, "thermal_zone", 12) != 0) continue;
      std::string text;
      if (read_small_file(dir + "/" + de->d_name + "/temp", text) != 0) continue;
      char* end = nullptr;
      long milli = std::strtol(text.c_str(), &end, 10);
      if (end == text.c_str()) continue;
      double c = milli / 1000.0;
      ++zones;
      r.values[std::string(de->d_name) + "_celsius"] = fmt(c, 1);
      if (c > max_c) {
        max_c = c;
        max_zone = de->d_name;
      }
    }
    closedir(d);
  }
  if (zones == 0) {
    r.values["max_celsius"] = "n/a";
    r.reason = "the kernel exposes no thermal zone";
    return r;
  }
  r.values["max_celsius"] = fmt(max_c, 1);
  auto what = max_zone + " at " + fmt(max_c, 1) + " °C";
  if (max_c >= o_.fail_celsius) {
    r.status = CheckResult::Status::fail;
    r.reason = what + " (fail at " + fmt(o_.fail_celsius, 1) +
               " °C): check the fan and the ventilation of the enclosure";
  } else if (max_c >= o_.warn_celsius) {
    r.status = CheckResult::Status::warn;
    r.reason =
        what + " (warn at " + fmt(o_.warn_celsius, 1) + " °C): check the fan and the ventilation";
  } else {
    r.reason = what;
  }
  return r;
}

CheckResult FdUsageCheck::run(const std::atomic<bool>&) {
  auto dir = o_.proc_root + "/self/fd";
  DIR* d = opendir(dir.c_str());
  if (!d) return CheckResult::fail("cannot list " + dir + ": " + std::strerror(errno));
  // On the real /proc, the listing's own descriptor shows up: not counted.
  std::string own = o_.proc_root == "/proc" ? std::to_string(dirfd(d)) : std::string();
  std::uint64_t n = 0;
  while (dirent* de = readdir(d))
    if (de->d_name[0] != '.' && own != de->d_name) ++n;
  closedir(d);
  std::uint64_t limit = 0;
  if (o_.limit) {
    limit = *o_.limit;
  } else {
    rlimit rl{};
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
      return CheckResult::fail(std::string("getrlimit: ") + std::strerror(errno));
    limit = rl.rlim_cur == RLIM_INFINITY ? 0 : rl.rlim_cur;
  }
  CheckResult r;
  r.values = {{"open_fds", std::to_string(n)},
              {"limit", limit ? std::to_string(limit) : "unlimited"}};
  if (limit == 0) {
    r.reason = std::to_string(n) + " descriptors open, no limit";
    return r;
  }
  double used = double(n) / double(limit);
  r.values["used_ratio"] = fmt(used, 3);
  auto what = std::to_string(n) + " of " + std::to_string(limit) + " file descriptors in use (" +
              pct(used) + ")";
  if (used > o_.fail_used_above) {
    r.status = CheckResult::Status::fail;
    r.reason = what + ": Portier is leaking descriptors, restart it and report the bug";
  } else if (used > o_.warn_used_above) {
    r.status = CheckResult::Status::warn;
    r.reason = what + ": close to the limit";
  } else {
    r.reason = what;
  }
  return r;
}

}  // namespace portier::health
