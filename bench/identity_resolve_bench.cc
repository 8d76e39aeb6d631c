// What identifying a caller costs portierd, in process (no daemon): the
// bench links the gateway library and calls its own functions on accepted
// connections of a Unix socket in a private temp dir. Each peer is a child
// process that connects and then exec()s a copy of /bin/sleep (the inherited
// socket keeps the connection; the pid and the executable are the sleep's),
// so the identity is that of an ordinary program.
//
//   - resolve_peer(fd), uncached: the first resolution of an executable (a
//     fresh copy of /bin/sleep per sample, so the digest cache misses; the
//     copies are kept until the end, so no inode number comes back);
//   - resolve_peer(fd), cached: a new process of the same copy each sample;
//   - verify_peer(identity), the re-check made on every call, --calls times
//     in a loop on one live peer: p50 of each call and CPU per call
//     (getrusage RUSAGE_THREAD around the loop).
//
// Baseline: one getsockopt(SO_PEERCRED) on the same connection, measured
// the same way (p50 and CPU per call).
//
// usage: identity_resolve_bench [--samples N] [--calls N]
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "daemon_launcher.h"
#include "latency_summary.h"
#include "peer_identity.h"

namespace {

using namespace portier;
using namespace portier::bench;

constexpr const char* kProgram = "identity_resolve_bench";
constexpr const char* kPeerProgram = "/bin/sleep";
constexpr int kUncachedWarmup = 5;

struct Options {
  int samples = 200;  // resolutions, uncached and cached each
  int calls = 20000;  // verify_peer and SO_PEERCRED calls
};

std::string errno_text() { return std::strerror(errno); }

// A Unix socket listening in the temp dir.
class Listener {
 public:
  explicit Listener(const std::string& path) : path_(path) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr = address();
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::listen(fd_, 16) != 0) {
      throw std::runtime_error("listen on " + path + ": " + errno_text());
    }
  }
  ~Listener() {
    if (fd_ >= 0) ::close(fd_);
  }
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;
  int fd() const { return fd_; }
  sockaddr_un address() const {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path_.c_str(), sizeof(addr.sun_path) - 1);
    return addr;
  }

 private:
  std::string path_;
  int fd_ = -1;
};

// A child that connected to the listener and then became `exe` ("sleep 60"),
// and the server side of its connection.
class Peer {
 public:
  Peer(const Listener& listener, const std::string& exe) {
    int ready[2];  // closed by the exec (O_CLOEXEC): EOF = the child runs `exe`
    if (pipe2(ready, O_CLOEXEC) != 0) throw std::runtime_error("pipe: " + errno_text());
    const sockaddr_un addr = listener.address();
    const char* args[] = {"sleep", "60", nullptr};
    const pid_t parent = getpid();
    pid_ = fork();
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(125);
      ::close(ready[0]);
      int s = ::socket(AF_UNIX, SOCK_STREAM, 0);  // inherited by the exec
      if (s < 0 || ::connect(s, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
        _exit(126);
      }
      execv(exe.c_str(), const_cast<char* const*>(args));
      int e = errno;
      (void)!::write(ready[1], &e, sizeof(e));
      _exit(127);
    }
    ::close(ready[1]);
    if (pid_ < 0) {
      ::close(ready[0]);
      throw std::runtime_error("fork: " + errno_text());
    }
    pollfd p{ready[0], POLLIN, 0};
    int e = 0;
    const bool execed = ::poll(&p, 1, 5000) == 1 && ::read(ready[0], &e, sizeof(e)) == 0;
    ::close(ready[0]);
    if (!execed) {
      throw std::runtime_error("the peer did not exec " + exe +
                               (e ? ": " + std::string(std::strerror(e)) : " within 5 s"));
    }
    pollfd a{listener.fd(), POLLIN, 0};
    if (::poll(&a, 1, 5000) != 1 ||
        (fd_ = ::accept4(listener.fd(), nullptr, nullptr, SOCK_CLOEXEC)) < 0) {
      throw std::runtime_error("the peer's connection was not accepted within 5 s");
    }
  }
  ~Peer() {
    if (fd_ >= 0) ::close(fd_);
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
    }
  }
  Peer(const Peer&) = delete;
  Peer& operator=(const Peer&) = delete;
  pid_t pid() const { return pid_; }
  int fd() const { return fd_; }

 private:
  pid_t pid_ = -1;
  int fd_ = -1;
};

