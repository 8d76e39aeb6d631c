// What portierd costs when nothing happens: how fast it is ready after
// fork/exec, how much memory it holds, and how much CPU it burns while idle
// with one connected Subscribe client. The daemon runs with one simulated
// scanner (interval_ms = 2000) in a temp dir. Each figure is printed beside
// a floor: /bin/true (spawn and exit), `portierd --version` (exec and
// dynamic linking of the same binary) and /bin/sleep (an idle process).
//
// usage: daemon_idle_bench [--starts N] [--idle-seconds N]
#include <dirent.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "daemon_launcher.h"
#include "portier/v1/gateway.grpc.pb.h"

namespace {

using namespace portier;
using namespace portier::bench;

constexpr double kReadyTargetMs = 250;
// Issue 9: under 21 MiB (OpenSSL's provider, which the management link needs, costs a little).
constexpr double kRssTargetMb = 21;
constexpr double kCpuTargetPct = 1;

struct Options {
  int starts = 10;
  int idle_seconds = 5;
};

double ms(std::int64_t ns) { return static_cast<double>(ns) / 1e6; }

struct Stats {
  double median = 0, max = 0;
  std::size_t n = 0;
};

Stats stats(std::vector<double> v) {
  Stats s;
  s.n = v.size();
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  s.median = v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
  s.max = v.back();
  return s;
}

// Voluntary + involuntary context switches of all threads of `pid`: how often
// it is woken up.
long long context_switches(pid_t pid) {
  std::string base = "/proc/" + std::to_string(pid) + "/task";
  DIR* d = opendir(base.c_str());
  if (!d) return -1;
  long long total = 0;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream f(base + "/" + e->d_name + "/status");
    std::string line;
    while (std::getline(f, line)) {
      if (line.rfind("voluntary_ctxt_switches:", 0) == 0 ||
          line.rfind("nonvoluntary_ctxt_switches:", 0) == 0) {
        total += std::atoll(line.c_str() + line.find(':') + 1);
      }
    }
  }
  closedir(d);
  return total;
}

// Sleeps up to `seconds`, returning early (false) on a stop request.
bool idle_for(int seconds) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < until) {
    if (stop_requested()) return false;
    std::this_thread::sleep_for(
        std::min<std::chrono::nanoseconds>(50ms, until - std::chrono::steady_clock::now()));
  }
  return !stop_requested();
}

// ---- one start of portierd ----

struct StartSample {
  bool ok = false;
  std::string error;
  double ready_ms = -1;       // fork -> "ready in" line read from stderr
  double health_ms = -1;      // fork -> first GetHealth answered OK
  double own_ready_ms = -1;   // the figure the daemon prints itself
  double first_call_ms = -1;  // the successful first GetHealth call alone (new connection)
  double warm_call_ms = -1;   // a later GetHealth on another new connection
  long rss_kb = -1;           // VmRSS right after the first GetHealth
  int exit_code = -1;
  double shutdown_ms = -1;  // SIGTERM -> reaped
};

double parse_own_ready(const std::string& log) {
  auto p = log.find("ready in ");
  if (p == std::string::npos) return -1;
  return std::atof(log.c_str() + p + 9);
}

// Waits (polling) until GetHealth answers OK; returns mono_ns() then, or -1.
// `attempt_ns` gets how long the successful call itself took (connect included).
std::int64_t first_health(ChildProcess& d, const std::string& socket,
                          std::chrono::milliseconds timeout, std::int64_t* attempt_ns = nullptr) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline && !stop_requested()) {
    if (!d.alive()) return -1;
    struct stat st {};
    // Only try once the socket exists: each attempt costs a channel, and the
    // daemon is starting up on the same cores.
    if (stat(socket.c_str(), &st) == 0) {
      v1::Health h;
      const std::int64_t t0 = mono_ns();
      if (get_health(socket, &h, 2000ms).ok()) {
        const std::int64_t t1 = mono_ns();
        if (attempt_ns) *attempt_ns = t1 - t0;
        return t1;
      }
    }
    std::this_thread::sleep_for(200us);
  }
  return -1;
}

