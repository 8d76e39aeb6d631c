// APDU round trip through portierd against a direct PC/SC client. A pcscd of
// the bench's own (vpcd virtual reader, mount namespace of its own, as in
// tests/drivers/pcsc/private_pcscd.cc) and a card emulator on slot 0
// (tests/drivers/pcsc/virtual_card.cc); both are gtest-free and built into
// the bench.
//
// Paths, one after the other (pcscd serializes a reader, so they never
// overlap), each 100 warm-up exchanges and then N measured ones of the same
// SELECT (00 A4 04 00 02 3F 00 -> 90 00):
//  1. baseline: SCardEstablishContext, SCardConnect, N x SCardTransmit in the
//     bench process; then SCardDisconnect(SCARD_LEAVE_CARD) and
//     SCardReleaseContext, before portierd starts;
//  2. diagnostic: N exchanges with SCardBeginTransaction /
//     SCardEndTransaction around the APDU (what portierd's reader worker
//     does), alternating with N bare ones, so that the cost of the
//     transaction is a difference taken in one run (a direct PC/SC round
//     trip changes by 2-4x between runs with where the scheduler puts the
//     threads of the bench, pcscd and the card on the 2 cores);
//  3. portierd with [pcsc]: one connection, WhoAmI N times (the gRPC unary
//     floor on that connection, diagnostic), then Claim reader0 and N x
//     Transmit.
// Prints p50/p90/p99/max per path, the gateway overhead (path 3 - path 1 at
// p50 and p99) and the target check (< 200 µs at p50).
//
// usage: apdu_bench [--count N]
#include <arpa/inet.h>
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <winscard.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "daemon_launcher.h"
#include "drivers/pcsc/private_pcscd.h"
#include "drivers/pcsc/virtual_card.h"
#include "latency_summary.h"
#include "portier/v1/gateway.grpc.pb.h"

namespace {

namespace fs = std::filesystem;
using namespace portier;
using namespace portier::bench;

constexpr int kWarmup = 100;
constexpr double kTargetOverheadUs = 200;
constexpr char kPcscd[] = "/usr/sbin/pcscd";
constexpr char kVpcd[] = "/usr/lib/pcsc/drivers/serial/libifdvpcd.so";
constexpr char kDevice[] = "reader0";
const std::string kAtr("\x3B\x80\x80\x01\x01", 5);
const std::string kSelect("\x00\xA4\x04\x00\x02\x3F\x00", 7);
const std::string kOk("\x90\x00", 2);

struct Options {
  int count = 2000;
};

// Runs `fn` when the scope ends, on every path.
class ScopeExit {
 public:
  explicit ScopeExit(std::function<void()> fn) : fn_(std::move(fn)) {}
  ~ScopeExit() {
    if (fn_) fn_();
  }
  ScopeExit(const ScopeExit&) = delete;
  ScopeExit& operator=(const ScopeExit&) = delete;

