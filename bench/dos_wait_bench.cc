// How long an allowed app waits for portierd while an undeclared local user
// tries to wear it out. portierd runs in a private temp dir with a policy
// that declares this binary (uid 0, its own path) as app "bench", allowed
// list/read/watch on every device; its socket belongs to group nogroup, so
// that the hostile clients, run as uid 64010 / group nogroup (fork, setgid,
// setuid, exec of a copy of this binary), can connect. The figure is the
// allowed app's fresh-connection latency: a new channel, connect and its
// first WhoAmI, --samples times, one every --interval-ms at most, p50/p99:
//
//   (a) with nothing else going on (the baseline);
//   (b) while the hostile uid holds as many WatchDevices streams as the
//       daemon lets it open (--streams tried, 16 per connection); the
//       streams still open once nothing changed for 2 s are the ones the
//       daemon accepted;
//   (c) while, in addition, --exec-loops processes of that uid keep
//       connecting from a 4 GiB executable each: a copy of this binary
//       extended to 4 GiB with a sparse tail of zeros (it still runs), one
//       file per loop, given a new mtime before every exec so that no digest
//       cache can answer for it.
//       Each such process connects, sends the HTTP/2 preface and waits (30 s
//       at most) for the daemon's first bytes or a close.
//
// Prints the ratios of (b) and (c) to (a). Every wait has a deadline: a call
// gets --deadline-ms, a phase --phase-seconds (samples not taken by then are
// reported as such), and a timeout is reported as a timeout.
//
// usage: dos_wait_bench [--samples N] [--interval-ms N] [--deadline-ms N]
//                       [--phase-seconds N] [--streams N] [--exec-loops N]   (as root)
#include <fcntl.h>
#include <grp.h>
#include <grpcpp/grpcpp.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "daemon_launcher.h"
#include "latency_summary.h"
#include "portier/v1/gateway.grpc.pb.h"

