// USB hotplug to app latency: from the moment a "kernel" uevent is sent to
// portierd's uevent socket to the moment a WatchDevices client has read the
// DeviceChange for that device. portierd runs with [usb] sysfs_root = a
// fixture tree and uevent_source = a unix datagram socket, as in
// tests/integration/usb_through_daemon_test.cc (a minimal copy of the
// fixture tree of tests/drivers/usb/usb_test_support.h lives here, so the
// bench links neither gtest nor test sources).
//
// Each cycle: write a device into the fixture tree (a new port and serial per
// cycle: 1-2, 1-3, ...), take t0, send its "add" uevent, read until the
// ADDED change for it (t1); then remove it from the tree, send "remove" and
// read until REMOVED (timed separately). 10 warm-up cycles are not measured.
// Baseline: the same datagram over a bare unix datagram socket, sent from
// the main thread to a thread blocked in poll() (what the driver's thread
// does), the same number of times.
//
// usage: hotplug_bench [--count N]
#include <grpcpp/grpcpp.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "daemon_launcher.h"
#include "drivers/usb/sysfs_fixture.h"
#include "latency_summary.h"
#include "portier/v1/gateway.grpc.pb.h"

namespace {

namespace fs = std::filesystem;
using namespace portier;
using namespace portier::bench;

constexpr int kWarmup = 10;
constexpr double kTargetP99Us = 5000;
constexpr auto kEventTimeout = 5000ms;

struct Options {
  int count = 300;
};

// The fixture sysfs tree and uevent sender of the USB tests (gtest-free).
using drivers::usb::testing::FixtureDevice;
using drivers::usb::testing::FixtureTree;
using drivers::usb::testing::UeventSender;

// The uevents the bench sends: bus 1, the device's devnum, a fresh SEQNUM.
std::string device_uevent(const std::string& action, const std::string& name,
                          const std::string& devnum, std::uint64_t seqnum) {
  return drivers::usb::testing::device_uevent(action, name, "1", devnum, seqnum);
}

// ---- figures ----

// ---- baseline: a bare unix datagram hop between two threads ----

std::vector<std::int64_t> run_baseline(const std::string& path, const std::string& datagram,
                                       int count, std::string* error) {
  std::vector<std::int64_t> out;
  const int rfd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (rfd < 0) {
    *error = std::string("socket: ") + std::strerror(errno);
    return out;
  }
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  path.copy(sa.sun_path, sizeof sa.sun_path - 1);
  if (bind(rfd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    *error = "bind " + path + ": " + std::strerror(errno);
    close(rfd);
    return out;
  }
  const int stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  std::mutex mu;
  std::condition_variable cv;
  std::uint64_t received = 0;
  std::int64_t last_recv_ns = 0;
  // Like the driver's thread: poll(), then recvmsg until EAGAIN.
  std::thread receiver([&] {
    std::string buf(8192, '\0');
    for (;;) {
      pollfd p[2] = {{stop_fd, POLLIN, 0}, {rfd, POLLIN, 0}};
      if (poll(p, 2, -1) < 0) {
        if (errno == EINTR) continue;
        return;
      }
      if (p[0].revents != 0) return;
      for (;;) {
        const ssize_t n = recv(rfd, buf.data(), buf.size(), MSG_DONTWAIT);
        if (n < 0) break;
        const std::int64_t now = mono_ns();
        {
          std::lock_guard lock(mu);
          ++received;
          last_recv_ns = now;
        }
        cv.notify_all();
      }
    }
  });
  {
    UeventSender sender(path);
    for (int i = 0; i < kWarmup + count && error->empty(); ++i) {
      if (stop_requested()) {
        *error = "interrupted";
        break;
      }
      // The receiver is asleep in poll() when the datagram comes, as the
      // driver's thread is between two hotplugs.
      std::this_thread::sleep_for(1ms);
      const std::int64_t t0 = mono_ns();
      if (auto why = sender.send(datagram); !why.empty()) {
        *error = why;
        break;
      }
      std::unique_lock lock(mu);
      if (!cv.wait_for(lock, kEventTimeout,
                       [&] { return received == static_cast<std::uint64_t>(i) + 1; })) {
        *error = "the datagram did not arrive within 5 s";
        break;
      }
      if (i >= kWarmup) out.push_back(last_recv_ns - t0);
    }
  }
  const std::uint64_t one = 1;
  [[maybe_unused]] auto n = write(stop_fd, &one, sizeof one);
  receiver.join();
  close(stop_fd);
  close(rfd);
  unlink(path.c_str());
  return out;
}

// ---- a WatchDevices client, read on a thread of its own ----

struct Change {
  v1::DeviceChange::Kind kind = v1::DeviceChange::KIND_UNSPECIFIED;
  std::string id;
  std::int64_t read_ns = 0;   // mono_ns() when Read() returned
  std::int64_t stamp_ns = 0;  // DeviceChange.time, as CLOCK_MONOTONIC
};

class Watcher {
 public:
  Watcher(const std::string& socket, std::int64_t realtime_offset)
      : stub_(connect(socket)), offset_(realtime_offset) {
    // A last-resort bound; the bench cancels it long before.
    ctx_.set_deadline(std::chrono::system_clock::now() + std::chrono::hours(2));
    v1::WatchDevicesRequest req;
    req.set_include_existing(true);
    reader_ = stub_->WatchDevices(&ctx_, req);
    thread_ = std::thread([this] { loop(); });
  }
  ~Watcher() { cancel(); }
  Watcher(const Watcher&) = delete;
  Watcher& operator=(const Watcher&) = delete;

  void cancel() {
    ctx_.TryCancel();
    if (thread_.joinable()) thread_.join();
  }

  // The next change, or nullopt when none came within `timeout` or the
  // stream ended.
  std::optional<Change> next(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return !q_.empty() || ended_ || stop_requested(); });
    if (q_.empty()) return std::nullopt;
    Change c = std::move(q_.front());
    q_.pop_front();
    return c;
  }
  std::string end_reason() {
    std::lock_guard lock(mu_);
    return ended_ ? "the stream ended: " + status_.error_message() : "timed out";
  }