std::string copy_program(const TempDir& dir, const std::string& name) {
  const std::string to = dir.file(name);
  std::filesystem::copy_file(kPeerProgram, to);
  std::filesystem::permissions(to, std::filesystem::perms(0755));
  return to;
}

// Resolves the peer of a new process running `exe`; returns the time taken.
std::int64_t timed_resolve(const Listener& listener, const std::string& exe) {
  Peer peer(listener, exe);
  const std::int64_t t0 = mono_ns();
  auto id = gateway::resolve_peer(peer.fd());
  const std::int64_t t1 = mono_ns();
  if (!id) throw std::runtime_error("resolve_peer: " + id.error().message());
  if (id->caller.pid != peer.pid() || id->caller.sha256.size() != 64) {
    throw std::runtime_error("resolve_peer returned another process or no digest");
  }
  return t1 - t0;
}

std::int64_t thread_cpu_ns() {
  rusage ru{};
  getrusage(RUSAGE_THREAD, &ru);
  auto ns = [](const timeval& t) {
    return static_cast<std::int64_t>(t.tv_sec) * 1000000000 +
           static_cast<std::int64_t>(t.tv_usec) * 1000;
  };
  return ns(ru.ru_utime) + ns(ru.ru_stime);
}

// Calls timed one by one, and the thread's CPU over the loops.
struct Loop {
  std::vector<std::int64_t> ns;
  std::int64_t cpu_ns = 0;
  double cpu_us_per_call() const {
    return ns.empty() ? 0 : static_cast<double>(cpu_ns) / 1000.0 / static_cast<double>(ns.size());
  }
};

// `calls` timed calls of `fn` (which returns false on failure) added to `into`.
template <class Fn>
void timed_loop(int calls, Fn fn, Loop* into) {
  into->ns.reserve(into->ns.size() + static_cast<std::size_t>(calls));
  const std::int64_t cpu0 = thread_cpu_ns();
  for (int i = 0; i < calls; ++i) {
    const std::int64_t t0 = mono_ns();
    const bool ok = fn();
    const std::int64_t t1 = mono_ns();
    if (!ok) throw std::runtime_error("call " + std::to_string(i) + " failed");
    into->ns.push_back(t1 - t0);
  }
  into->cpu_ns += thread_cpu_ns() - cpu0;
}

void print_row(const char* name, const Summary& s, double cpu_us = -1) {
  std::printf("%-46s %7zu %10.2f %10.2f %10.2f %10.2f", name, s.n, s.p50, s.p90, s.p99, s.max);
  if (cpu_us >= 0) std::printf(" %10.3f", cpu_us);
  std::printf("\n");
}