StartSample start_once(const DaemonFiles& files, bool stop_after) {
  StartSample s;
  ::unlink(files.socket.c_str());
  ChildProcess d({bin_path("portierd"), "--config", files.config});
  if (!d.start()) {
    s.error = "fork failed";
    return s;
  }
  std::int64_t attempt = 0;
  std::int64_t health = first_health(d, files.socket, 15000ms, &attempt);
  std::int64_t ready = d.wait_for_log("ready in", 15000ms);
  if (health < 0 || ready < 0) {
    s.error = "portierd did not become ready; its log:\n" + d.log();
    return s;
  }
  s.ready_ms = ms(ready - d.spawned_ns());
  s.health_ms = ms(health - d.spawned_ns());
  s.own_ready_ms = parse_own_ready(d.log());
  s.rss_kb = proc_status_kb(d.pid(), "VmRSS");
  s.first_call_ms = ms(attempt);
  // The same call again on a new connection, now that the daemon has seen
  // this executable (its digest is cached) and served one call.
  std::vector<double> warm;
  for (int i = 0; i < 3; ++i) {
    v1::Health h;
    const std::int64_t t0 = mono_ns();
    if (get_health(files.socket, &h, 2000ms).ok()) warm.push_back(ms(mono_ns() - t0));
  }
  if (!warm.empty()) s.warm_call_ms = stats(warm).median;
  if (stop_after) {
    std::int64_t took = 0;
    s.exit_code = d.stop(SIGTERM, 10000ms, &took);
    s.shutdown_ms = ms(took);
  }
  s.ok = true;
  return s;
}

// Spawns `argv` and waits for its exit: the time from fork to reaped exit.
double spawn_to_exit_ms(const std::vector<std::string>& argv) {
  ChildProcess p(argv);
  if (!p.start()) return -1;
  if (p.wait_exit(10000ms) < 0) return -1;
  return ms(mono_ns() - p.spawned_ns());
}

// ---- the idle run ----

struct IdleSample {
  bool ok = false;
  std::string error;
  double ready_ms = -1;
  long rss_ready_kb = -1, rss_idle_kb = -1, hwm_kb = -1;
  long threads = -1;
  double cpu_pct = -1, sched_pct = -1;
  long rss_anon_kb = -1, rss_file_kb = -1;
  double switches_per_s = -1;
  long base_rss_ready_kb = -1, base_rss_idle_kb = -1;
  double base_cpu_pct = -1, base_switches_per_s = -1, base_sched_pct = -1;
  int events = 0;
  int exit_code = -1;
  double shutdown_ms = -1;
  std::string client_status;
  std::string phases;  // the daemon's own shutdown timeline (debug log)
};