namespace {

using namespace portier;
using namespace portier::bench;

constexpr const char* kProgram = "dos_wait_bench";
constexpr uid_t kHostileUid = 64010;
constexpr std::uint64_t kBigExeBytes = 4ull << 30;
constexpr int kStreamsPerConnection = 16;  // portierd's per-connection cap
constexpr int kHostileConnectTimeoutMs = 30000;
constexpr int kExecLoopPauseMs = 20;  // between two connections of one loop

struct Options {
  int samples = 200;
  int interval_ms = 10;    // a sample starts at most this often
  int deadline_ms = 5000;  // per connect + WhoAmI
  int phase_seconds = 60;  // per phase, then the samples left are not taken
  int streams = 256;
  int exec_loops = 4;
};

std::string errno_text() { return std::strerror(errno); }

double ms(std::int64_t ns) { return static_cast<double>(ns) / 1e6; }

const char* code_name(grpc::StatusCode c) {
  static const char* const kNames[] = {"OK",
                                       "CANCELLED",
                                       "UNKNOWN",
                                       "INVALID_ARGUMENT",
                                       "DEADLINE_EXCEEDED",
                                       "NOT_FOUND",
                                       "ALREADY_EXISTS",
                                       "PERMISSION_DENIED",
                                       "RESOURCE_EXHAUSTED",
                                       "FAILED_PRECONDITION",
                                       "ABORTED",
                                       "OUT_OF_RANGE",
                                       "UNIMPLEMENTED",
                                       "INTERNAL",
                                       "UNAVAILABLE",
                                       "DATA_LOSS",
                                       "UNAUTHENTICATED"};
  const auto i = static_cast<std::size_t>(c);
  return i < std::size(kNames) ? kNames[i] : "?";
}

// "CODE: message", the message cut to `max` bytes.
std::string status_text(const grpc::Status& st, std::size_t max = 100) {
  std::string m = st.error_message();
  if (m.size() > max) m = m.substr(0, max) + "...";
  return std::string(code_name(st.error_code())) + ": " + m;
}

// ======== the hostile side (run as uid 64010) ========

// --hostile-streams SOCKET TOTAL: opens TOTAL WatchDevices streams, 16 per
// connection, on one completion queue; reads whatever comes. Reports
// "streams: ..." once nothing changed for 2 s (at most 30 s), then again on
// every change, until killed.
int run_hostile_streams(const std::string& socket, int total) {
  install_stop_signals();
  struct Call {
    grpc::ClientContext ctx;
    std::unique_ptr<grpc::ClientAsyncReader<v1::DeviceChange>> reader;
    v1::DeviceChange msg;
    grpc::Status status;
    bool started = false, ended = false;
  };
  enum Kind : std::uintptr_t { kStart = 0, kRead = 1, kFinish = 2 };
  auto tag = [](std::size_t i, Kind k) { return reinterpret_cast<void*>(i * 4 + k + 4); };
  grpc::CompletionQueue cq;
  std::vector<std::unique_ptr<v1::Gateway::Stub>> stubs;
  std::vector<std::unique_ptr<Call>> calls;
  for (int i = 0; i < total; ++i) {
    if (i % kStreamsPerConnection == 0) stubs.push_back(connect(socket));
    auto c = std::make_unique<Call>();
    v1::WatchDevicesRequest req;
    req.set_include_existing(true);
    c->reader = stubs.back()->PrepareAsyncWatchDevices(&c->ctx, req, &cq);
    c->reader->StartCall(tag(calls.size(), kStart));
    calls.push_back(std::move(c));
  }
  auto report = [&](const char* what) {
    int open = 0, ended_n = 0;
    std::map<std::string, int> ended;
    for (auto& c : calls) {
      if (c->ended) {
        ++ended_n;
        ++ended[status_text(c->status, 60)];
      } else if (c->started) {
        ++open;
      }
    }
    std::string codes;
    for (auto& [k, n] : ended) codes += (codes.empty() ? "" : "; ") + std::to_string(n) + "x " + k;
    std::fprintf(stderr, "%s tried %d on %zu connections, open %d, ended %d%s%s%s\n", what, total,
                 stubs.size(), open, ended_n, codes.empty() ? "" : " (", codes.c_str(),
                 codes.empty() ? "" : ")");
  };
  const std::int64_t t0 = mono_ns();
  std::int64_t last_change = t0;
  bool reported = false;
  while (!stop_requested()) {
    void* got = nullptr;
    bool ok = false;
    auto r = cq.AsyncNext(&got, &ok, std::chrono::system_clock::now() + 200ms);
    const std::int64_t now = mono_ns();
    if (r == grpc::CompletionQueue::SHUTDOWN) break;
    if (r == grpc::CompletionQueue::GOT_EVENT) {
      const auto v = reinterpret_cast<std::uintptr_t>(got) - 4;
      Call& c = *calls[v / 4];
      switch (static_cast<Kind>(v % 4)) {
        case kStart:
          c.started = true;
          if (ok) {
            c.reader->Read(&c.msg, tag(v / 4, kRead));
          } else {
            c.reader->Finish(&c.status, tag(v / 4, kFinish));
          }
          break;
        case kRead:
          if (ok) {
            c.reader->Read(&c.msg, tag(v / 4, kRead));
          } else {
            c.reader->Finish(&c.status, tag(v / 4, kFinish));
          }
          break;
        case kFinish:
          c.ended = true;
          last_change = now;
          if (reported) report("streams-now:");
          break;
      }
      if (!reported) last_change = now;
      continue;
    }
    if (!reported && (now - last_change > 2000000000LL || now - t0 > 30000000000LL)) {
      report("streams:");
      reported = true;
    }
  }
  for (auto& c : calls) c->ctx.TryCancel();
  return 0;
}

// --hostile-connect SOCKET TIMEOUT_MS: one connection. Exit 0: the daemon
// answered (its first HTTP/2 bytes); 3: it closed the connection without a
// byte; 4: nothing within TIMEOUT_MS; 2: connect failed.
int run_hostile_connect(const std::string& socket, int timeout_ms) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  int s = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));  // a full backlog
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, socket.c_str(), sizeof(addr.sun_path) - 1);
  if (s < 0 || ::connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return 2;
  static const char kPreface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\4\0\0\0\0\0";
  (void)!::send(s, kPreface, sizeof(kPreface) - 1, MSG_NOSIGNAL);
  pollfd p{s, POLLIN, 0};
  if (::poll(&p, 1, timeout_ms) <= 0) return 4;
  char b;
  return ::recv(s, &b, 1, 0) == 1 ? 0 : 3;
}