 private:
  std::function<void()> fn_;
};

std::string pcsc_text(LONG rv) {
  char buf[32];
  std::snprintf(buf, sizeof buf, " (0x%08lX)", static_cast<unsigned long>(rv));
  return pcsc_stringify_error(rv) + std::string(buf);
}

// The PC/SC tests' private pcscd (vpcd reader, mount namespace of its own)
// and card emulator (tests/drivers/pcsc/, gtest-free).
using drivers::pcsc_testing::PrivatePcscd;
using drivers::pcsc_testing::VirtualCard;

bool card_present(const std::string& reader) {
  SCARDCONTEXT c = 0;
  if (SCardEstablishContext(SCARD_SCOPE_SYSTEM, nullptr, nullptr, &c) != SCARD_S_SUCCESS) {
    return false;
  }
  SCARD_READERSTATE s{};
  s.szReader = reader.c_str();
  s.dwCurrentState = SCARD_STATE_UNAWARE;
  const LONG rv = SCardGetStatusChange(c, 0, &s, 1);
  SCardReleaseContext(c);
  return rv == SCARD_S_SUCCESS && (s.dwEventState & SCARD_STATE_PRESENT) != 0;
}

// ---- figures ----

struct PathResult {
  std::string name;
  std::vector<std::int64_t> ns;  // measured round trips
  Summary s;
  // Path 2 only: the bare SCardTransmits interleaved with the measured
  // transactions (same run, same CPU placement: a fair difference).
  std::vector<std::int64_t> ns_bare;
  Summary s_bare;
  bool ok = true;
  std::string error;
  // Only for runs against portierd:
  double daemon_cpu_us_per_call = -1;
  double daemon_cpu_pct = -1;
  double exited_threads_cpu_pct = -1;  // CPU of threads that ended during the run
  std::string daemon_threads;
  std::uint64_t card_apdus = 0;
  bool counts_card = false;
};

void fail(PathResult& r, std::string why) {
  if (r.ok) {
    r.ok = false;
    r.error = std::move(why);
  }
}

// ---- paths 1 and 2: PC/SC straight through pcscd ----

// interleaved = false: `count` bare SCardTransmits (the baseline).
// interleaved = true: 2 x `count` exchanges alternating a bare SCardTransmit
// with Begin/Transmit/EndTransaction (what portierd's reader worker does).
PathResult run_direct(const std::string& reader, int count, bool interleaved, VirtualCard& card) {
  PathResult r;
  r.name = interleaved ? "direct + Begin/EndTransaction" : "baseline: direct SCardTransmit";
  r.counts_card = true;
  SCARDCONTEXT ctx = 0;
  LONG rv = SCardEstablishContext(SCARD_SCOPE_SYSTEM, nullptr, nullptr, &ctx);
  if (rv != SCARD_S_SUCCESS) {
    fail(r, "SCardEstablishContext: " + pcsc_text(rv));
    return r;
  }
  SCARDHANDLE handle = 0;
  bool connected = false;
  // The card handle is let go before the daemon's run starts: disconnect
  // (leaving the card as it is), then release the context. Every exit path.
  ScopeExit release([&] {
    if (connected) SCardDisconnect(handle, SCARD_LEAVE_CARD);
    SCardReleaseContext(ctx);
  });
  DWORD protocol = 0;
  rv = SCardConnect(ctx, reader.c_str(), SCARD_SHARE_SHARED, SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1,
                    &handle, &protocol);
  if (rv != SCARD_S_SUCCESS) {
    fail(r, "SCardConnect: " + pcsc_text(rv));
    return r;
  }
  connected = true;
  const SCARD_IO_REQUEST* pci = protocol == SCARD_PROTOCOL_T0 ? SCARD_PCI_T0 : SCARD_PCI_T1;
  r.ns.reserve(static_cast<std::size_t>(count));
  std::uint64_t apdus_warm = card.apdus();
  const int total = kWarmup + (interleaved ? 2 * count : count);
  for (int i = 0; i < total; ++i) {
    const bool transactions = interleaved && i % 2 == 1;
    if (stop_requested()) {
      fail(r, "interrupted");
      return r;
    }
    if (i == kWarmup) apdus_warm = card.apdus();
    BYTE resp[MAX_BUFFER_SIZE];
    DWORD len = sizeof resp;
    const std::int64_t t0 = mono_ns();
    if (transactions) {
      rv = SCardBeginTransaction(handle);
      if (rv != SCARD_S_SUCCESS) {
        fail(r, "SCardBeginTransaction #" + std::to_string(i) + ": " + pcsc_text(rv));
        return r;
      }
    }
    rv = SCardTransmit(handle, pci, reinterpret_cast<const BYTE*>(kSelect.data()),
                       static_cast<DWORD>(kSelect.size()), nullptr, resp, &len);
    const LONG end = transactions ? SCardEndTransaction(handle, SCARD_LEAVE_CARD) : SCARD_S_SUCCESS;
    const std::int64_t t1 = mono_ns();
    if (rv != SCARD_S_SUCCESS) {
      fail(r, "SCardTransmit #" + std::to_string(i) + ": " + pcsc_text(rv));
      return r;
    }
    if (end != SCARD_S_SUCCESS) {
      fail(r, "SCardEndTransaction #" + std::to_string(i) + ": " + pcsc_text(end));
      return r;
    }
    if (std::string(reinterpret_cast<const char*>(resp), len) != kOk) {
      fail(r, "exchange #" + std::to_string(i) + ": the card did not answer 90 00");
      return r;
    }
    if (i >= kWarmup) (interleaved && !transactions ? r.ns_bare : r.ns).push_back(t1 - t0);
  }
  r.card_apdus = card.apdus() - apdus_warm;
  return r;
}

// ---- path 3: through portierd ----

bool reader_ready(const std::string& socket) {
  v1::Health h;
  if (!get_health(socket, &h).ok()) return false;
  for (auto& d : h.devices()) {
    if (d.id() == kDevice) return d.state() == v1::DEVICE_STATE_READY;
  }
  return false;
}

// CPU of portierd over a measured loop: per call, as % of one core, per
// thread name, and what threads that ended meanwhile used (the process
// total counts them, the per-thread snapshot cannot).
struct CpuProbe {
  pid_t pid;
  std::int64_t cpu0, t0;
  std::map<pid_t, ThreadCpu> threads0;
  explicit CpuProbe(pid_t p)
      : pid(p), cpu0(proc_cpu_ns(p)), t0(mono_ns()), threads0(thread_cpu_ns(p)) {}
  void finish(PathResult& r, std::size_t calls) {
    const std::int64_t cpu1 = proc_cpu_ns(pid), t1 = mono_ns();
    const auto threads1 = thread_cpu_ns(pid);
    if (cpu0 < 0 || cpu1 < 0 || t1 <= t0 || calls == 0) return;
    const auto wall = static_cast<double>(t1 - t0);
    r.daemon_cpu_pct = 100.0 * static_cast<double>(cpu1 - cpu0) / wall;
    r.daemon_cpu_us_per_call =
        static_cast<double>(cpu1 - cpu0) / 1000.0 / static_cast<double>(calls);
    std::int64_t live = 0;
    for (auto& [tid, t] : threads1) {
      auto it = threads0.find(tid);
      live += t.ns - (it == threads0.end() ? 0 : it->second.ns);
    }
    r.exited_threads_cpu_pct = 100.0 * static_cast<double>(cpu1 - cpu0 - live) / wall;
    r.daemon_threads = thread_cpu_report(threads0, threads1, t1 - t0);
  }
};

PathResult run_whoami(v1::Gateway::Stub& stub, pid_t daemon, int count) {
  PathResult r;
  r.name = "portierd: WhoAmI (gRPC floor)";
  r.ns.reserve(static_cast<std::size_t>(count));
  std::unique_ptr<CpuProbe> probe;
  for (int i = 0; i < kWarmup + count; ++i) {
    if (stop_requested()) {
      fail(r, "interrupted");
      return r;
    }
    if (i == kWarmup) probe = std::make_unique<CpuProbe>(daemon);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 10s);
    v1::Identity id;
    const std::int64_t t0 = mono_ns();
    auto st = stub.WhoAmI(&ctx, {}, &id);
    const std::int64_t t1 = mono_ns();
    if (!st.ok()) {
      fail(r, "WhoAmI #" + std::to_string(i) + ": " + st.error_message());
      return r;
    }
    if (i >= kWarmup) r.ns.push_back(t1 - t0);
  }
  probe->finish(r, r.ns.size());
  return r;
}

