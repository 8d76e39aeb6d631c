// Scan-to-app latency: from the moment the bytes of a frame are written to a
// pty master (the "scanner") to the moment a subscriber of portierd has read
// the PeripheralEvent carrying it. Each frame is "S<seq>T<ns>\r": a sequence
// number and the CLOCK_MONOTONIC time just before write(), so every event
// carries its own send time. Frames are paced at a fixed rate by absolute
// deadlines (this is a load driver; sleeping to pace is intended).
//
// Runs: a raw pty hop (master -> slave in raw mode, read by another thread:
// the floor any serial scanner pays), then portierd with 1 subscriber and
// with 50 (each subscriber its own process and connection, as apps are). Prints p50/p90/
// p99/max, events expected vs received per subscriber, and the ratio to the
// baseline.
//
// usage: scan_latency_bench [--seconds N] [--rate N] [--subscribers N] [--no-processes]
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "daemon_launcher.h"
#include "grpc_floor_server.h"
#include "latency_summary.h"
#include "portier/v1/gateway.grpc.pb.h"
#include "scan_receiver.h"
#include "scan_subscribers.h"

namespace {

using namespace portier;
using namespace portier::bench;

constexpr int kWarmup = kScanWarmup;
constexpr const char* kDevice = kScanDevice;

struct Options {
  int seconds = 5;
  int rate = 1000;  // scans per second
  int subscribers = 50;
  bool processes = true;  // also run the N subscribers as N processes
};

// ---- frames ----

// ---- a pty pair ----

class PtyPair {
 public:
  PtyPair() {
    master_ = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
    if (master_ < 0 || grantpt(master_) != 0 || unlockpt(master_) != 0) {
      throw std::runtime_error(std::string("posix_openpt: ") + std::strerror(errno));
    }
    slave_path_ = ptsname(master_);
  }
  ~PtyPair() {
    if (master_ >= 0) close(master_);
  }
  PtyPair(const PtyPair&) = delete;
  PtyPair& operator=(const PtyPair&) = delete;
  int master() const { return master_; }
  const std::string& slave_path() const { return slave_path_; }