// --hostile-exec-loop SOCKET BIG_EXE: runs BIG_EXE --hostile-connect, one
// at a time, touching its mtime before each; reports a tally after each.
int run_hostile_exec_loop(const std::string& socket, const std::string& big) {
  install_stop_signals();
  const std::string timeout = std::to_string(kHostileConnectTimeoutMs);
  const char* args[] = {big.c_str(), "--hostile-connect", socket.c_str(), timeout.c_str(), nullptr};
  int n = 0, answered = 0, closed = 0, timed_out = 0, failed = 0;
  std::int64_t sum = 0, longest = 0;
  std::fprintf(stderr, "exec-loop started\n");
  while (!stop_requested()) {
    utimensat(AT_FDCWD, big.c_str(), nullptr, 0);  // a new mtime: the digest cache misses
    const std::int64_t t0 = mono_ns();
    const pid_t pid = fork();
    if (pid == 0) {
      execv(args[0], const_cast<char* const*>(args));
      _exit(127);
    }
    if (pid < 0) return 1;
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
      if (errno != EINTR) return 1;
      if (stop_requested()) kill(pid, SIGKILL);
    }
    const std::int64_t took = mono_ns() - t0;
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    ++n;
    answered += code == 0;
    closed += code == 3;
    timed_out += code == 4;
    failed += code != 0 && code != 3 && code != 4;
    sum += took;
    longest = std::max(longest, took);
    std::fprintf(stderr,
                 "exec-loop: %d connections: %d answered, %d closed unanswered, %d no answer in "
                 "%d s, %d failed; wait mean %.0f ms, max %.0f ms\n",
                 n, answered, closed, timed_out, kHostileConnectTimeoutMs / 1000, failed,
                 ms(sum) / n, ms(longest));
    usleep(kExecLoopPauseMs * 1000);
  }
  return 0;
}

// ======== the bench side (root) ========

// A process run as another user, in a process group of its own (so that
// its children die with it), stderr read through a pipe.
class AsUser {
 public:
  AsUser(uid_t uid, gid_t gid, std::vector<std::string> argv)
      : uid_(uid), gid_(gid), argv_(std::move(argv)) {}
  ~AsUser() {
    if (pid_ > 0) {
      ::kill(-pid_, SIGKILL);
      int status = 0;
      while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
    }
    if (reader_.joinable()) reader_.join();
  }
  AsUser(const AsUser&) = delete;
  AsUser& operator=(const AsUser&) = delete;

