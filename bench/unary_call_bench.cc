// What one unary call costs through portierd, against the least a gRPC 1.51
// server can do on this machine. Both servers run in their own process:
// portierd (policy: this binary may `read` on `terminal`), and this binary
// re-executed with --floor-server, a bare sync server answering the same
// portier.v1.Gateway/WhoAmI with a constant Identity of the same shape
// (no identity check, policy or hub), built with the server options of
// portierd that matter for a unary call (sync server, 1 completion queue,
// 1..2 pollers, BDP probe off, 128 KiB messages, 512 threads).
//
// The same client code (one channel per server, sequential calls) calls
// WhoAmI --calls times on each, in blocks that alternate between the two
// servers, so that noise on the machine falls on both alike. Prints p50/p90/
// p99 of each, the server process's CPU per call (utime+stime of all its
// threads, from /proc/<pid>/stat, summed over the measured blocks), and the
// ratios portierd / floor.
//
// usage: unary_call_bench [--calls N] [--warmup N] [--block N] [--floor-by-fd]
#include <grpcpp/grpcpp.h>
#include <grpcpp/server_posix.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
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

constexpr const char* kProgram = "unary_call_bench";
constexpr double kTargetRatio = 1.15;
constexpr auto kCallDeadline = std::chrono::seconds(5);

struct Options {
  int calls = 20000;         // measured, per server
  int warmup = 1000;         // per server, before the first measured block
  int block = 500;           // calls in a row on one server
  bool floor_by_fd = false;  // the floor hands connections to gRPC by fd, as portierd
};

// ---- the floor: a bare sync gRPC server answering WhoAmI ----

class UnaryFloor final : public v1::Gateway::Service {
 public:
  UnaryFloor() {
    // The shape of portierd's answer to the bench: its uid, gid and pid,
    // the executable's path, a 64-character digest and one app name.
    answer_.set_uid(getuid());
    answer_.set_gid(getgid());
    answer_.set_pid(static_cast<std::uint32_t>(getppid()));
    answer_.set_exe(self_exe());
    answer_.set_sha256(std::string(64, '0'));
    answer_.add_apps("bench");
  }

  grpc::Status WhoAmI(grpc::ServerContext*, const v1::WhoAmIRequest*, v1::Identity* resp) override {
    *resp = answer_;
    return grpc::Status::OK;
  }

 private:
  v1::Identity answer_;
};

// by_fd: accept on the socket here and hand each connection to gRPC with
// AddInsecureChannelFromFd, as portierd must (to identify the peer before
// gRPC reads a byte): the floor of that design, without identity or policy.
int run_floor_server(const std::string& socket, bool by_fd) {
  install_stop_signals();
  UnaryFloor service;
  grpc::ServerBuilder builder;
  int lfd = -1;
  if (by_fd) {
    lfd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", socket.c_str());
    if (::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::listen(lfd, 16) != 0) {
      std::fprintf(stderr, "floor server: cannot listen on %s\n", socket.c_str());
      return 1;
    }
  } else {
    builder.AddListeningPort("unix:" + socket, grpc::InsecureServerCredentials());
  }
  builder.RegisterService(&service);
  // As gateway/daemon.cc builds portierd's server.
  builder.SetMaxReceiveMessageSize(128 * 1024);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::NUM_CQS, 1);
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MIN_POLLERS, 1);
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MAX_POLLERS, 2);
  grpc::ResourceQuota quota("unary-floor");
  quota.SetMaxThreads(512);
  builder.SetResourceQuota(quota);
  auto server = builder.BuildAndStart();
  if (!server) {
    std::fprintf(stderr, "floor server: cannot listen on %s\n", socket.c_str());
    return 1;
  }
  std::fprintf(stderr, "floor server ready\n");
  if (by_fd) {
    std::thread([&server, lfd] {
      for (;;) {
        int fd = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) return;
        grpc::AddInsecureChannelFromFd(server.get(), fd);
      }
    }).detach();
  }
  while (!stop_requested()) pause();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(300));
  return 0;
}

// ---- the client ----

struct Target {
  std::string name;
  pid_t pid = -1;
  std::unique_ptr<v1::Gateway::Stub> stub;  // one channel, kept for the run
  std::vector<std::int64_t> latency_ns;
  std::int64_t cpu_ns = 0;  // server CPU over the measured blocks
};