 private:
  int master_ = -1;
  std::string slave_path_;
};

// Writes all of `data` to the (non-blocking) master; false when the pty did
// not take it within 2 s (nobody reads the slave) or a stop was requested.
bool write_all(int fd, std::string_view data) {
  std::size_t off = 0;
  int waited_ms = 0;
  while (off < data.size()) {
    ssize_t n = write(fd, data.data() + off, data.size() - off);
    if (n > 0) {
      off += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno != EAGAIN && errno != EINTR) return false;
    if (stop_requested() || waited_ms >= 2000) return false;
    pollfd p{fd, POLLOUT, 0};
    poll(&p, 1, 10);
    waited_ms += 10;
  }
  return true;
}

// ---- the load driver ----

struct DriveStats {
  std::uint64_t sent = 0;
  std::int64_t max_late_ns = 0;  // how far behind its deadline a write started
  std::uint64_t late_1ms = 0;    // measured frames that started > 1 ms late
  bool ok = true;
  std::string error;
};

// Sends frames 0 .. warmup+count-1 at `rate` per second, each at its absolute
// deadline. Frames below `warmup` warm the path up and are not measured.
DriveStats drive(int fd, int warmup, int count, int rate) {
  DriveStats st;
  const std::int64_t period = 1000000000LL / rate;
  const std::int64_t start = mono_ns() + 2000000;  // 2 ms from now
  char buf[64];
  for (int seq = 0; seq < warmup + count; ++seq) {
    const std::int64_t deadline = start + seq * period;
    timespec ts{static_cast<time_t>(deadline / 1000000000),
                static_cast<long>(deadline % 1000000000)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
      if (stop_requested()) break;
    }
    if (stop_requested()) {
      st.ok = false;
      st.error = "interrupted";
      return st;
    }
    const std::int64_t now = mono_ns();
    int n = std::snprintf(buf, sizeof(buf), "S%dT%lld\r", seq, static_cast<long long>(now));
    if (!write_all(fd, std::string_view(buf, static_cast<std::size_t>(n)))) {
      st.ok = false;
      st.error = "pty did not accept frame " + std::to_string(seq) + " within 2 s";
      return st;
    }
    ++st.sent;
    if (seq >= warmup) {
      st.max_late_ns = std::max(st.max_late_ns, now - deadline);
      if (now - deadline > 1000000) ++st.late_1ms;
    }
  }
  return st;
}

// ---- percentiles ----

struct RunResult {
  std::string name;
  std::string shape;  // "", " (one process)", " (processes)"
  int subscribers = 0;
  Summary all, to_hub, from_hub;
  double worst_sub_p99 = 0;
  double sub_p50_min = 0, sub_p50_median = 0, sub_p50_max = 0;  // spread across subscribers
  std::uint64_t expected = 0, received = 0, lost = 0, dup = 0, ooo = 0, gaps = 0, dropped = 0;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> per_sub;  // received, expected
  DriveStats drive;
  double daemon_cpu_pct = -1;
  double subs_cpu_pct = -1;          // the subscribers' side (for "one process": this whole bench)
  std::string daemon_threads;        // CPU per daemon thread name
  std::uint64_t daemon_dropped = 0;  // from GetHealth, summed over this run's subscribers
  bool ok = true;
  std::string error;
};

void fill_totals(RunResult& r, std::vector<Received*> subs) {
  std::vector<std::int64_t> all, to_hub, from_hub;
  std::vector<double> p50s;
  for (auto* s : subs) {
    all.insert(all.end(), s->latency_ns.begin(), s->latency_ns.end());
    to_hub.insert(to_hub.end(), s->to_hub_ns.begin(), s->to_hub_ns.end());
    from_hub.insert(from_hub.end(), s->from_hub_ns.begin(), s->from_hub_ns.end());
    p50s.push_back(summarize(s->latency_ns).p50);
    r.expected += s->expected;
    r.received += s->received;
    r.lost += s->lost();
    r.dup += s->duplicates;
    r.ooo += s->out_of_order;
    r.gaps += s->daemon_seq_gaps;
    r.dropped += s->dropped_reported;
    r.per_sub.emplace_back(s->received, s->expected);
    r.worst_sub_p99 = std::max(r.worst_sub_p99, summarize(s->latency_ns).p99);
  }
  r.all = summarize(std::move(all));
  r.to_hub = summarize(std::move(to_hub));
  r.from_hub = summarize(std::move(from_hub));
  std::sort(p50s.begin(), p50s.end());
  if (!p50s.empty()) {
    r.sub_p50_min = p50s.front();
    r.sub_p50_median = p50s[p50s.size() / 2];
    r.sub_p50_max = p50s.back();
  }
}

// ---- baseline: the raw pty hop ----

RunResult run_baseline(const Options& o) {
  RunResult r;
  r.name = "baseline: raw pty hop";
  r.subscribers = 1;
  const int count = o.seconds * o.rate;
  PtyPair pty;
  int slave = open(pty.slave_path().c_str(), O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
  if (slave < 0) throw std::runtime_error("open " + pty.slave_path() + ": " + std::strerror(errno));
  termios t{};
  tcgetattr(slave, &t);
  cfmakeraw(&t);
  t.c_cc[VMIN] = 1;
  t.c_cc[VTIME] = 0;
  tcsetattr(slave, TCSANOW, &t);
  tcflush(slave, TCIOFLUSH);

  Received rec;
  rec.init(count);
  std::atomic<bool> done{false};
  std::thread reader([&] {
    std::string pending;
    char buf[4096];
    while (!done) {
      pollfd p{slave, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      ssize_t n = read(slave, buf, sizeof(buf));
      const std::int64_t now = mono_ns();
      if (n <= 0) continue;
      pending.append(buf, static_cast<std::size_t>(n));
      std::size_t start = 0, cr;
      while ((cr = pending.find('\r', start)) != std::string::npos) {
        Frame f;
        if (parse_frame(std::string_view(pending).substr(start, cr - start), &f)) {
          rec.record(f, now, kWarmup);
        } else {
          ++rec.unparsed;
        }
        start = cr + 1;
      }
      pending.erase(0, start);
    }
  });
  r.drive = drive(pty.master(), kWarmup, count, o.rate);
  wait_until([&] { return rec.got_last.load(); }, 3000ms);
  done = true;
  reader.join();
  close(slave);
  if (!r.drive.ok) {
    r.ok = false;
    r.error = r.drive.error;
  }
  fill_totals(r, {&rec});
  return r;
}

// ---- portierd ----

std::size_t subscriber_count(const std::string& socket, std::uint64_t* dropped = nullptr) {
  v1::Health h;
  if (!get_health(socket, &h).ok()) return 0;
  std::size_t n = 0;
  if (dropped) *dropped = 0;
  for (auto& s : h.subscribers()) {
    if (s.device_id() != kDevice) continue;
    ++n;
    if (dropped) *dropped += s.dropped();
  }
  return n;
}

bool scanner_ready(const std::string& socket) {
  v1::Health h;
  if (!get_health(socket, &h).ok()) return false;
  for (auto& d : h.devices()) {
    if (d.id() == kDevice) return d.state() == v1::DEVICE_STATE_READY;
  }
  return false;
}

// `label`: "portierd" or "gRPC floor"; `shape`: how the subscribers run.
RunResult run_gateway(const Options& o, ChildProcess& daemon, int master, const std::string& socket,
                      SubscriberSet& subs, int n, const std::string& label,
                      const std::string& shape) {
  RunResult r;
  r.name = label + ": " + std::to_string(n) + (n == 1 ? " subscriber" : " subscribers") + shape;
  r.shape = shape;
  r.subscribers = n;
  const int count = o.seconds * o.rate;
  // The previous run's streams first end in the server: a client's cancel
  // returns at once, but the server sees it up to 200 ms later (portierd:
  // BoundedStream::kCancelPoll) and only then gives the stream's slot back.
  // Starting before that can take the app over its stream limit
  // (`streams_per_app`, 64: 50 + 50 streams) and have subscribers refused.
  if (!wait_until([&] { return subscriber_count(socket) == 0; }, 10000ms)) {
    r.ok = false;
    r.error = "GetHealth still listed " + std::to_string(subscriber_count(socket)) +
              " subscribers of the previous run after 10 s";
    return r;
  }
  if (!subs.start(socket, n, count, &r.error)) {
    r.ok = false;
    return r;
  }
  // Nothing is sent before every subscriber is registered in the daemon.
  if (!wait_until([&] { return subscriber_count(socket) == static_cast<std::size_t>(n); },
                  30000ms)) {
    const std::size_t listed = subscriber_count(socket);
    std::string why;
    subs.stop(&why);
    r.ok = false;
    r.error = "GetHealth listed " + std::to_string(listed) + " of " + std::to_string(n) +
              " subscribers after 30 s" + (why.empty() ? "" : "; " + why);
    return r;
  }
  const std::int64_t cpu0 = proc_cpu_ns(daemon.pid()), subs0 = subs.cpu_ns();
  const auto threads0 = thread_cpu_ns(daemon.pid());
  const std::int64_t t0 = mono_ns();
  r.drive = drive(master, kWarmup, count, o.rate);
  wait_until([&] { return subs.all_done(); }, 3000ms);
  const std::int64_t cpu1 = proc_cpu_ns(daemon.pid()), subs1 = subs.cpu_ns();
  const auto threads1 = thread_cpu_ns(daemon.pid());
  const std::int64_t t1 = mono_ns();
  r.daemon_threads = thread_cpu_report(threads0, threads1, t1 - t0);
  r.subs_cpu_pct = 100.0 * static_cast<double>(subs1 - subs0) / static_cast<double>(t1 - t0);
  subscriber_count(socket, &r.daemon_dropped);  // the daemon's view, before cancelling
  std::string stop_error;
  auto recs = subs.stop(&stop_error);
  if (!stop_error.empty()) {
    r.ok = false;
    r.error = stop_error;
  }
  if (cpu0 >= 0 && cpu1 >= 0) {
    r.daemon_cpu_pct = 100.0 * static_cast<double>(cpu1 - cpu0) / static_cast<double>(t1 - t0);
  }
  if (!r.drive.ok) {
    r.ok = false;
    r.error = r.drive.error;
  }
  if (!daemon.alive()) {
    r.ok = false;
    r.error = "portierd exited during the run";
  }
  std::vector<Received*> ptrs;
  for (auto& rec : recs) {
    rec->expected = static_cast<std::uint64_t>(count);
    ptrs.push_back(rec.get());
  }
  fill_totals(r, ptrs);
  return r;
}

// ---- output ----

void print_row(const RunResult& r) {
  std::printf("%-44s %4d %9.1f %9.1f %9.1f %9.1f %10llu/%-10llu %6llu", r.name.c_str(),
              r.subscribers, r.all.p50, r.all.p90, r.all.p99, r.all.max,
              static_cast<unsigned long long>(r.received),
              static_cast<unsigned long long>(r.expected), static_cast<unsigned long long>(r.lost));
  if (r.daemon_cpu_pct >= 0) std::printf("   %5.1f %%", r.daemon_cpu_pct);
  std::printf("\n");
}

void print_details(const RunResult& r) {
  std::printf("  %s:\n", r.name.c_str());
  std::printf(
      "    sender: %llu frames written, max start lateness %.1f µs, %llu frames > 1 ms late\n",
      static_cast<unsigned long long>(r.drive.sent),
      static_cast<double>(r.drive.max_late_ns) / 1000.0,
      static_cast<unsigned long long>(r.drive.late_1ms));
  if (r.to_hub.n) {
    std::printf(
        "    split at the daemon's event stamp (PeripheralEvent.time):\n"
        "      write -> hub stamp (pty, driver, framer, decoder): p50 %.1f  p90 %.1f  p99 %.1f  "
        "max %.1f µs\n"
        "      hub stamp -> app read (fan-out, gRPC, client):      p50 %.1f  p90 %.1f  p99 %.1f  "
        "max %.1f µs\n",
        r.to_hub.p50, r.to_hub.p90, r.to_hub.p99, r.to_hub.max, r.from_hub.p50, r.from_hub.p90,
        r.from_hub.p99, r.from_hub.max);
  }
  if (r.subscribers > 1) {
    std::printf(
        "    per-subscriber p50 across the %d subscribers: min %.1f  median %.1f  max %.1f µs; "
        "worst single-subscriber p99: %.1f µs\n",
        r.subscribers, r.sub_p50_min, r.sub_p50_median, r.sub_p50_max, r.worst_sub_p99);
  }
  std::printf("    received/expected per subscriber:");
  for (std::size_t i = 0; i < r.per_sub.size(); ++i) {
    if (i % 6 == 0) std::printf("\n     ");
    std::printf(" #%02zu %llu/%llu", i + 1, static_cast<unsigned long long>(r.per_sub[i].first),
                static_cast<unsigned long long>(r.per_sub[i].second));
  }
  std::printf(
      "\n    lost (sum): %llu; daemon sequence gaps: %llu; event.dropped (sum of last seen): %llu; "
      "duplicates: %llu; out of order: %llu\n",
      static_cast<unsigned long long>(r.lost), static_cast<unsigned long long>(r.gaps),
      static_cast<unsigned long long>(r.dropped), static_cast<unsigned long long>(r.dup),
      static_cast<unsigned long long>(r.ooo));
  if (r.daemon_cpu_pct >= 0) {
    std::printf("    server's own count (GetHealth) of dropped events: %llu\n",
                static_cast<unsigned long long>(r.daemon_dropped));
    std::printf("    CPU, %% of one core: server %.1f %%, the subscribers' side %.1f %%\n",
                r.daemon_cpu_pct, r.subs_cpu_pct);
    std::printf("    server CPU by thread: %s\n", r.daemon_threads.c_str());
  }
  if (!r.ok) std::printf("    ERROR: %s\n", r.error.c_str());
}

int parse_int(const char* flag, const char* v, int lo, int hi) {
  return parse_int_arg("scan_latency_bench", flag, v, lo, hi);
}

int run(const Options& o) {
  std::printf(
      "scan_latency_bench: %d scans/s for %d s per run, %d warm-up scans, frames "
      "\"S<seq>T<ns>\\r\"\n",
      o.rate, o.seconds, kWarmup);
  double load[3] = {0, 0, 0};
  getloadavg(load, 3);
  std::printf(
      "machine: %ld cores online, load average %.2f %.2f %.2f; latency = subscriber read time - "
      "CLOCK_MONOTONIC before write() to the pty master\n\n",
      sysconf(_SC_NPROCESSORS_ONLN), load[0], load[1], load[2]);
  std::fflush(stdout);

  std::vector<RunResult> results;
  results.push_back(run_baseline(o));
  if (stop_requested()) return 130;

  TempDir dir;
  {
    // The floor: a bare gRPC server in its own process reading its own pty.
    PtyPair fpty;
    const std::string fsock = dir.file("floor.sock");
    ChildProcess floor({self_exe(), "--floor-server", fsock, fpty.slave_path()});
    if (!floor.start() || floor.wait_for_log("floor server ready", 15000ms) < 0) {
      std::fprintf(stderr, "the floor server did not start:\n%s\n", floor.log().c_str());
      return 1;
    }
    auto one = one_process_subscribers();
    results.push_back(run_gateway(o, floor, fpty.master(), fsock, *one, 1, "gRPC floor", ""));
    if (!stop_requested()) {
      results.push_back(run_gateway(o, floor, fpty.master(), fsock, *one, o.subscribers,
                                    "gRPC floor", " (one process)"));
    }
    floor.stop(SIGTERM, 5000ms);
    if (stop_requested()) return 130;
  }

  PtyPair pty;
  const std::string link = dir.file("scanner0");
  std::filesystem::create_symlink(pty.slave_path(), link);
  auto files = write_daemon_files(dir,
                                  "\n[[scanner]]\n"
                                  "id = \"scanner0\"\n"
                                  "type = \"serial\"\n"
                                  "path = \"" +
                                      link +
                                      "\"\n"
                                      "suffix = \"CR\"\n"
                                      "aim = false\n"
                                      "encoding = \"utf-8\"\n",
                                  1024);
  ChildProcess daemon({bin_path("portierd"), "--config", files.config});
  if (!daemon.start()) throw std::runtime_error("cannot start portierd");
  if (daemon.wait_for_log("ready in", 15000ms) < 0) {
    std::fprintf(stderr, "portierd did not report ready:\n%s\n", daemon.log().c_str());
    return 1;
  }
  if (!wait_until([&] { return scanner_ready(files.socket); }, 10000ms)) {
    std::fprintf(stderr, "scanner0 did not become READY:\n%s\n", daemon.log().c_str());
    return 1;
  }
  {
    auto one = one_process_subscribers();
    results.push_back(run_gateway(o, daemon, pty.master(), files.socket, *one, 1, "portierd", ""));
    if (!stop_requested()) {
      results.push_back(run_gateway(o, daemon, pty.master(), files.socket, *one, o.subscribers,
                                    "portierd", " (one process)"));
    }
  }
  if (!stop_requested() && o.processes) {
    auto procs = process_subscribers(dir);
    results.push_back(run_gateway(o, daemon, pty.master(), files.socket, *procs, o.subscribers,
                                  "portierd", " (processes)"));
  }
  std::int64_t took = 0;
  int rc = daemon.stop(SIGTERM, 10000ms, &took);
  if (stop_requested()) return 130;

  std::printf("%-44s %4s %9s %9s %9s %9s %21s %6s   %s\n", "run", "subs", "p50 µs", "p90 µs",
              "p99 µs", "max µs", "received/expected", "lost", "server CPU");
  for (auto& r : results) print_row(r);
  const RunResult& base = results[0];
  std::printf("\nratio to the raw pty hop:\n");
  for (std::size_t i = 1; i < results.size(); ++i) {
    auto& r = results[i];
    std::printf("  %-44s p50 %.1fx   p99 %.1fx\n", r.name.c_str(),
                base.all.p50 > 0 ? r.all.p50 / base.all.p50 : 0.0,
                base.all.p99 > 0 ? r.all.p99 / base.all.p99 : 0.0);
  }
  auto find = [&](const std::string& label, int n, const std::string& shape) -> const RunResult* {
    for (auto& r : results) {
      if (r.name.rfind(label, 0) == 0 && r.subscribers == n && r.shape == shape) return &r;
    }
    return nullptr;
  };
  std::printf("\nratio portierd / gRPC floor (same subscribers; what portierd adds to gRPC):\n");
  for (auto& r : results) {
    if (r.name.rfind("portierd", 0) != 0) continue;
    const RunResult* f = find("gRPC floor", r.subscribers, r.shape);
    if (!f || f->all.p50 <= 0 || f->all.p99 <= 0) continue;
    std::printf("  %-44s p50 %.1fx (+%.0f µs)   p99 %.1fx (+%.0f µs)\n", r.name.c_str(),
                r.all.p50 / f->all.p50, r.all.p50 - f->all.p50, r.all.p99 / f->all.p99,
                r.all.p99 - f->all.p99);
  }
  std::printf("\ndetails:\n");
  for (auto& r : results) print_details(r);

  std::uint64_t lost = 0;
  bool all_ok = true;
  for (std::size_t i = 1; i < results.size(); ++i) lost += results[i].lost;
  for (auto& r : results) all_ok = all_ok && r.ok;
  std::printf("\ntargets:\n");
  if (const RunResult* t = find("portierd", o.subscribers, " (one process)")) {
    double p99 = t->all.p99;
    std::printf("  p99 with %d subscribers: %.1f µs (target < 1000 µs: %s)\n", o.subscribers, p99,
                p99 < 1000.0 ? "met" : "NOT met");
    if (const RunResult* f = find("gRPC floor", o.subscribers, " (one process)")) {
      std::printf("  the bare gRPC fan-out on this machine, same subscribers: p99 %.1f µs\n",
                  f->all.p99);
    }
  }
  std::printf("  lost events for subscribers that keep up: %llu (target 0)\n",
              static_cast<unsigned long long>(lost));
  std::printf(
      "  (every bench subscriber reads continuously, so all of them count as keeping up)\n");
  std::printf("\nportierd stopped with SIGTERM: exit code %d after %.1f ms\n", rc,
              static_cast<double>(took) / 1e6);
  if (!all_ok) {
    std::printf("\nSOME RUNS FAILED (see ERROR above)\n");
    std::fprintf(stderr, "portierd log:\n%s", daemon.log().c_str());
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 4 && std::string_view(argv[1]) == "--floor-server") {
    return run_floor_server(argv[2], argv[3]);
  }
  if (argc == 5 && std::string_view(argv[1]) == "--subscriber-child") {
    return run_subscriber_child(argv[2], parse_int("count", argv[3], 1, 100000000), argv[4]);
  }
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "scan_latency_bench: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--seconds") {
      o.seconds = parse_int("--seconds", value(), 1, 600);
    } else if (a == "--rate") {
      o.rate = parse_int("--rate", value(), 1, 20000);
    } else if (a == "--subscribers") {
      o.subscribers = parse_int("--subscribers", value(), 1, 250);
    } else if (a == "--no-processes") {
      o.processes = false;
    } else if (a == "--help" || a == "-h") {
      std::printf(
          "usage: scan_latency_bench [--seconds N] [--rate SCANS_PER_S] [--subscribers N] "
          "[--no-processes]\n"
          "  defaults: --seconds 5 --rate 1000 --subscribers 50 (at most 250: portierd\n"
          "  serves 256 streams)\n"
          "  runs: raw pty hop; 1 subscriber; N subscribers on one completion queue in this\n"
          "  process (the target figure); N subscribers as N processes (unless --no-processes)\n");
      return 0;
    } else {
      std::fprintf(stderr, "scan_latency_bench: unknown argument '%s' (try --help)\n", a.c_str());
      return 2;
    }
  }
  install_stop_signals();
  // 50 connections, their dups in the daemon, ptys: stay clear of a low fd limit.
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 4096 && rl.rlim_max >= 4096) {
    rl.rlim_cur = 4096;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  try {
    int rc = run(o);
    if (rc == 130) std::fprintf(stderr, "scan_latency_bench: interrupted\n");
    return rc;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "scan_latency_bench: %s\n", e.what());
    return 1;
  }
}