  bool start() {
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) != 0) return false;
    const int devnull = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    std::vector<char*> args;
    for (auto& a : argv_) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    const pid_t parent = getpid();
    pid_ = fork();
    if (pid_ == 0) {
      // Async-signal-safe calls only until exec: the bench has threads.
      setpgid(0, 0);
      if (setgroups(0, nullptr) != 0 || setgid(gid_) != 0 || setuid(uid_) != 0) _exit(124);
      prctl(PR_SET_PDEATHSIG, SIGKILL);  // after setuid, which clears it
      if (getppid() != parent) _exit(125);
      sigset_t none;
      sigemptyset(&none);
      sigprocmask(SIG_SETMASK, &none, nullptr);
      signal(SIGINT, SIG_DFL);
      signal(SIGTERM, SIG_DFL);
      signal(SIGHUP, SIG_DFL);
      signal(SIGPIPE, SIG_DFL);
      if (devnull >= 0) {
        dup2(devnull, 0);
        dup2(devnull, 1);
      }
      dup2(pipefd[1], 2);
      execv(args[0], args.data());
      _exit(127);
    }
    if (devnull >= 0) ::close(devnull);
    ::close(pipefd[1]);
    if (pid_ < 0) {
      ::close(pipefd[0]);
      return false;
    }
    setpgid(pid_, pid_);  // also here: no window in which kill(-pid) misses
    reader_ = std::thread([this, fd = pipefd[0]] { read_stderr(fd); });
    return true;
  }

  // The last complete line starting with `prefix`, waiting up to `timeout`
  // for the first one; "" when none came.
  std::string wait_for_line(const std::string& prefix, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, timeout,
                 [&] { return !last_line_locked(prefix).empty() || eof_ || stop_requested(); });
    return last_line_locked(prefix);
  }
  std::string last_line(const std::string& prefix) {
    std::lock_guard lock(mu_);
    return last_line_locked(prefix);
  }
  std::string log() {
    std::lock_guard lock(mu_);
    return log_;
  }

 private:
  std::string last_line_locked(const std::string& prefix) const {
    std::size_t end = log_.rfind('\n');
    while (end != std::string::npos && end > 0) {
      std::size_t begin = log_.rfind('\n', end - 1);
      begin = begin == std::string::npos ? 0 : begin + 1;
      if (log_.compare(begin, prefix.size(), prefix) == 0) return log_.substr(begin, end - begin);
      if (begin == 0) break;
      end = begin - 1;
    }
    return "";
  }

  void read_stderr(int fd) {
    char buf[4096];
    for (;;) {
      ssize_t n = ::read(fd, buf, sizeof(buf));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      std::lock_guard lock(mu_);
      log_.append(buf, static_cast<std::size_t>(n));
      if (log_.size() > (1u << 20)) log_.erase(0, log_.size() - (1u << 19));
      cv_.notify_all();
    }
    ::close(fd);
    std::lock_guard lock(mu_);
    eof_ = true;
    cv_.notify_all();
  }

  uid_t uid_;
  gid_t gid_;
  std::vector<std::string> argv_;
  pid_t pid_ = -1;
  std::thread reader_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::string log_;
  bool eof_ = false;
};

// A directory for the 4 GiB file: on tmpfs (/dev/shm) when it allows exec,
// where reading the sparse tail costs no page cache; else in the temp dir.
class BigDir {
 public:
  explicit BigDir(const TempDir& fallback) {
    struct statvfs vfs {};
    char tmpl[] = "/dev/shm/portier-bench-XXXXXX";
    if (statvfs("/dev/shm", &vfs) == 0 && !(vfs.f_flag & ST_NOEXEC) && mkdtemp(tmpl)) {
      path_ = tmpl;
      owned_ = true;
    } else {
      path_ = fallback.path();
    }
    ::chmod(path_.c_str(), 0711);
  }
  ~BigDir() {
    std::error_code ec;
    if (owned_) std::filesystem::remove_all(path_, ec);
  }
  BigDir(const BigDir&) = delete;
  BigDir& operator=(const BigDir&) = delete;
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
  bool owned_ = false;
};

std::string copy_self(const std::string& to) {
  std::filesystem::copy_file(self_exe(), to);
  std::filesystem::permissions(to, std::filesystem::perms(0755));
  return to;
}

struct Phase {
  std::string name;
  std::vector<std::int64_t> ns;  // answered samples, and timeouts at the deadline
  int answered = 0, timeouts = 0, errors = 0, not_taken = 0;
  std::map<std::string, int> error_codes;
  double daemon_cpu_pct = -1;
  std::string daemon_threads;
  std::int64_t wall_ns = 0;
  Summary s;
};