PathResult run_gateway(v1::Gateway::Stub& stub, pid_t daemon, int count, VirtualCard& card) {
  PathResult r;
  r.name = "portierd: Transmit";
  r.counts_card = true;
  const std::uint32_t lease_seconds = 300;  // the default max_lease_seconds
  std::string lease_id;
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 10s);
    v1::ClaimRequest req;
    req.set_device_id(kDevice);
    req.set_seconds(lease_seconds);
    v1::ClaimResponse resp;
    auto st = stub.Claim(&ctx, req, &resp);
    if (!st.ok()) {
      fail(r, "Claim reader0: " + st.error_message());
      return r;
    }
    lease_id = resp.lease().lease_id();
  }
  std::int64_t renewed = mono_ns();
  v1::TransmitRequest req;
  req.set_device_id(kDevice);
  req.set_apdu(kSelect);
  req.set_timeout_ms(5000);
  r.ns.reserve(static_cast<std::size_t>(count));
  std::unique_ptr<CpuProbe> probe;
  std::uint64_t apdus_warm = 0;
  for (int i = 0; i < kWarmup + count; ++i) {
    if (stop_requested()) {
      fail(r, "interrupted");
      return r;
    }
    if (mono_ns() - renewed > 100'000'000'000LL) {  // long runs: renew, untimed
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + 10s);
      v1::RenewRequest rr;
      rr.set_lease_id(lease_id);
      rr.set_seconds(lease_seconds);
      v1::ClaimResponse resp;
      if (auto st = stub.Renew(&ctx, rr, &resp); !st.ok()) {
        fail(r, "Renew: " + st.error_message());
        return r;
      }
      renewed = mono_ns();
    }
    if (i == kWarmup) {
      probe = std::make_unique<CpuProbe>(daemon);
      apdus_warm = card.apdus();
    }
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 10s);
    v1::TransmitResponse resp;
    const std::int64_t t0 = mono_ns();
    auto st = stub.Transmit(&ctx, req, &resp);
    const std::int64_t t1 = mono_ns();
    if (!st.ok()) {
      fail(r, "Transmit #" + std::to_string(i) + ": " + st.error_message());
      return r;
    }
    if (resp.response() != kOk) {
      fail(r, "Transmit #" + std::to_string(i) + ": the card did not answer 90 00");
      return r;
    }
    if (i >= kWarmup) r.ns.push_back(t1 - t0);
  }
  probe->finish(r, r.ns.size());
  r.card_apdus = card.apdus() - apdus_warm;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 10s);
  v1::ReleaseRequest rel;
  rel.set_lease_id(lease_id);
  v1::ReleaseResponse rresp;
  stub.Release(&ctx, rel, &rresp);
  return r;
}

