// APDU round trip through portierd against a direct PC/SC client. A pcscd of
// the bench's own (vpcd virtual reader, mount namespace of its own, as in
// tests/drivers/pcsc/private_pcscd.cc) and a card emulator on slot 0 (as in
// tests/drivers/pcsc/virtual_card.cc; minimal copies of both live here, so
// the bench links neither gtest nor test sources).
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

// ---- a private pcscd with the vpcd reader ----

// Why the bench cannot run here, or "".
std::string unavailable_reason() {
  if (geteuid() != 0) return "needs root: its pcscd runs in a mount namespace of its own";
  if (access(kPcscd, X_OK) != 0) return std::string(kPcscd) + " is not installed (pcscd)";
  if (access(kVpcd, R_OK) != 0) return std::string(kVpcd) + " is not installed (vsmartcard-vpcd)";
  return "";
}

// A port P with P and P+1 both free (vpcd binds both, on all addresses).
int free_port_pair() {
  for (int attempt = 0; attempt < 100; ++attempt) {
    const int a = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (a < 0) return 0;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
    socklen_t len = sizeof addr;
    if (bind(a, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        getsockname(a, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      close(a);
      continue;
    }
    const int port = ntohs(addr.sin_port);
    bool ok = false;
    if (port > 0 && port < 65535) {
      const int b = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in next = addr;
      next.sin_port = htons(static_cast<std::uint16_t>(port + 1));
      ok = b >= 0 && bind(b, reinterpret_cast<sockaddr*>(&next), sizeof next) == 0;
      if (b >= 0) close(b);
    }
    close(a);
    if (ok) return port;
  }
  return 0;
}

std::vector<std::string> listed_readers() {
  std::vector<std::string> out;
  SCARDCONTEXT c = 0;
  if (SCardEstablishContext(SCARD_SCOPE_SYSTEM, nullptr, nullptr, &c) != SCARD_S_SUCCESS) {
    return out;
  }
  char buf[4096];
  DWORD len = sizeof buf;
  if (SCardListReaders(c, nullptr, buf, &len) == SCARD_S_SUCCESS) {
    for (const char* p = buf; *p != '\0' && p < buf + len; p += std::strlen(p) + 1) {
      out.emplace_back(p);
    }
  }
  SCardReleaseContext(c);
  return out;
}

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

// pcscd always puts its socket in /run/pcscd: the child enters a mount
// namespace of its own, mounts a tmpfs on /run and bind-mounts `run_dir` on
// /run/pcscd. The bench (and portierd, which inherits the variable) reach it
// through PCSCLITE_CSOCK_NAME = run_dir/pcscd.comm, set before the first
// PC/SC call. The child gets PR_SET_PDEATHSIG(SIGKILL) (forked from the main
// thread), and the destructor stops it (SIGTERM, SIGKILL after 3 s).
class PrivatePcscd {
 public:
  PrivatePcscd(std::string dir, std::string run_dir, std::string friendly)
      : dir_(std::move(dir)), run_dir_(std::move(run_dir)), friendly_(std::move(friendly)) {}
  ~PrivatePcscd() { stop(); }
  PrivatePcscd(const PrivatePcscd&) = delete;
  PrivatePcscd& operator=(const PrivatePcscd&) = delete;

  // "" once pcscd lists both slots; else why not (after 3 attempts).
  std::string start() {
    std::string why;
    for (int attempt = 0; attempt < 3 && !stop_requested(); ++attempt) {
      why = start_once();
      if (why.empty()) return why;
    }
    return why.empty() ? "interrupted" : why;
  }

  void stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    const auto deadline = std::chrono::steady_clock::now() + 3s;
    for (;;) {
      int status = 0;
      const pid_t r = waitpid(pid_, &status, WNOHANG);
      if (r == pid_ || (r < 0 && errno == ECHILD)) break;
      if (std::chrono::steady_clock::now() >= deadline) {
        kill(pid_, SIGKILL);
        while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
        }
        break;
      }
      std::this_thread::sleep_for(10ms);
    }
    pid_ = -1;
  }

  int port(int slot) const { return port_ + slot; }
  std::string reader(int slot) const { return friendly_ + " 00 0" + std::to_string(slot); }
  std::string log_tail() const {
    std::ifstream in(dir_ + "/pcscd.log");
    std::stringstream ss;
    ss << in.rdbuf();
    std::string s = ss.str();
    return s.size() > 4000 ? s.substr(s.size() - 4000) : s;
  }

 private:
  std::string start_once() {
    port_ = free_port_pair();
    if (port_ == 0) return "no free TCP port pair for vpcd";
    const std::string conf = dir_ + "/reader.conf.d";
    fs::create_directories(conf);
    fs::create_directories(run_dir_);
    write_file(conf + "/vpcd", "FRIENDLYNAME \"" + friendly_ + "\"\nDEVICENAME   /dev/null:" +
                                   std::to_string(port_) + "\nLIBPATH      " + kVpcd +
                                   "\nCHANNELID    " + std::to_string(port_) + "\n");
    std::error_code ec;
    fs::remove(run_dir_ + "/pcscd.comm", ec);
    fs::remove(run_dir_ + "/pcscd.pid", ec);

    // Everything the child needs is prepared before fork().
    const std::string log = dir_ + "/pcscd.log";
    std::vector<std::string> args = {kPcscd, "--foreground", "--config", conf};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const pid_t parent = getpid();
    const pid_t pid = fork();
    if (pid < 0) return std::string("fork: ") + std::strerror(errno);
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(120);
      setpgid(0, 0);  // Ctrl-C reaches the bench only; the bench stops pcscd
      sigset_t none;
      sigemptyset(&none);
      sigprocmask(SIG_SETMASK, &none, nullptr);
      signal(SIGINT, SIG_DFL);
      signal(SIGTERM, SIG_DFL);
      signal(SIGHUP, SIG_DFL);
      signal(SIGPIPE, SIG_DFL);
      if (unshare(CLONE_NEWNS) != 0) _exit(121);
      if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) _exit(122);
      if (mount("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") != 0) _exit(123);
      if (mkdir("/run/pcscd", 0755) != 0) _exit(124);
      if (mount(run_dir_.c_str(), "/run/pcscd", nullptr, MS_BIND, nullptr) != 0) _exit(125);
      const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
      }
      execv(kPcscd, argv.data());
      _exit(127);
    }
    pid_ = pid;
    const std::vector<std::string> want = {reader(0), reader(1)};
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline && !stop_requested()) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return "pcscd exited (wait status " + std::to_string(status) + ") during start; log:\n" +
               log_tail();
      }
      if (fs::exists(run_dir_ + "/pcscd.comm") && listed_readers() == want) return "";
      std::this_thread::sleep_for(20ms);
    }
    stop();
    return "pcscd did not list " + want[0] + " and " + want[1] + " within 10 s; log:\n" +
           log_tail();
  }

  std::string dir_, run_dir_, friendly_;
  pid_t pid_ = -1;
  int port_ = 0;
};