// --samples fresh connections, each: connect + WhoAmI, within the deadline.
Phase measure(const std::string& name, const std::string& socket, pid_t daemon, const Options& o) {
  Phase p;
  p.name = name;
  const std::int64_t deadline_ns = static_cast<std::int64_t>(o.deadline_ms) * 1000000;
  const std::int64_t t_start = mono_ns(), cpu0 = proc_cpu_ns(daemon);
  const std::int64_t phase_end = t_start + static_cast<std::int64_t>(o.phase_seconds) * 1000000000;
  for (int i = 0; i < o.samples; ++i) {
    // Paced, so that the samples spread over the hostile load.
    const std::int64_t due = t_start + static_cast<std::int64_t>(i) * o.interval_ms * 1000000;
    if (const std::int64_t now = mono_ns(); due > now) {
      std::this_thread::sleep_for(std::chrono::nanoseconds(due - now));
    }
    if (stop_requested() || mono_ns() >= phase_end) {
      p.not_taken = o.samples - i;
      break;
    }
    const std::int64_t t0 = mono_ns();
    auto stub = connect(socket);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(o.deadline_ms));
    ctx.set_wait_for_ready(true);  // a connection not yet accepted is waited for
    v1::Identity me;
    grpc::Status st = stub->WhoAmI(&ctx, {}, &me);
    const std::int64_t t1 = mono_ns();
    if (st.ok() && me.apps_size() > 0 && me.apps(0) == "bench") {
      ++p.answered;
      p.ns.push_back(t1 - t0);
    } else if (st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
      ++p.timeouts;
      p.ns.push_back(std::max(deadline_ns, t1 - t0));
    } else {
      ++p.errors;
      ++p.error_codes[st.ok() ? "answered, but not as app \"bench\"" : status_text(st)];
    }
  }
  p.wall_ns = mono_ns() - t_start;
  const std::int64_t cpu1 = proc_cpu_ns(daemon);
  if (cpu0 >= 0 && cpu1 >= 0) {
    p.daemon_cpu_pct = 100.0 * static_cast<double>(cpu1 - cpu0) / static_cast<double>(p.wall_ns);
  }
  p.daemon_threads = read_proc_status(daemon, "Threads");
  p.s = summarize(p.ns);
  return p;
}

std::string fmt_ms(double us, int deadline_ms) {
  char buf[64];
  if (us >= deadline_ms * 1000.0) {
    std::snprintf(buf, sizeof(buf), "timeout (>%d)", deadline_ms);
  } else {
    std::snprintf(buf, sizeof(buf), "%.2f", us / 1000.0);
  }
  return buf;
}

std::string fmt_ratio(double v, double base, int deadline_ms) {
  char buf[64];
  if (base <= 0) return "-";
  const bool lower_bound = v >= deadline_ms * 1000.0;
  std::snprintf(buf, sizeof(buf), "%s%.1fx", lower_bound ? ">=" : "", v / base);
  return buf;
}

void print_phase(const Phase& p, const Options& o) {
  std::printf("%-58s %4zu %5d %5d %5d %5d %14s %14s %14s   %5.1f %%  %s\n", p.name.c_str(),
              p.ns.size() + static_cast<std::size_t>(p.errors), p.answered, p.timeouts, p.errors,
              p.not_taken, fmt_ms(p.s.p50, o.deadline_ms).c_str(),
              fmt_ms(p.s.p99, o.deadline_ms).c_str(), fmt_ms(p.s.max, o.deadline_ms).c_str(),
              p.daemon_cpu_pct, p.daemon_threads.c_str());
  for (auto& [what, n] : p.error_codes) std::printf("    failed %dx: %s\n", n, what.c_str());
}

std::string policy_for_bench() {
  return "version = 1\n\n"
         "[[app]]\n"
         "name = \"bench\"\n"
         "uid = 0\n"
         "exe = \"" +
         self_exe() +
         "\"\n\n"
         "[[rule]]\n"
         "app = \"bench\"\n"
         "device = \"*\"\n"
         "ops = [\"list\", \"read\", \"watch\"]\n";
}