// `n` sequential WhoAmI calls; latencies appended to `out` when given.
// Returns "" or what went wrong.
std::string call_block(Target& t, int n, std::vector<std::int64_t>* out) {
  v1::WhoAmIRequest req;
  v1::Identity resp;
  for (int i = 0; i < n; ++i) {
    if (stop_requested()) return "interrupted";
    const std::int64_t t0 = mono_ns();
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + kCallDeadline);
    grpc::Status st = t.stub->WhoAmI(&ctx, req, &resp);
    const std::int64_t t1 = mono_ns();
    if (!st.ok()) {
      return t.name + ": WhoAmI failed: " + std::to_string(st.error_code()) + " " +
             st.error_message();
    }
    if (out) out->push_back(t1 - t0);
  }
  return "";
}

std::string measured_block(Target& t, int n) {
  const std::int64_t c0 = proc_cpu_ns(t.pid);
  auto err = call_block(t, n, &t.latency_ns);
  const std::int64_t c1 = proc_cpu_ns(t.pid);
  if (c0 < 0 || c1 < 0) return t.name + ": cannot read /proc/" + std::to_string(t.pid) + "/stat";
  t.cpu_ns += c1 - c0;
  return err;
}

std::string policy_read_terminal() {
  return "version = 1\n\n"
         "[[app]]\n"
         "name = \"bench\"\n"
         "uid = " +
         std::to_string(getuid()) + "\nexe = \"" + self_exe() +
         "\"\n\n"
         "[[rule]]\n"
         "app = \"bench\"\n"
         "device = \"terminal\"\n"
         "ops = [\"read\"]\n";
}

