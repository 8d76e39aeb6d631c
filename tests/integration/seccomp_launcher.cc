// Runs a program the way portierd.service's sandbox would, where systemd is
// not PID 1 (CI): a seccomp filter built from the unit's SystemCallFilter=
// (denied calls fail with EPERM, as SystemCallErrorNumber=EPERM), NoNewPrivs,
// a umask, and optionally another user keeping one ambient capability
// (User=, AmbientCapabilities=, CapabilityBoundingSet=). The test computes
// the syscall lists from `systemd-analyze syscall-filter`; this program only
// applies them, then execs.
//
//   seccomp_launcher [--allow a,b,..] [--deny c,d,..] [--deny-rlimit-raise]
//                    [--nofile N] [--umask 0077] [--user UID:GID]
//                    [--keep-cap N] -- PROGRAM ARGS...
//
// --allow: only these calls are allowed (an allow list, like
//   SystemCallFilter=@system-service), minus --deny; without --allow every
//   call is allowed but those of --deny.
// --deny-rlimit-raise: prlimit64/setrlimit with a new limit fail with EPERM.
//   Stricter than systemd (whose @resources holds setrlimit, while glibc
//   calls prlimit64, which is in @default): shows portierd copes when it
//   cannot raise RLIMIT_NOFILE.
// --nofile: the RLIMIT_NOFILE soft limit to start with.
// --keep-cap: the one capability (number) left in the bounding set and kept
//   as ambient across --user.
#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <seccomp.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace {

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "seccomp_launcher: %s: %s\n", what.c_str(), std::strerror(errno));
  std::exit(126);
}

std::set<std::string> split(const std::string& list) {
  std::set<std::string> out;
  std::stringstream ss(list);
  for (std::string item; std::getline(ss, item, ',');) {
    if (!item.empty()) out.insert(item);
  }
  return out;
}

// Names of other ABIs (chown32, setuid32) do not resolve on this one: skipped.
int resolve(const std::string& name) { return seccomp_syscall_resolve_name(name.c_str()); }

void install_filter(bool allow_list, const std::set<std::string>& allow,
                    const std::set<std::string>& deny, bool deny_rlimit_raise) {
  scmp_filter_ctx ctx = seccomp_init(allow_list ? SCMP_ACT_ERRNO(EPERM) : SCMP_ACT_ALLOW);
  if (!ctx) die("seccomp_init");
  auto add = [&](uint32_t action, int nr, unsigned argc = 0, scmp_arg_cmp cmp = {}) {
    int rc =
        argc ? seccomp_rule_add(ctx, action, nr, 1, cmp) : seccomp_rule_add(ctx, action, nr, 0);
    if (rc != 0) {
      errno = -rc;
      char* name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
      die(std::string("seccomp_rule_add ") + (name ? name : "?"));
    }
  };
  const int prlimit = resolve("prlimit64");
  const int setrlimit = resolve("setrlimit");
  if (allow_list) {
    for (const auto& name : allow) {
      int nr = resolve(name);
      if (nr == __NR_SCMP_ERROR || deny.count(name)) continue;
      if (deny_rlimit_raise && nr == setrlimit) continue;
      if (deny_rlimit_raise && nr == prlimit) {
        add(SCMP_ACT_ALLOW, nr, 1, SCMP_A2(SCMP_CMP_EQ, 0));  // reading only
        continue;
      }
      add(SCMP_ACT_ALLOW, nr);
    }
  } else {
    for (const auto& name : deny) {
      int nr = resolve(name);
      if (nr == __NR_SCMP_ERROR) continue;
      if (deny_rlimit_raise && (nr == prlimit || nr == setrlimit)) continue;  // added below
      add(SCMP_ACT_ERRNO(EPERM), nr);
    }
    if (deny_rlimit_raise) {
      add(SCMP_ACT_ERRNO(EPERM), setrlimit);
      add(SCMP_ACT_ERRNO(EPERM), prlimit, 1, SCMP_A2(SCMP_CMP_NE, 0));
    }
  }
  if (seccomp_load(ctx) != 0) die("seccomp_load");
  seccomp_release(ctx);
}

void cap_set(int cap) {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2]{};
  if (cap >= 0) {
    data[cap / 32].permitted = data[cap / 32].effective = data[cap / 32].inheritable =
        1u << (cap % 32);
  }
  if (syscall(SYS_capset, &header, data) != 0) die("capset");
}

}  // namespace

int main(int argc, char** argv) {
  std::set<std::string> allow, deny;
  bool allow_list = false, deny_rlimit_raise = false;
  long nofile = -1, keep_cap = -1;
  mode_t mask = 0077;
  long uid = -1, gid = -1;
  int i = 1;
  for (; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "seccomp_launcher: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--") {
      ++i;
      break;
    } else if (a == "--allow") {
      allow_list = true;
      allow = split(value());
    } else if (a == "--deny") {
      deny = split(value());
    } else if (a == "--deny-rlimit-raise") {
      deny_rlimit_raise = true;
    } else if (a == "--nofile") {
      nofile = std::stol(value());
    } else if (a == "--umask") {
      mask = static_cast<mode_t>(std::stoul(value(), nullptr, 8));
    } else if (a == "--user") {
      auto v = value();
      uid = std::stol(v);
      gid = std::stol(v.substr(v.find(':') + 1));
    } else if (a == "--keep-cap") {
      keep_cap = std::stol(value());
    } else {
      std::fprintf(stderr, "seccomp_launcher: unknown option %s\n", a.c_str());
      return 2;
    }
  }
  if (i >= argc) {
    std::fprintf(stderr, "seccomp_launcher: no program after --\n");
    return 2;
  }
  if (nofile >= 0) {
    rlimit rl{};
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = static_cast<rlim_t>(nofile);
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) die("setrlimit");
  }
  ::umask(mask);
  if (keep_cap >= 0) {  // CapabilityBoundingSet=: drop the rest while still privileged
    for (int c = 0; prctl(PR_CAPBSET_READ, c) >= 0; ++c) {
      if (c != keep_cap && prctl(PR_CAPBSET_DROP, c) != 0) die("PR_CAPBSET_DROP");
    }
  }
  if (uid >= 0) {  // User=, Group=, keeping the capability (AmbientCapabilities=)
    if (keep_cap >= 0 && prctl(PR_SET_KEEPCAPS, 1) != 0) die("PR_SET_KEEPCAPS");
    gid_t g = static_cast<gid_t>(gid);
    if (setgroups(1, &g) != 0 || setresgid(g, g, g) != 0) die("setresgid");
    uid_t u = static_cast<uid_t>(uid);
    if (setresuid(u, u, u) != 0) die("setresuid");
    if (keep_cap >= 0) {
      cap_set(static_cast<int>(keep_cap));
      if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, keep_cap, 0, 0) != 0) die("ambient");
    }
  }
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) die("PR_SET_NO_NEW_PRIVS");
  install_filter(allow_list, allow, deny, deny_rlimit_raise);
  execv(argv[i], argv + i);
  die(std::string("exec ") + argv[i]);
}