int run(const Options& o) {
  TempDir dir;
  Listener listener(dir.file("resolve.sock"));
  double load[3] = {0, 0, 0};
  getloadavg(load, 3);
  std::printf(
      "identity_resolve_bench: peers are copies of %s (%ju bytes); %d resolutions each, %d "
      "verify / SO_PEERCRED calls\nmachine: %ld cores online, load average %.2f %.2f %.2f\n\n",
      kPeerProgram, static_cast<std::uintmax_t>(std::filesystem::file_size(kPeerProgram)),
      o.samples, o.calls, sysconf(_SC_NPROCESSORS_ONLN), load[0], load[1], load[2]);
  std::fflush(stdout);

  // Uncached: a new file per sample (kept: no inode number is reused).
  std::vector<std::int64_t> uncached;
  for (int i = 0; i < kUncachedWarmup + o.samples && !stop_requested(); ++i) {
    auto ns = timed_resolve(listener, copy_program(dir, "peer-" + std::to_string(i)));
    if (i >= kUncachedWarmup) uncached.push_back(ns);
  }
  // Cached: the same file every time, after one resolution that fills the cache.
  const std::string same = copy_program(dir, "peer-cached");
  timed_resolve(listener, same);
  std::vector<std::int64_t> cached;
  for (int i = 0; i < o.samples && !stop_requested(); ++i) {
    cached.push_back(timed_resolve(listener, same));
  }
  if (stop_requested()) return 130;

  // The per-call re-check, and the baseline, on one live peer.
  Peer peer(listener, same);
  auto id = gateway::resolve_peer(peer.fd());
  if (!id) throw std::runtime_error("resolve_peer: " + id.error().message());
  const gateway::PeerIdentity& identity = *id;
  const int fd = peer.fd();
  auto peercred = [fd] {
    ucred cred{};
    socklen_t len = sizeof(cred);
    return getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && cred.pid > 0;
  };
  auto verify = [&identity] { return static_cast<bool>(gateway::verify_peer(identity)); };
  // Warm both paths, then measure them in two halves each, ABBA.
  Loop warm, base, ver;
  timed_loop(std::min(o.calls, 1000), peercred, &warm);
  timed_loop(std::min(o.calls, 1000), verify, &warm);
  const int half = std::max(1, o.calls / 2);
  timed_loop(half, peercred, &base);
  timed_loop(half, verify, &ver);
  timed_loop(half, verify, &ver);
  timed_loop(half, peercred, &base);
  const Summary bs = summarize(base.ns), vs = summarize(ver.ns);
  const Summary un = summarize(uncached), ca = summarize(cached);

  std::printf("%-46s %7s %11s %11s %11s %11s %11s\n", "call", "n", "p50 µs", "p90 µs", "p99 µs",
              "max µs", "CPU µs");
  print_row("getsockopt(SO_PEERCRED) (baseline)", bs, base.cpu_us_per_call());
  print_row("verify_peer(identity), every call", vs, ver.cpu_us_per_call());
  print_row("resolve_peer(fd), cached digest", ca);
  print_row("resolve_peer(fd), uncached (new executable)", un);
  auto ratio = [](double a, double b) { return b > 0 ? a / b : 0.0; };
  std::printf("\nratio to one getsockopt(SO_PEERCRED):\n");
  if (base.cpu_ns > 0 && ver.cpu_ns > 0) {
    std::printf("  verify_peer      p50 %.1fx   CPU %.1fx (%+.2f µs per call)\n",
                ratio(vs.p50, bs.p50), ratio(ver.cpu_us_per_call(), base.cpu_us_per_call()),
                ver.cpu_us_per_call() - base.cpu_us_per_call());
  } else {
    // getrusage() keeps utime+stime monotonic by holding values back, so a
    // loop of a few ms can show no CPU at all.
    std::printf(
        "  verify_peer      p50 %.1fx   CPU: loop too short to show in getrusage "
        "(raise --calls)\n",
        ratio(vs.p50, bs.p50));
  }
  std::printf("  resolve cached   p50 %.0fx\n", ratio(ca.p50, bs.p50));
  std::printf(
      "  resolve uncached p50 %.0fx (the digest of a %ju-byte file: %+.1f µs over cached)\n",
      ratio(un.p50, bs.p50), static_cast<std::uintmax_t>(std::filesystem::file_size(kPeerProgram)),
      un.p50 - ca.p50);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&] { return arg_value(kProgram, argc, argv, i); };
    if (a == "--samples") {
      o.samples = parse_int_arg(kProgram, "--samples", value(), 1, 100000);
    } else if (a == "--calls") {
      o.calls = parse_int_arg(kProgram, "--calls", value(), 2, 100000000);
    } else if (a == "--help" || a == "-h") {
      std::printf(
          "usage: identity_resolve_bench [--samples N] [--calls N]\n"
          "  defaults: --samples 200 --calls 20000\n"
          "  resolve_peer() on connections of child processes running copies of /bin/sleep:\n"
          "  --samples uncached (a fresh copy each) and cached (the same copy); then\n"
          "  verify_peer() --calls times, against getsockopt(SO_PEERCRED) (the baseline):\n"
          "  p50 and CPU per call (RUSAGE_THREAD)\n");
      return 0;
    } else {
      std::fprintf(stderr, "%s: unknown argument '%s' (try --help)\n", kProgram, a.c_str());
      return 2;
    }
  }
  return run_bench(kProgram, [&] { return run(o); });
}