IdleSample idle_run(const DaemonFiles& files, int seconds) {
  IdleSample r;
  ::unlink(files.socket.c_str());
  ChildProcess d({bin_path("portierd"), "--config", files.config});
  ChildProcess floor({"/bin/sleep", std::to_string(seconds + 60)});
  if (!d.start() || !floor.start()) {
    r.error = "fork failed";
    return r;
  }
  std::int64_t ready = d.wait_for_log("ready in", 15000ms);
  if (ready < 0 || first_health(d, files.socket, 15000ms) < 0) {
    r.error = "portierd did not become ready; its log:\n" + d.log();
    return r;
  }
  r.ready_ms = ms(ready - d.spawned_ns());
  r.rss_ready_kb = proc_status_kb(d.pid(), "VmRSS");
  r.base_rss_ready_kb = proc_status_kb(floor.pid(), "VmRSS");

  // One app subscribed to the simulated scanner for the whole idle period.
  auto stub = connect(files.socket);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds + 60));
  std::mutex mu;
  bool started = false, cancelled = false;
  std::atomic<int> events{0};
  grpc::Status status;
  std::thread client([&] {
    {
      std::lock_guard lock(mu);
      if (cancelled) return;
      started = true;
    }
    v1::SubscribeRequest req;
    req.set_device_id("sim0");
    auto reader = stub->Subscribe(&ctx, req);
    v1::PeripheralEvent ev;
    while (reader->Read(&ev)) ++events;
    status = reader->Finish();
  });
  auto end_client = [&] {
    {
      std::lock_guard lock(mu);
      cancelled = true;
      if (started) ctx.TryCancel();
    }
    if (client.joinable()) client.join();
  };
  bool listed = wait_until(
      [&] {
        v1::Health h;
        return get_health(files.socket, &h).ok() && h.subscribers_size() == 1;
      },
      10000ms);
  if (!listed) {
    end_client();
    r.error = "the Subscribe client was not listed by GetHealth within 10 s";
    return r;
  }
  events = 0;

  const std::int64_t t0 = mono_ns();
  const std::int64_t cpu0 = proc_cpu_ns(d.pid()), bcpu0 = proc_cpu_ns(floor.pid());
  const long long sw0 = context_switches(d.pid()), bsw0 = context_switches(floor.pid());
  const std::int64_t sch0 = proc_sched_ns(d.pid()), bsch0 = proc_sched_ns(floor.pid());
  if (!idle_for(seconds)) {
    end_client();
    r.error = "interrupted";
    return r;
  }
  const std::int64_t cpu1 = proc_cpu_ns(d.pid()), bcpu1 = proc_cpu_ns(floor.pid());
  const long long sw1 = context_switches(d.pid()), bsw1 = context_switches(floor.pid());
  const std::int64_t sch1 = proc_sched_ns(d.pid()), bsch1 = proc_sched_ns(floor.pid());
  const double wall = static_cast<double>(mono_ns() - t0);
  r.cpu_pct = 100.0 * static_cast<double>(cpu1 - cpu0) / wall;
  r.base_cpu_pct = 100.0 * static_cast<double>(bcpu1 - bcpu0) / wall;
  r.switches_per_s = static_cast<double>(sw1 - sw0) / (wall / 1e9);
  r.base_switches_per_s = static_cast<double>(bsw1 - bsw0) / (wall / 1e9);
  r.sched_pct = 100.0 * static_cast<double>(sch1 - sch0) / wall;
  r.base_sched_pct = 100.0 * static_cast<double>(bsch1 - bsch0) / wall;
  r.rss_idle_kb = proc_status_kb(d.pid(), "VmRSS");
  r.rss_anon_kb = proc_status_kb(d.pid(), "RssAnon");
  r.rss_file_kb = proc_status_kb(d.pid(), "RssFile");
  r.hwm_kb = proc_status_kb(d.pid(), "VmHWM");
  r.threads = proc_status_kb(d.pid(), "Threads");
  r.base_rss_idle_kb = proc_status_kb(floor.pid(), "VmRSS");
  r.events = events;

  // Stopped while the client is still connected, as systemd would.
  std::int64_t took = 0;
  r.exit_code = d.stop(SIGTERM, 10000ms, &took);
  r.shutdown_ms = ms(took);
  {
    std::string log = d.log();
    for (std::size_t p = 0; (p = log.find(" after ", p)) != std::string::npos;) {
      auto b = log.rfind("debug: ", p);
      auto e = log.find('\n', p);
      if (b != std::string::npos && e != std::string::npos) {
        r.phases += (r.phases.empty() ? "" : "; ") + log.substr(b + 7, e - b - 7);
      }
      p = e == std::string::npos ? log.size() : e;
    }
  }
  end_client();
  r.client_status =
      status.ok() ? "OK" : std::to_string(status.error_code()) + " " + status.error_message();
  floor.stop(SIGKILL, 5000ms);
  r.ok = true;
  return r;
}

std::string ratio(double a, double b) {
  if (a < 0 || b <= 0) return "n/a";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1fx", a / b);
  return buf;
}

int parse_int(const char* flag, const char* v, int lo, int hi) {
  return parse_int_arg("daemon_idle_bench", flag, v, lo, hi);
}

