#include "agent/health/tamper_checks.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utmpx.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <sstream>

#include "common/file_read.h"

namespace portier::health {
namespace {

std::string join(const std::vector<std::string>& v, size_t max = 10) {
  std::string s;
  for (size_t i = 0; i < v.size() && i < max; ++i) s += (s.empty() ? "" : ", ") + v[i];
  if (v.size() > max) s += ", ... (" + std::to_string(v.size() - max) + " more)";
  return s;
}

// Depth-first walk with lstat: never follows symlinks.
void walk(const std::string& dir, dev_t dev, bool same_fs, const std::atomic<bool>& cancel,
          const std::set<std::string>& allowed, std::vector<std::string>& found, size_t& scanned,
          int depth) {
  if (depth > 32 || cancel) return;
  DIR* d = opendir(dir.c_str());
  if (!d) return;
  int dfd = dirfd(d);
  while (dirent* de = readdir(d)) {
    if (cancel) break;
    if (!std::strcmp(de->d_name, ".") || !std::strcmp(de->d_name, "..")) continue;
    struct stat st {};
    if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    std::string path = dir == "/" ? "/" + std::string(de->d_name) : dir + "/" + de->d_name;
    ++scanned;
    if (S_ISDIR(st.st_mode)) {
      if (!same_fs || st.st_dev == dev)
        walk(path, dev, same_fs, cancel, allowed, found, scanned, depth + 1);
    } else if (S_ISREG(st.st_mode) && (st.st_mode & (S_ISUID | S_ISGID))) {
      if (!allowed.count(path))
        found.push_back(path + ((st.st_mode & S_ISUID) ? " (set-uid)" : " (set-gid)"));
    }
  }
  closedir(d);
}

}  // namespace

CheckResult SetuidFilesCheck::run(const std::atomic<bool>& cancel) {
  std::vector<std::string> found;
  size_t scanned = 0;
  for (const auto& p : o_.paths) {
    struct stat st {};
    if (lstat(p.c_str(), &st) != 0) continue;  // an absent path has no set-uid file
    if (S_ISREG(st.st_mode)) {
      ++scanned;
      if ((st.st_mode & (S_ISUID | S_ISGID)) && !o_.allowed.count(p)) found.push_back(p);
      continue;
    }
    walk(p, st.st_dev, o_.same_filesystem, cancel, o_.allowed, found, scanned, 0);
  }
  CheckResult r;
  r.values = {{"scanned", std::to_string(scanned)}, {"unexpected", std::to_string(found.size())}};
  if (!found.empty()) {
    r.status = CheckResult::Status::fail;
    r.reason = "unexpected set-uid/set-gid file: " + join(found) +
               ": a privilege-escalation sign; remove the bit, or add the file to the allow-list "
               "if it is authorised";
  } else {
    r.reason = "no unexpected set-uid/set-gid file in " + std::to_string(scanned) + " entries";
  }
  return r;
}

CheckResult RootProcessCheck::run(const std::atomic<bool>& cancel) {
  DIR* d = opendir(o_.proc_root.c_str());
  if (!d) return CheckResult::fail("cannot list " + o_.proc_root + ": " + std::strerror(errno));
  std::vector<std::string> unexpected;
  int root_procs = 0;
  while (dirent* de = readdir(d)) {
    if (cancel) break;
    if (!std::isdigit(static_cast<unsigned char>(de->d_name[0]))) continue;
    std::string base = o_.proc_root + "/" + de->d_name;
    std::string status;
    if (read_small_file(base + "/status", status) != 0) continue;  // gone meanwhile
    std::istringstream in(status);
    std::string line, name;
    long ruid = -1, euid = -1, ppid = -1;
    bool kthread = false;
    while (std::getline(in, line)) {
      if (line.rfind("Name:", 0) == 0) {
        name = line.substr(5);
        name.erase(0, name.find_first_not_of(" \t"));
      } else if (line.rfind("Uid:", 0) == 0) {
        std::istringstream ls(line.substr(4));
        ls >> ruid >> euid;
      } else if (line.rfind("PPid:", 0) == 0) {
        ppid = std::strtol(line.c_str() + 5, nullptr, 10);
      } else if (line.rfind("Kthread:", 0) == 0) {
        kthread = std::strtol(line.c_str() + 8, nullptr, 10) == 1;
      }
    }
    if (ruid != 0 && euid != 0) continue;
    std::string pid = de->d_name;
    if (kthread || ppid == 2 || pid == "2") continue;  // kernel threads
    ++root_procs;
    char buf[4096];
    ssize_t n = readlink((base + "/exe").c_str(), buf, sizeof buf - 1);
    std::string exe = n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
    if (exe.size() > 10 && exe.compare(exe.size() - 10, 10, " (deleted)") == 0) {
      unexpected.push_back(pid + " " + exe + " (binary deleted while running)");
      continue;
    }
    if ((!exe.empty() && o_.allowed.count(exe)) || (exe.empty() && o_.allowed.count(name)))
      continue;
    unexpected.push_back(pid + " " + (exe.empty() ? name : exe));
  }
  closedir(d);
  CheckResult r;
  r.values = {{"root_processes", std::to_string(root_procs)},
              {"unexpected", std::to_string(unexpected.size())}};
  if (!unexpected.empty()) {
    r.status = CheckResult::Status::fail;
    r.reason =
        "unexpected process running as root: " + join(unexpected) +
        ": a root sign; investigate, or add the executable to the allow-list if it is authorised";
  } else {
    r.reason = std::to_string(root_procs) + " root processes, all expected";
  }
  return r;
}

CheckResult RootLoginCheck::run(const std::atomic<bool>&) {
  // getutxent and utmpxname keep process-wide state.
  static std::mutex mu;
  std::lock_guard lk(mu);
  if (!o_.utmp_file.empty()) {
    if (access(o_.utmp_file.c_str(), R_OK) != 0)
      return CheckResult::fail("cannot read " + o_.utmp_file + ": " + std::strerror(errno));
    utmpxname(o_.utmp_file.c_str());
  }
  setutxent();
  std::vector<std::string> root, users;
  while (utmpx* u = getutxent()) {
    if (u->ut_type != USER_PROCESS) continue;
    std::string user(u->ut_user, strnlen(u->ut_user, sizeof u->ut_user));
    std::string line(u->ut_line, strnlen(u->ut_line, sizeof u->ut_line));
    std::string host(u->ut_host, strnlen(u->ut_host, sizeof u->ut_host));
    auto who = user + "@" + line + (host.empty() ? "" : " from " + host);
    users.push_back(who);
    if (user == "root") root.push_back(who);
  }
  endutxent();
  if (!o_.utmp_file.empty()) utmpxname(_PATH_UTMPX);
  CheckResult r;
  r.values = {{"sessions", std::to_string(users.size())}, {"users", join(users)}};
  if (!root.empty()) {
    r.status = o_.root_login_fails ? CheckResult::Status::fail : CheckResult::Status::warn;
    r.reason = "root is logged in: " + join(root) +
               ": confirm it is authorised maintenance, else treat as tampering";
  } else {
    r.reason = users.empty() ? "no login session"
                             : std::to_string(users.size()) + " login sessions, none as root";
  }
  return r;
}

CheckResult WritablePathsCheck::run(const std::atomic<bool>&) {
  std::vector<std::string> bad;
  bool root = geteuid() == 0;
  for (const auto& p : o_.paths) {
    struct stat st {};
    if (stat(p.c_str(), &st) != 0) continue;
    if (st.st_mode & S_IWOTH)
      bad.push_back(p + " (world-writable)");
    else if (!root && access(p.c_str(), W_OK) == 0)
      bad.push_back(p + " (writable by the daemon, uid " + std::to_string(geteuid()) + ")");
  }
  CheckResult r;
  r.values = {{"checked", std::to_string(o_.paths.size())},
              {"daemon_is_root", root ? "yes" : "no"}};
  if (!bad.empty()) {
    r.status = CheckResult::Status::fail;
    r.reason = "system path writable: " + join(bad) +
               ": restore the permissions (chmod o-w) and look for what changed them";
  } else {
    r.reason = "no configured system path is writable";
  }
  return r;
}

CheckResult KernelLockdownCheck::run(const std::atomic<bool>&) {
  std::string text;
  auto path = sys_root_ + "/kernel/security/lockdown";
  CheckResult r;
  if (read_small_file(path, text) != 0) {
    r.status = CheckResult::Status::warn;
    r.values["lockdown"] = "n/a";
    r.reason =
        "kernel lockdown not exposed (" + path + " absent): boot a kernel with lockdown support";
    return r;
  }
  auto a = text.find('['), b = text.find(']');
  std::string mode = a != std::string::npos && b != std::string::npos && b > a
                         ? text.substr(a + 1, b - a - 1)
                         : "unknown";
  r.values["lockdown"] = mode;
  if (mode == "none") {
    r.status = CheckResult::Status::warn;
    r.reason = "kernel lockdown is off ([none]): boot with lockdown=integrity";
  } else if (mode == "unknown") {
    r.status = CheckResult::Status::warn;
    r.reason = "cannot parse " + path;
  } else {
    r.reason = "kernel lockdown: " + mode;
  }
  return r;
}

CheckResult SecureBootCheck::run(const std::atomic<bool>&) {
  auto path = sys_root_ + "/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-e0a0ec6c7d3a";
  std::string data;
  CheckResult r;
  if (read_small_file(path, data) != 0 || data.size() < 5) {
    r.status = CheckResult::Status::warn;
    r.values["secure_boot"] = "n/a";
    r.reason =
        "secure boot state not exposed (no EFI SecureBoot variable): legacy boot or efivarfs not "
        "mounted";
    return r;
  }
  auto v = static_cast<unsigned char>(data[4]);
  r.values["secure_boot"] = v == 1 ? "enabled" : "disabled";
  if (v == 1) {
    r.reason = "secure boot enabled";
  } else {
    r.status = CheckResult::Status::warn;
    r.reason = "secure boot is disabled: enable it in the firmware setup";
  }
  return r;
}

}  // namespace portier::health