 private:
  void loop() {
    v1::DeviceChange ch;
    while (reader_->Read(&ch)) {
      Change c;
      c.read_ns = mono_ns();
      c.kind = ch.kind();
      c.id = ch.device().id();
      c.stamp_ns = ch.time().seconds() * 1000000000 + ch.time().nanos() - offset_;
      {
        std::lock_guard lock(mu_);
        q_.push_back(std::move(c));
      }
      cv_.notify_all();
    }
    auto st = reader_->Finish();
    {
      std::lock_guard lock(mu_);
      status_ = st;
      ended_ = true;
    }
    cv_.notify_all();
  }

  std::unique_ptr<v1::Gateway::Stub> stub_;
  std::int64_t offset_;
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReader<v1::DeviceChange>> reader_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Change> q_;
  bool ended_ = false;
  grpc::Status status_;
};

// Waits for the change `kind` of `id`; counts anything else in `others`.
std::optional<Change> wait_change(Watcher& w, v1::DeviceChange::Kind kind, const std::string& id,
                                  std::uint64_t& others) {
  const auto deadline = std::chrono::steady_clock::now() + kEventTimeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 || stop_requested()) return std::nullopt;
    auto c = w.next(left);
    if (!c) return std::nullopt;
    if (c->kind == kind && c->id == id) return c;
    ++others;
  }
}

std::size_t device_count(const std::string& socket) {
  auto stub = connect(socket);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 5s);
  v1::ListDevicesResponse r;
  if (!stub->ListDevices(&ctx, {}, &r).ok()) return 0;
  return static_cast<std::size_t>(r.devices_size());
}

// ---- the run ----

struct GatewayResult {
  std::vector<std::int64_t> add, remove, add_to_stamp, add_from_stamp;
  std::uint64_t others = 0;
  double daemon_cpu_pct = -1, daemon_cpu_us_per_cycle = -1;
  std::string daemon_threads;
  std::size_t devices_before = 0, devices_after = 0;
  bool ok = true;
  std::string error;
};

void print_row(const char* name, const Summary& s) {
  std::printf("%-38s %8.1f %8.1f %8.1f %9.1f %6zu\n", name, s.p50, s.p90, s.p99, s.max, s.n);
}