// ---- a card in vpcd slot 0 ----

// vpcd protocol: 2-byte big-endian length, then the body. A 1-byte body is a
// control code (4 = get ATR, answered with the ATR; the others need no
// answer); a longer one is a C-APDU. SELECT (00 A4) answers 90 00, anything
// else 6D 00. The card is inserted while connected, removed on hang-up.
class VirtualCard {
  static constexpr int kOne = 1;

 public:
  VirtualCard(int port, std::string atr) : port_(port), atr_(std::move(atr)) {}
  ~VirtualCard() { remove(); }
  VirtualCard(const VirtualCard&) = delete;
  VirtualCard& operator=(const VirtualCard&) = delete;

  std::string insert() {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return std::string("socket: ") + std::strerror(errno);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<std::uint16_t>(port_));
    if (connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      const int e = errno;
      close(fd_);
      fd_ = -1;
      return "connect to vpcd port " + std::to_string(port_) + ": " + std::strerror(e);
    }
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &kOne, sizeof kOne);
    setsockopt(fd_, IPPROTO_TCP, TCP_QUICKACK, &kOne, sizeof kOne);
    stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    thread_ = std::thread([this] { serve(); });
    return "";
  }

  void remove() {
    if (thread_.joinable()) {
      const std::uint64_t one = 1;
      [[maybe_unused]] auto n = write(stop_fd_, &one, sizeof one);
      thread_.join();
    }
    if (stop_fd_ >= 0) close(stop_fd_);
    stop_fd_ = -1;
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

  std::uint64_t apdus() const { return apdus_.load(); }

 private:
  bool read_exact(std::string& out, std::size_t n) {
    out.assign(n, '\0');
    std::size_t done = 0;
    while (done < n) {
      pollfd p[2] = {{fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
      if (poll(p, 2, -1) < 0) {
        if (errno == EINTR) continue;
        return false;
      }
      if (p[1].revents != 0) return false;
      // vpcd sends the length and the body with two send()s and without
      // TCP_NODELAY: Nagle holds the body back until the length is ACKed,
      // and a delayed ACK takes 40 ms. ACK at once (the flag does not
      // stick, so before every read) or each APDU costs ~44 ms.
      setsockopt(fd_, IPPROTO_TCP, TCP_QUICKACK, &kOne, sizeof kOne);
      const ssize_t got = read(fd_, out.data() + done, n - done);
      if (got > 0) {
        done += static_cast<std::size_t>(got);
      } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
        return false;
      }
    }
    return true;
  }

  bool send_message(const std::string& body) {
    std::string frame;
    frame.push_back(static_cast<char>((body.size() >> 8) & 0xFF));
    frame.push_back(static_cast<char>(body.size() & 0xFF));
    frame += body;
    std::size_t done = 0;
    while (done < frame.size()) {
      const ssize_t n = send(fd_, frame.data() + done, frame.size() - done, MSG_NOSIGNAL);
      if (n > 0) {
        done += static_cast<std::size_t>(n);
      } else if (n < 0 && errno != EINTR) {
        return false;
      }
    }
    return true;
  }

  void serve() {
    std::string header, body;
    for (;;) {
      if (!read_exact(header, 2)) break;
      const std::size_t len =
          (static_cast<std::size_t>(static_cast<unsigned char>(header[0])) << 8) |
          static_cast<unsigned char>(header[1]);
      if (!read_exact(body, len)) break;
      if (len == 1) {
        if (body[0] == 4 && !send_message(atr_)) break;
        continue;
      }
      ++apdus_;
      const bool select =
          len >= 4 && body[0] == 0x00 && static_cast<unsigned char>(body[1]) == 0xA4;
      if (!send_message(select ? kOk : std::string("\x6D\x00", 2))) break;
    }
    shutdown(fd_, SHUT_RDWR);
  }

  const int port_;
  const std::string atr_;
  int fd_ = -1;
  int stop_fd_ = -1;
  std::thread thread_;
  std::atomic<std::uint64_t> apdus_{0};
};

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
  if (auto why = unavailable_reason(); !why.empty()) {
    std::fprintf(stderr, "apdu_bench: cannot run: %s\n", why.c_str());
    return 1;
  }
  TempDir dir;
  const std::string run_dir = dir.file("pcscd-run");
  // Before the first PC/SC call of this process; portierd inherits it.
  setenv("PCSCLITE_CSOCK_NAME", (run_dir + "/pcscd.comm").c_str(), 1);

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

  PrivatePcscd pcscd(dir.file("pcscd"), run_dir, "Virtual PCD");
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
  char* end = nullptr;
  long n = std::strtol(v, &end, 10);
  if (!*v || *end || n < lo || n > hi) {
    std::fprintf(stderr, "apdu_bench: %s must be %d..%d\n", flag, lo, hi);
    std::exit(2);
  }
  return static_cast<int>(n);
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