int run(const Options& o) {
  double load[3] = {0, 0, 0};
  getloadavg(load, 3);
  std::printf(
      "unary_call_bench: %d WhoAmI calls per server in blocks of %d (alternating), after %d "
      "warm-up calls each\nmachine: %ld cores online, load average %.2f %.2f %.2f\n\n",
      o.calls, o.block, o.warmup, sysconf(_SC_NPROCESSORS_ONLN), load[0], load[1], load[2]);
  std::fflush(stdout);

  TempDir dir;
  auto files = write_daemon_files(dir, "");
  write_file(files.policy, policy_read_terminal());
  ChildProcess daemon({bin_path("portierd"), "--config", files.config});
  if (!daemon.start() || daemon.wait_for_log("ready in", 15000ms) < 0) {
    std::fprintf(stderr, "%s: portierd did not report ready:\n%s\n", kProgram,
                 daemon.log().c_str());
    return stop_requested() ? 130 : 1;
  }
  const std::string fsock = dir.file("floor.sock");
  ChildProcess floor(
      {self_exe(), o.floor_by_fd ? "--floor-server-by-fd" : "--floor-server", fsock});
  if (!floor.start() || floor.wait_for_log("floor server ready", 15000ms) < 0) {
    std::fprintf(stderr, "%s: the floor server did not start:\n%s\n", kProgram,
                 floor.log().c_str());
    return stop_requested() ? 130 : 1;
  }

  Target targets[2];
  targets[0].name = "portierd";
  targets[0].pid = daemon.pid();
  targets[0].stub = connect(files.socket);
  targets[1].name = "gRPC floor";
  targets[1].pid = floor.pid();
  targets[1].stub = connect(fsock);
  for (auto& t : targets) t.latency_ns.reserve(static_cast<std::size_t>(o.calls));

  // The daemon must know the bench as app "bench": a WhoAmI that says so.
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + kCallDeadline);
    ctx.set_wait_for_ready(true);
    v1::Identity me;
    grpc::Status st = targets[0].stub->WhoAmI(&ctx, {}, &me);
    if (!st.ok() || me.apps_size() != 1 || me.apps(0) != "bench") {
      std::fprintf(stderr, "%s: portierd does not see the bench as app \"bench\" (%s)\n%s\n",
                   kProgram, st.ok() ? "apps differ" : st.error_message().c_str(),
                   daemon.log().c_str());
      return 1;
    }
  }
  std::string err;
  for (auto& t : targets) {
    if (err.empty()) err = call_block(t, o.warmup, nullptr);
  }
  for (int done = 0, round = 0; err.empty() && done < o.calls; ++round) {
    const int n = std::min(o.block, o.calls - done);
    // ABBA order: neither server always runs first in a round.
    Target& first = targets[round % 2];
    Target& second = targets[1 - round % 2];
    err = measured_block(first, n);
    if (err.empty()) err = measured_block(second, n);
    done += n;
  }
  if (stop_requested()) return 130;
  if (err.empty() && !daemon.alive()) err = "portierd exited during the run";
  if (err.empty() && !floor.alive()) err = "the floor server exited during the run";
  floor.stop(SIGTERM, 5000ms);
  std::int64_t took = 0;
  const int rc = daemon.stop(SIGTERM, 10000ms, &took);
  if (!err.empty()) {
    std::fprintf(stderr, "%s: %s\nportierd log:\n%s", kProgram, err.c_str(), daemon.log().c_str());
    return 1;
  }

  Summary s[2];
  double cpu_us[2];
  for (int i = 0; i < 2; ++i) {
    s[i] = summarize(targets[i].latency_ns);
    cpu_us[i] = static_cast<double>(targets[i].cpu_ns) / 1000.0 / static_cast<double>(s[i].n);
  }
  std::printf("%-36s %8s %10s %10s %10s %10s %10s %17s\n", "server", "calls", "p50 µs", "p90 µs",
              "p99 µs", "max µs", "mean µs", "server CPU/call");
  for (int i = 0; i < 2; ++i) {
    std::printf("%-36s %8zu %9.1f %9.1f %9.1f %9.1f %9.1f %13.1f µs\n",
                i == 0 ? "portierd (identity check, policy)" : "gRPC floor (baseline)", s[i].n,
                s[i].p50, s[i].p90, s[i].p99, s[i].max, s[i].mean, cpu_us[i]);
  }
  const double p50_ratio = s[1].p50 > 0 ? s[0].p50 / s[1].p50 : 0;
  const double p99_ratio = s[1].p99 > 0 ? s[0].p99 / s[1].p99 : 0;
  const double cpu_ratio = cpu_us[1] > 0 ? cpu_us[0] / cpu_us[1] : 0;
  std::printf(
      "\nratio portierd / floor: p50 %.2fx (%+.1f µs), p99 %.2fx (%+.1f µs), server CPU per call "
      "%.2fx (%+.1f µs)\n",
      p50_ratio, s[0].p50 - s[1].p50, p99_ratio, s[0].p99 - s[1].p99, cpu_ratio,
      cpu_us[0] - cpu_us[1]);
  std::printf("  (CPU: utime+stime in 10 ms ticks, %.0f ms and %.0f ms in all)\n",
              static_cast<double>(targets[0].cpu_ns) / 1e6,
              static_cast<double>(targets[1].cpu_ns) / 1e6);
  std::printf("\ntargets:\n  p50 ratio %.2fx (target <= %.2fx: %s)\n", p50_ratio, kTargetRatio,
              p50_ratio <= kTargetRatio ? "met" : "NOT met");
  std::printf("  server CPU per call ratio %.2fx (target <= %.2fx: %s)\n", cpu_ratio, kTargetRatio,
              cpu_ratio <= kTargetRatio ? "met" : "NOT met");
  std::printf("\nportierd stopped with SIGTERM: exit code %d after %.1f ms\n", rc,
              static_cast<double>(took) / 1e6);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::string_view(argv[1]) == "--floor-server") {
    return run_floor_server(argv[2], false);
  }
  if (argc == 3 && std::string_view(argv[1]) == "--floor-server-by-fd") {
    return run_floor_server(argv[2], true);
  }
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&] { return arg_value(kProgram, argc, argv, i); };
    if (a == "--calls") {
      o.calls = parse_int_arg(kProgram, "--calls", value(), 1, 10000000);
    } else if (a == "--warmup") {
      o.warmup = parse_int_arg(kProgram, "--warmup", value(), 0, 10000000);
    } else if (a == "--block") {
      o.block = parse_int_arg(kProgram, "--block", value(), 1, 10000000);
    } else if (a == "--floor-by-fd") {
      o.floor_by_fd = true;
    } else if (a == "--help" || a == "-h") {
      std::printf(
          "usage: unary_call_bench [--calls N] [--warmup N] [--block N] [--floor-by-fd]\n"
          "  defaults: --calls 20000 --warmup 1000 --block 500\n"
          "  WhoAmI on one channel, sequential calls, against portierd and against a bare\n"
          "  gRPC sync server (this binary with --floor-server SOCKET) in blocks of --block\n"
          "  calls alternating between them; prints p50/p99 and server CPU per call of each\n"
          "  and the ratios portierd / floor (target <= 1.15x). --floor-by-fd: the floor\n"
          "  accepts itself and hands each connection to gRPC with AddInsecureChannelFromFd,\n"
          "  as portierd does (so the floor of that design)\n");
      return 0;
    } else {
      std::fprintf(stderr, "%s: unknown argument '%s' (try --help)\n", kProgram, a.c_str());
      return 2;
    }
  }
  return run_bench(kProgram, [&] { return run(o); });
}