int run(const Options& o) {
  TempDir dir;
  auto files = write_daemon_files(dir,
                                  // debug: portierd then logs its shutdown phases
                                  // (nothing per event or per call)
                                  "log_level = \"debug\"\n"
                                  "\n[[scanner]]\n"
                                  "id = \"sim0\"\n"
                                  "type = \"simulated\"\n"
                                  "interval_ms = 2000\n");
  std::printf(
      "daemon_idle_bench: portierd with one simulated scanner (interval_ms = 2000), "
      "%d starts, %d s idle; %ld cores online\n\n",
      o.starts, o.idle_seconds, sysconf(_SC_NPROCESSORS_ONLN));
  std::fflush(stdout);

  // Starts, each stopped at once with SIGTERM (no client connected).
  std::vector<double> ready, health, own, rss, shutdown, floor_true, floor_version, first_call,
      warm_call;
  std::vector<int> codes;
  for (int i = 0; i < o.starts && !stop_requested(); ++i) {
    auto s = start_once(files, true);
    if (!s.ok) {
      std::fprintf(stderr, "start %d failed: %s\n", i + 1, s.error.c_str());
      return stop_requested() ? 130 : 1;
    }
    ready.push_back(s.ready_ms);
    health.push_back(s.health_ms);
    own.push_back(s.own_ready_ms);
    first_call.push_back(s.first_call_ms);
    warm_call.push_back(s.warm_call_ms);
    rss.push_back(static_cast<double>(s.rss_kb) / 1024.0);
    shutdown.push_back(s.shutdown_ms);
    codes.push_back(s.exit_code);
    floor_true.push_back(spawn_to_exit_ms({"/bin/true"}));
    floor_version.push_back(spawn_to_exit_ms({bin_path("portierd"), "--version"}));
  }
  if (stop_requested()) return 130;
  auto sr = stats(ready), sh = stats(health), so = stats(own), sm = stats(rss),
       sd = stats(shutdown), st = stats(floor_true), sv = stats(floor_version),
       sf = stats(first_call), sw = stats(warm_call);
  std::printf("startup, %zu starts                        median      max\n", sr.n);
  std::printf("  fork/exec -> \"ready in\" on stderr      %7.1f ms %7.1f ms\n", sr.median, sr.max);
  std::printf("  fork/exec -> first GetHealth OK        %7.1f ms %7.1f ms\n", sh.median, sh.max);
  std::printf("  daemon's own \"ready in N ms\" figure    %7.1f ms %7.1f ms\n", so.median, so.max);
  std::printf(
      "  the first GetHealth call alone          %7.1f ms %7.1f ms   (new connection, "
      "first caller)\n",
      sf.median, sf.max);
  std::printf(
      "  a later GetHealth, new connection       %7.1f ms %7.1f ms   (executable digest "
      "cached)\n",
      sw.median, sw.max);
  std::printf("  RSS right after first GetHealth        %6.1f MiB %6.1f MiB\n", sm.median, sm.max);
  std::printf("  SIGTERM -> exit (no clients)           %7.1f ms %7.1f ms   exit codes:", sd.median,
              sd.max);
  for (int c : codes) std::printf(" %d", c);
  std::printf("\n  baseline /bin/true: fork -> exit       %7.1f ms %7.1f ms\n", st.median, st.max);
  std::printf(
      "  baseline `portierd --version` -> exit  %7.1f ms %7.1f ms   (exec + dynamic "
      "linking of the same binary)\n",
      sv.median, sv.max);
  std::printf("  ratio ready/(/bin/true): %s   ready/(portierd --version): %s\n\n",
              ratio(sr.median, st.median).c_str(), ratio(sr.median, sv.median).c_str());
  std::fflush(stdout);

  auto idle = idle_run(files, o.idle_seconds);
  if (!idle.ok) {
    std::fprintf(stderr, "idle run failed: %s\n", idle.error.c_str());
    return stop_requested() ? 130 : 1;
  }
  auto mb = [](long kb) { return static_cast<double>(kb) / 1024.0; };
  std::printf("idle %d s with one Subscribe client        portierd  /bin/sleep  ratio\n",
              o.idle_seconds);
  std::printf("  RSS after ready                      %7.1f MiB %7.1f MiB  %s\n",
              mb(idle.rss_ready_kb), mb(idle.base_rss_ready_kb),
              ratio(idle.rss_ready_kb, idle.base_rss_ready_kb).c_str());
  std::printf("  RSS after %d s idle                   %7.1f MiB %7.1f MiB  %s\n", o.idle_seconds,
              mb(idle.rss_idle_kb), mb(idle.base_rss_idle_kb),
              ratio(idle.rss_idle_kb, idle.base_rss_idle_kb).c_str());
  std::printf("    of which anonymous (heap, stacks)  %8.1f MiB\n", mb(idle.rss_anon_kb));
  std::printf("    of which file-backed (binary, libs) %7.1f MiB\n", mb(idle.rss_file_kb));
  std::printf("  peak RSS (VmHWM)                     %8.1f MiB\n", mb(idle.hwm_kb));
  std::printf("  CPU (utime+stime), %% of one core     %8.2f %%  %8.2f %%   %s\n", idle.cpu_pct,
              idle.base_cpu_pct, ratio(idle.cpu_pct, idle.base_cpu_pct).c_str());
  std::printf("  CPU (schedstat, ns resolution)       %8.3f %%  %8.3f %%   %s\n", idle.sched_pct,
              idle.base_sched_pct, ratio(idle.sched_pct, idle.base_sched_pct).c_str());
  std::printf("  wake-ups (context switches, all threads) %6.1f /s %6.1f /s\n", idle.switches_per_s,
              idle.base_switches_per_s);
  std::printf("  threads                              %8ld\n", idle.threads);
  std::printf("  events the client received: %d (the simulated scanner scans every 2 s)\n",
              idle.events);
  std::printf(
      "  SIGTERM with the client connected: exit code %d after %.1f ms; the client's "
      "stream ended with: %s\n\n",
      idle.exit_code, idle.shutdown_ms, idle.client_status.c_str());
  if (!idle.phases.empty())
    std::printf("  portierd's shutdown phases: %s\n\n", idle.phases.c_str());

  std::printf("targets:\n");
  std::printf(
      "  ready within %.0f ms: \"ready in\" line median %.1f ms, max %.1f ms; first GetHealth "
      "median %.1f ms, max %.1f ms: %s\n",
      kReadyTargetMs, sr.median, sr.max, sh.median, sh.max,
      std::max(sr.max, sh.max) < kReadyTargetMs ? "met" : "NOT met");
  std::printf("  RSS after %d s idle < %.0f MiB (%.0f kB): %ld kB = %.2f MiB: %s\n", o.idle_seconds,
              kRssTargetMb, kRssTargetMb * 1024, idle.rss_idle_kb, mb(idle.rss_idle_kb),
              mb(idle.rss_idle_kb) < kRssTargetMb ? "met" : "NOT met");
  std::printf("  CPU while idle < %.0f %%: %.3f %% (schedstat; utime+stime %.2f %%): %s\n",
              kCpuTargetPct, idle.sched_pct, idle.cpu_pct,
              std::max(idle.sched_pct, idle.cpu_pct) < kCpuTargetPct ? "met" : "NOT met");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "daemon_idle_bench: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--starts") {
      o.starts = parse_int("--starts", value(), 1, 100);
    } else if (a == "--idle-seconds") {
      o.idle_seconds = parse_int("--idle-seconds", value(), 1, 600);
    } else if (a == "--help" || a == "-h") {
      std::printf(
          "usage: daemon_idle_bench [--starts N] [--idle-seconds N]\n"
          "  defaults: --starts 10 --idle-seconds 5\n");
      return 0;
    } else {
      std::fprintf(stderr, "daemon_idle_bench: unknown argument '%s' (try --help)\n", a.c_str());
      return 2;
    }
  }
  install_stop_signals();
  try {
    int rc = run(o);
    if (rc == 130) std::fprintf(stderr, "daemon_idle_bench: interrupted\n");
    return rc;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "daemon_idle_bench: %s\n", e.what());
    return 1;
  }
}