int run(const Options& o) {
  const group* g = getgrnam("nogroup");
  const gid_t nogroup = g ? g->gr_gid : 65534;
  double load[3] = {0, 0, 0};
  getloadavg(load, 3);
  std::printf(
      "dos_wait_bench: %d fresh connections (connect + WhoAmI) per phase, one every %d ms at "
      "most, deadline %d ms each, %d s per phase at most\nhostile uid %u (group %u): %d "
      "WatchDevices streams tried; %d exec "
      "loops from a %llu GiB executable\nmachine: %ld cores online, load average %.2f %.2f "
      "%.2f\n\n",
      o.samples, o.interval_ms, o.deadline_ms, o.phase_seconds, kHostileUid, nogroup, o.streams,
      o.exec_loops, static_cast<unsigned long long>(kBigExeBytes >> 30),
      sysconf(_SC_NPROCESSORS_ONLN), load[0], load[1], load[2]);
  std::fflush(stdout);

  TempDir dir;
  ::chmod(dir.path().c_str(), 0711);  // the hostile uid reaches the socket and its copy
  auto files = write_daemon_files(dir, "socket_group = \"nogroup\"\n");
  write_file(files.policy, policy_for_bench());
  const std::string hostile = copy_self(dir.file("hostile-client"));
  // One 4 GiB executable per loop: no loop's connection can be served from
  // the digest another loop's connection left behind.
  BigDir bigdir(dir);
  std::vector<std::string> bigs;
  for (int i = 0; i < o.exec_loops; ++i) {
    bigs.push_back(copy_self(bigdir.file("big-client-" + std::to_string(i))));
    if (::chown(bigs.back().c_str(), kHostileUid, nogroup) != 0 ||
        ::truncate(bigs.back().c_str(), kBigExeBytes) != 0) {
      throw std::runtime_error("cannot make the 4 GiB executable " + bigs.back() + ": " +
                               errno_text());
    }
  }

  ChildProcess daemon({bin_path("portierd"), "--config", files.config});
  if (!daemon.start() || daemon.wait_for_log("ready in", 15000ms) < 0) {
    std::fprintf(stderr, "%s: portierd did not report ready:\n%s\n", kProgram,
                 daemon.log().c_str());
    return stop_requested() ? 130 : 1;
  }
  std::vector<Phase> phases;
  phases.push_back(measure("(a) alone (baseline)", files.socket, daemon.pid(), o));
  if (stop_requested()) return 130;

  AsUser streams(kHostileUid, nogroup,
                 {hostile, "--hostile-streams", files.socket, std::to_string(o.streams)});
  if (!streams.start()) throw std::runtime_error("cannot start the hostile streams client");
  std::string held = streams.wait_for_line("streams:", 60000ms);
  if (stop_requested()) return 130;
  if (held.empty()) held = "(no report within 60 s: " + streams.log() + ")";
  phases.push_back(measure("(b) + undeclared uid holding streams", files.socket, daemon.pid(), o));
  if (stop_requested()) return 130;

  std::vector<std::unique_ptr<AsUser>> loops;
  for (int i = 0; i < o.exec_loops; ++i) {
    loops.push_back(std::make_unique<AsUser>(
        kHostileUid, nogroup,
        std::vector<std::string>{hostile, "--hostile-exec-loop", files.socket, bigs[i]}));
    if (!loops.back()->start()) throw std::runtime_error("cannot start a hostile exec loop");
  }
  for (auto& l : loops) l->wait_for_line("exec-loop started", 10000ms);
  std::this_thread::sleep_for(200ms);  // their first connections are queued
  phases.push_back(
      measure("(c) + connecting from a 4 GiB executable", files.socket, daemon.pid(), o));
  if (stop_requested()) return 130;
  std::vector<std::string> tallies;
  for (auto& l : loops) {
    auto t = l->last_line("exec-loop:");
    tallies.push_back(t.empty() ? "exec-loop: no connection finished" : t);
  }
  std::string held_end = streams.last_line("streams-now:");
  loops.clear();  // SIGKILL to each loop's process group
  const bool daemon_alive = daemon.alive();
  std::int64_t took = 0;
  const int rc = daemon.stop(SIGTERM, 20000ms, &took);

  std::printf("%-58s %4s %5s %5s %5s %5s %14s %14s %14s %8s  %s\n", "phase", "n", "ok", "t/o",
              "err", "skip", "p50 ms", "p99 ms", "max ms", "daemon CPU", "threads");
  for (auto& p : phases) print_phase(p, o);
  std::printf("  (n: samples taken; t/o: no answer within %d ms; skip: not taken within %d s)\n",
              o.deadline_ms, o.phase_seconds);
  const Phase& a = phases[0];
  std::printf("\nratio to (a):\n");
  for (std::size_t i = 1; i < phases.size(); ++i) {
    const Phase& p = phases[i];
    std::printf("  %-58s p50 %s   p99 %s\n", p.name.c_str(),
                fmt_ratio(p.s.p50, a.s.p50, o.deadline_ms).c_str(),
                fmt_ratio(p.s.p99, a.s.p99, o.deadline_ms).c_str());
  }
  std::printf("\nhostile uid %u:\n  %s\n", kHostileUid, held.c_str());
  if (!held_end.empty()) std::printf("  later: %s\n", held_end.c_str());
  for (auto& t : tallies) std::printf("  %s\n", t.c_str());
  std::printf("\nportierd %s; stopped with SIGTERM: exit code %d after %.1f ms%s\n",
              daemon_alive ? "alive at the end" : "HAD EXITED during the run", rc, ms(took),
              rc == -1 ? " (did not stop within 20 s: killed)" : "");
  return daemon_alive ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  // The hostile roles (this binary, run as another uid).
  if (argc == 4 && std::string_view(argv[1]) == "--hostile-streams") {
    return run_hostile_streams(argv[2], parse_int_arg(kProgram, "streams", argv[3], 1, 100000));
  }
  if (argc == 4 && std::string_view(argv[1]) == "--hostile-exec-loop") {
    return run_hostile_exec_loop(argv[2], argv[3]);
  }
  if (argc == 4 && std::string_view(argv[1]) == "--hostile-connect") {
    return run_hostile_connect(argv[2], parse_int_arg(kProgram, "timeout", argv[3], 1, 3600000));
  }
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&] { return arg_value(kProgram, argc, argv, i); };
    if (a == "--samples") {
      o.samples = parse_int_arg(kProgram, "--samples", value(), 1, 100000);
    } else if (a == "--interval-ms") {
      o.interval_ms = parse_int_arg(kProgram, "--interval-ms", value(), 0, 60000);
    } else if (a == "--deadline-ms") {
      o.deadline_ms = parse_int_arg(kProgram, "--deadline-ms", value(), 1, 600000);
    } else if (a == "--phase-seconds") {
      o.phase_seconds = parse_int_arg(kProgram, "--phase-seconds", value(), 1, 3600);
    } else if (a == "--streams") {
      o.streams = parse_int_arg(kProgram, "--streams", value(), 0, 4096);
    } else if (a == "--exec-loops") {
      o.exec_loops = parse_int_arg(kProgram, "--exec-loops", value(), 0, 64);
    } else if (a == "--help" || a == "-h") {
      std::printf(
          "usage: dos_wait_bench [--samples N] [--interval-ms N] [--deadline-ms N]\n"
          "                      [--phase-seconds N] [--streams N] [--exec-loops N]\n"
          "  defaults: --samples 200 --interval-ms 10 --deadline-ms 5000 --phase-seconds 60\n"
          "  --streams 256 --exec-loops 4. Needs root: the hostile clients run as uid %u,\n"
          "  group nogroup.\n"
          "  An allowed app's fresh-connection WhoAmI latency (p50/p99) (a) alone, (b) while\n"
          "  that uid holds --streams WatchDevices streams, (c) while it also connects from a\n"
          "  4 GiB executable in --exec-loops loops; ratios of (b) and (c) to (a)\n",
          kHostileUid);
      return 0;
    } else {
      std::fprintf(stderr, "%s: unknown argument '%s' (try --help)\n", kProgram, a.c_str());
      return 2;
    }
  }
  if (geteuid() != 0) {
    std::fprintf(stderr,
                 "%s: needs root: it runs its hostile clients as uid %u (setuid) and portierd "
                 "with a socket of group nogroup; run it as root\n",
                 kProgram, kHostileUid);
    return 2;
  }
  return run_bench(kProgram, [&] { return run(o); });
}