// ---- output ----

void print_row(const PathResult& r) {
  std::printf("%-32s %8.1f %8.1f %8.1f %9.1f %8.1f %7zu\n", r.name.c_str(), r.s.p50, r.s.p90,
              r.s.p99, r.s.max, r.s.mean, r.s.n);
}

std::size_t count_lines_with(const std::string& path, const std::string& needle,
                             std::size_t* lines_total, std::size_t* bytes) {
  std::ifstream in(path);
  std::string line;
  std::size_t n = 0;
  *lines_total = 0;
  *bytes = 0;
  while (std::getline(in, line)) {
    ++*lines_total;
    *bytes += line.size() + 1;
    if (line.find(needle) != std::string::npos) ++n;
  }
  return n;
}

int run(const Options& o) {
  if (auto why = PrivatePcscd::unavailable_reason(); !why.empty()) {
    std::fprintf(stderr, "apdu_bench: cannot run: %s\n", why.c_str());
    return 1;
  }
  TempDir dir;
  // Sets PCSCLITE_CSOCK_NAME before the first PC/SC call of this process;
  // portierd inherits it.
  drivers::pcsc_testing::process_socket();

  std::printf(
      "apdu_bench: %d measured exchanges per path after %d warm-up, APDU 00 A4 04 00 02 3F 00 "
      "(SELECT) -> 90 00\n",
      o.count, kWarmup);
  double load[3] = {0, 0, 0};
  getloadavg(load, 3);
  std::printf(
      "machine: %ld cores online, load average %.2f %.2f %.2f; round trip = CLOCK_MONOTONIC "
      "around the call\n",
      sysconf(_SC_NPROCESSORS_ONLN), load[0], load[1], load[2]);
  std::fflush(stdout);

  PrivatePcscd pcscd("Virtual PCD");
  if (auto why = pcscd.start(); !why.empty()) {
    std::fprintf(stderr, "apdu_bench: private pcscd: %s\n", why.c_str());
    return stop_requested() ? 130 : 1;
  }
  VirtualCard card(pcscd.port(0), kAtr);
  if (auto why = card.insert(); !why.empty()) {
    std::fprintf(stderr, "apdu_bench: card: %s\n", why.c_str());
    return 1;
  }
  const std::string reader = pcscd.reader(0);
  if (!wait_until([&] { return card_present(reader); }, 10000ms)) {
    std::fprintf(stderr, "apdu_bench: pcscd does not see the card in \"%s\"; pcscd log:\n%s\n",
                 reader.c_str(), pcscd.log_tail().c_str());
    return stop_requested() ? 130 : 1;
  }
  std::printf("pcscd %s with vpcd: reader \"%s\", card emulator on TCP port %d\n\n", kPcscd,
              reader.c_str(), pcscd.port(0));
  std::fflush(stdout);

  std::vector<PathResult> results;
  // 1 and 2: the bench's own PC/SC context, released before portierd starts.
  results.push_back(run_direct(reader, o.count, false, card));
  if (results.back().ok && !stop_requested()) {
    results.push_back(run_direct(reader, o.count, true, card));
  }
  if (stop_requested()) return 130;
  for (auto& r : results) {
    if (!r.ok) {
      std::fprintf(stderr, "apdu_bench: %s: %s\npcscd log:\n%s\n", r.name.c_str(), r.error.c_str(),
                   pcscd.log_tail().c_str());
      return 1;
    }
  }

  // 3: portierd with [pcsc]; reader0 pinned to slot 0.
  auto files = write_daemon_files(dir, "\n[pcsc]\nid_prefix = \"reader\"\n[pcsc.pinned]\n" +
                                           std::string(kDevice) + " = \"" + reader + "\"\n");
  ChildProcess daemon({bin_path("portierd"), "--config", files.config});
  if (!daemon.start()) throw std::runtime_error("cannot start portierd");
  if (daemon.wait_for_log("ready in", 15000ms) < 0) {
    std::fprintf(stderr, "apdu_bench: portierd did not report ready:\n%s\n", daemon.log().c_str());
    return stop_requested() ? 130 : 1;
  }
  if (!wait_until([&] { return reader_ready(files.socket); }, 10000ms)) {
    std::fprintf(stderr, "apdu_bench: reader0 did not become READY:\n%s\n", daemon.log().c_str());
    return stop_requested() ? 130 : 1;
  }
  auto stub = connect(files.socket);
  results.push_back(run_whoami(*stub, daemon.pid(), o.count));
  if (results.back().ok && !stop_requested()) {
    results.push_back(run_gateway(*stub, daemon.pid(), o.count, card));
  }
  stub.reset();
  std::int64_t took = 0;
  const int rc = daemon.stop(SIGTERM, 10000ms, &took);
  if (stop_requested()) return 130;

  bool all_ok = true;
  for (auto& r : results) {
    r.s = summarize(r.ns);
    r.s_bare = summarize(r.ns_bare);
    all_ok = all_ok && r.ok;
  }
  std::printf("%-32s %8s %8s %8s %9s %8s %7s\n", "path", "p50 µs", "p90 µs", "p99 µs", "max µs",
              "mean µs", "n");
  for (auto& r : results) print_row(r);

  const PathResult& base = results[0];
  const PathResult* tx = results.size() > 1 ? &results[1] : nullptr;
  const PathResult* who = results.size() > 2 ? &results[2] : nullptr;
  const PathResult* gw = results.size() > 3 && results[3].ok ? &results[3] : nullptr;

  std::printf("\ndetails:\n");
  for (auto& r : results) {
    if (r.counts_card && r.ok) {
      std::printf("  %s: the card answered %llu APDUs for %zu measured exchanges\n", r.name.c_str(),
                  static_cast<unsigned long long>(r.card_apdus), r.s.n + r.s_bare.n);
    }
    if (r.daemon_cpu_pct >= 0) {
      std::printf(
          "  %s: portierd CPU %.1f µs per call (%.1f %% of one core), of which threads that "
          "ended during the run %.1f %%; live threads: %s\n",
          r.name.c_str(), r.daemon_cpu_us_per_call, r.daemon_cpu_pct, r.exited_threads_cpu_pct,
          r.daemon_threads.c_str());
    }
    if (!r.ok) std::printf("  %s: ERROR: %s\n", r.name.c_str(), r.error.c_str());
  }
  const double tx_cost50 = tx ? tx->s.p50 - tx->s_bare.p50 : 0;
  if (tx) {
    std::printf(
        "  a PC/SC transaction around each APDU (as portierd's reader worker does): p50 %.1f / "
        "p99 %.1f µs against p50 %.1f / p99 %.1f µs for the bare SCardTransmits interleaved "
        "with them: it costs p50 %+.1f µs, p99 %+.1f µs\n",
        tx->s.p50, tx->s.p99, tx->s_bare.p50, tx->s_bare.p99, tx_cost50,
        tx->s.p99 - tx->s_bare.p99);
  }
  std::size_t lines = 0, bytes = 0;
  const std::size_t transmit_records =
      count_lines_with(dir.file("state/audit.jsonl"), "\"op\":\"transmit\"", &lines, &bytes);
  std::printf("  audit log after the run: %zu records (%zu bytes), %zu of them for op transmit\n",
              lines, bytes, transmit_records);
  std::printf("  portierd stopped with SIGTERM: exit code %d after %.1f ms\n", rc,
              static_cast<double>(took) / 1e6);

  if (gw) {
    const double over50 = gw->s.p50 - base.s.p50, over99 = gw->s.p99 - base.s.p99;
    std::printf("\ngateway overhead (portierd Transmit - direct SCardTransmit):\n");
    std::printf("  p50 %+.1f µs, p99 %+.1f µs; ratio p50 %.2fx, p99 %.2fx\n", over50, over99,
                base.s.p50 > 0 ? gw->s.p50 / base.s.p50 : 0.0,
                base.s.p99 > 0 ? gw->s.p99 / base.s.p99 : 0.0);
    if (tx && who) {
      std::printf(
          "  rough split at p50: PC/SC transaction %+.1f µs, gRPC unary call with the per-call "
          "identity check (WhoAmI) %.1f µs, the rest (thread per call, hand-offs to the reader "
          "worker and back, policy, audit) %+.1f µs\n",
          tx_cost50, who->s.p50, over50 - tx_cost50 - who->s.p50);
    }
    std::printf("\ntargets:\n");
    std::printf("  gateway overhead p50: %.1f µs (target < %.0f µs: %s)\n", over50,
                kTargetOverheadUs, over50 < kTargetOverheadUs ? "met" : "NOT met");
    std::printf("  gateway overhead p99: %.1f µs (no target; for the record)\n", over99);
  }
  if (!all_ok) {
    std::printf("\nSOME RUNS FAILED (see ERROR above)\n");
    std::fprintf(stderr, "portierd log:\n%s\npcscd log:\n%s\n", daemon.log().c_str(),
                 pcscd.log_tail().c_str());
    return 1;
  }
  return 0;
}

int parse_int(const char* flag, const char* v, int lo, int hi) {
  return parse_int_arg("apdu_bench", flag, v, lo, hi);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--count") {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "apdu_bench: --count needs a value\n");
        return 2;
      }
      o.count = parse_int("--count", argv[++i], 1, 1000000);
    } else if (a == "--help" || a == "-h") {
      std::printf(
          "usage: apdu_bench [--count N]\n"
          "  default --count 2000; needs root, pcscd and vsmartcard-vpcd\n");
      return 0;
    } else {
      std::fprintf(stderr, "apdu_bench: unknown argument '%s' (try --help)\n", a.c_str());
      return 2;
    }
  }
  install_stop_signals();
  try {
    int rc = run(o);
    if (rc == 130) std::fprintf(stderr, "apdu_bench: interrupted\n");
    return rc;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "apdu_bench: %s\n", e.what());
    return 1;
  }
}