int run(const Options& o) {
  std::printf(
      "hotplug_bench: %d measured add/remove cycles after %d warm-up; latency = WatchDevices "
      "client read time - CLOCK_MONOTONIC before sendto() of the uevent\n",
      o.count, kWarmup);
  double load[3] = {0, 0, 0};
  getloadavg(load, 3);
  std::printf("machine: %ld cores online, load average %.2f %.2f %.2f\n\n",
              sysconf(_SC_NPROCESSORS_ONLN), load[0], load[1], load[2]);
  std::fflush(stdout);

  TempDir dir;
  FixtureTree tree(dir.file("usb"));
  tree.add(FixtureTree::root_hub());
  tree.add(FixtureTree::scanner("1-1"));  // a device present from the start, as in the test

  // Baseline first, with the same datagram the daemon gets.
  std::string base_error;
  auto base_ns =
      run_baseline(dir.file("hop.sock"), device_uevent("add", "1-2", "2", 1), o.count, &base_error);
  if (stop_requested()) return 130;
  if (!base_error.empty()) {
    std::fprintf(stderr, "hotplug_bench: baseline: %s\n", base_error.c_str());
    return 1;
  }

  const std::string uevent_socket = dir.file("uevent.sock");
  auto files = write_daemon_files(dir, "\n[usb]\nsysfs_root = \"" + tree.sysfs().string() +
                                           "\"\nuevent_source = \"" + uevent_socket + "\"\n");
  ChildProcess daemon({bin_path("portierd"), "--config", files.config});
  if (!daemon.start()) throw std::runtime_error("cannot start portierd");
  if (daemon.wait_for_log("ready in", 15000ms) < 0) {
    std::fprintf(stderr, "hotplug_bench: portierd did not report ready:\n%s\n",
                 daemon.log().c_str());
    return stop_requested() ? 130 : 1;
  }

  GatewayResult g;
  g.devices_before = device_count(files.socket);
  const std::int64_t offset = realtime_minus_mono();
  {
    Watcher w(files.socket, offset);
    // The existing devices come first; once read, the watch is registered.
    for (std::size_t i = 0; i < g.devices_before && g.ok; ++i) {
      auto c = w.next(10000ms);
      if (!c || c->kind != v1::DeviceChange::EXISTING) {
        g.ok = false;
        g.error = c ? "expected EXISTING, got kind " + std::to_string(c->kind)
                    : "EXISTING changes: " + w.end_reason();
      }
    }
    UeventSender inject(uevent_socket);
    std::uint64_t seqnum = 1000;
    std::int64_t cpu0 = 0, t_start = 0;
    std::map<pid_t, ThreadCpu> threads0;
    for (int i = 0; i < kWarmup + o.count && g.ok; ++i) {
      if (stop_requested()) break;
      if (i == kWarmup) {
        cpu0 = proc_cpu_ns(daemon.pid());
        threads0 = thread_cpu_ns(daemon.pid());
        t_start = mono_ns();
      }
      FixtureDevice d = FixtureTree::scanner();
      const int port = 2 + i % 120;
      d.name = "1-" + std::to_string(port);
      d.devnum = std::to_string(port + 1);
      char serial[32];
      std::snprintf(serial, sizeof serial, "BENCH%06d", i);
      d.serial = serial;
      const std::string id = "usb-" + d.name;
      tree.add(d);
      const std::int64_t t0 = mono_ns();
      if (auto why = inject.send(device_uevent("add", d.name, d.devnum, ++seqnum)); !why.empty()) {
        g.ok = false;
        g.error = why;
        break;
      }
      auto added = wait_change(w, v1::DeviceChange::ADDED, id, g.others);
      if (!added) {
        g.ok = false;
        g.error = "no ADDED for " + id + " within 5 s (" + w.end_reason() + ")";
        break;
      }
      tree.remove(d.name);
      const std::int64_t t2 = mono_ns();
      if (auto why = inject.send(device_uevent("remove", d.name, d.devnum, ++seqnum));
          !why.empty()) {
        g.ok = false;
        g.error = why;
        break;
      }
      auto removed = wait_change(w, v1::DeviceChange::REMOVED, id, g.others);
      if (!removed) {
        g.ok = false;
        g.error = "no REMOVED for " + id + " within 5 s (" + w.end_reason() + ")";
        break;
      }
      if (i >= kWarmup) {
        g.add.push_back(added->read_ns - t0);
        g.add_to_stamp.push_back(added->stamp_ns - t0);
        g.add_from_stamp.push_back(added->read_ns - added->stamp_ns);
        g.remove.push_back(removed->read_ns - t2);
      }
    }
    if (g.ok && !g.add.empty()) {
      const std::int64_t cpu1 = proc_cpu_ns(daemon.pid()), t_end = mono_ns();
      const auto threads1 = thread_cpu_ns(daemon.pid());
      g.daemon_cpu_pct =
          100.0 * static_cast<double>(cpu1 - cpu0) / static_cast<double>(t_end - t_start);
      g.daemon_cpu_us_per_cycle =
          static_cast<double>(cpu1 - cpu0) / 1000.0 / static_cast<double>(g.add.size());
      g.daemon_threads = thread_cpu_report(threads0, threads1, t_end - t_start);
    }
    w.cancel();
  }
  g.devices_after = device_count(files.socket);
  std::int64_t took = 0;
  const int rc = daemon.stop(SIGTERM, 10000ms, &took);
  if (stop_requested()) return 130;

  const Summary base = summarize(base_ns), add = summarize(g.add), rem = summarize(g.remove),
                to_stamp = summarize(g.add_to_stamp), from_stamp = summarize(g.add_from_stamp);
  std::printf("%-38s %8s %8s %8s %9s %6s\n", "path", "p50 µs", "p90 µs", "p99 µs", "max µs", "n");
  print_row("baseline: unix datagram hop", base);
  print_row("uevent add -> DeviceChange ADDED", add);
  print_row("uevent remove -> DeviceChange REMOVED", rem);
  std::printf("\nratio add/baseline: p50 %.1fx, p99 %.1fx\n",
              base.p50 > 0 ? add.p50 / base.p50 : 0.0, base.p99 > 0 ? add.p99 / base.p99 : 0.0);
  std::printf("\ndetails:\n");
  std::printf(
      "  add split at the daemon's stamp (DeviceChange.time, set in the hub before fan-out):\n"
      "    uevent -> stamp (socket, driver: parse, sysfs read, identity; hub): p50 %.1f  p90 "
      "%.1f  p99 %.1f  max %.1f µs\n"
      "    stamp -> app read (gRPC write, client):                             p50 %.1f  p90 "
      "%.1f  p99 %.1f  max %.1f µs\n",
      to_stamp.p50, to_stamp.p90, to_stamp.p99, to_stamp.max, from_stamp.p50, from_stamp.p90,
      from_stamp.p99, from_stamp.max);
  if (g.daemon_cpu_pct >= 0) {
    std::printf(
        "  portierd CPU: %.1f µs per add/remove cycle (%.1f %% of one core); by thread: %s\n",
        g.daemon_cpu_us_per_cycle, g.daemon_cpu_pct, g.daemon_threads.c_str());
  }
  std::printf("  other changes seen between the expected ones: %llu\n",
              static_cast<unsigned long long>(g.others));
  std::printf("  devices listed before / after the cycles: %zu / %zu\n", g.devices_before,
              g.devices_after);
  std::printf("  portierd stopped with SIGTERM: exit code %d after %.1f ms\n", rc,
              static_cast<double>(took) / 1e6);
  if (add.n == 0) g.ok = false;
  if (g.ok) {
    std::printf("\ntargets:\n");
    std::printf("  uevent -> DeviceAdded p99: %.1f µs (target p99 < 5 ms: %s)\n", add.p99,
                add.p99 < kTargetP99Us ? "met" : "NOT met");
    return 0;
  }
  std::printf("\nERROR: %s\n", g.error.empty() ? "no cycle measured" : g.error.c_str());
  std::fprintf(stderr, "portierd log:\n%s", daemon.log().c_str());
  return 1;
}

int parse_int(const char* flag, const char* v, int lo, int hi) {
  return parse_int_arg("hotplug_bench", flag, v, lo, hi);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--count") {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "hotplug_bench: --count needs a value\n");
        return 2;
      }
      o.count = parse_int("--count", argv[++i], 1, 100000);
    } else if (a == "--help" || a == "-h") {
      std::printf("usage: hotplug_bench [--count N]\n  default --count 300\n");
      return 0;
    } else {
      std::fprintf(stderr, "hotplug_bench: unknown argument '%s' (try --help)\n", a.c_str());
      return 2;
    }
  }
  install_stop_signals();
  try {
    int rc = run(o);
    if (rc == 130) std::fprintf(stderr, "hotplug_bench: interrupted\n");
    return rc;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "hotplug_bench: %s\n", e.what());
    return 1;
  }
}
