#include "drivers/pcsc/private_pcscd.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <winscard.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

namespace portier::drivers::pcsc_testing {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr char kPcscd[] = "/usr/sbin/pcscd";
constexpr char kVpcd[] = "/usr/lib/pcsc/drivers/serial/libifdvpcd.so";
constexpr auto kStartDeadline = std::chrono::seconds(10);
constexpr auto kPollStep = std::chrono::milliseconds(20);

// Removes the per-process socket folder when the process exits.
struct SocketDir {
  std::string dir;
  ~SocketDir() {
    std::error_code ec;
    if (!dir.empty()) fs::remove_all(dir, ec);
  }
};

std::string make_temp_dir(const char* stem) {
  std::string tmpl = (fs::temp_directory_path() / (std::string(stem) + "-XXXXXX")).string();
  if (::mkdtemp(tmpl.data()) == nullptr) return {};
  return tmpl;
}

// A port P with P and P+1 both free on all addresses (vpcd binds 0.0.0.0),
// or 0. Another process may take it before pcscd binds it: start() retries.
int free_port_pair() {
  for (int attempt = 0; attempt < 100; ++attempt) {
    const int a = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (a < 0) return 0;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
    addr.sin_port = 0;
    socklen_t len = sizeof addr;
    if (::bind(a, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::getsockname(a, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      ::close(a);
      continue;
    }
    const int port = ntohs(addr.sin_port);
    bool ok = false;
    if (port > 0 && port < 65535) {
      const int b = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in next = addr;
      next.sin_port = htons(static_cast<std::uint16_t>(port + 1));
      ok = b >= 0 && ::bind(b, reinterpret_cast<sockaddr*>(&next), sizeof next) == 0;
      if (b >= 0) ::close(b);
    }
    ::close(a);
    if (ok) return port;
  }
  return 0;
}

// Whether this process may create a mount namespace (root in a container
// may still lack CAP_SYS_ADMIN).
bool can_unshare_mounts() {
  const pid_t pid = ::fork();
  if (pid < 0) return false;
  if (pid == 0) _exit(::unshare(CLONE_NEWNS) == 0 ? 0 : 1);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
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

}  // namespace

const std::string& process_socket() {
  static SocketDir dir{make_temp_dir("portier-pcscd-sock")};
  static const std::string socket = [] {
    const std::string path = dir.dir + "/pcscd.comm";
    ::setenv("PCSCLITE_CSOCK_NAME", path.c_str(), 1);
    return path;
  }();
  return socket;
}

std::string PrivatePcscd::unavailable_reason() {
  if (::geteuid() != 0) {
    return "needs root: the test's own pcscd runs in a mount namespace of its own";
  }
  if (::access(kPcscd, X_OK) != 0) return std::string(kPcscd) + " is not installed (pcscd)";
  if (::access(kVpcd, R_OK) != 0) {
    return std::string(kVpcd) + " is not installed (vsmartcard-vpcd)";
  }
  static const bool unshare_ok = can_unshare_mounts();
  if (!unshare_ok) return "cannot create a mount namespace (unshare CLONE_NEWNS)";
  return {};
}

PrivatePcscd::PrivatePcscd(std::string friendly_name) : friendly_(std::move(friendly_name)) {
  process_socket();
  dir_ = make_temp_dir("portier-pcscd");
}

PrivatePcscd::~PrivatePcscd() {
  stop();
  std::error_code ec;
  if (!dir_.empty()) fs::remove_all(dir_, ec);
}

std::string PrivatePcscd::reader(int slot) const {
  return friendly_ + " 00 0" + std::to_string(slot);
}

std::string PrivatePcscd::log_tail() const {
  std::ifstream in(dir_ + "/pcscd.log");
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  return s.size() > 4000 ? s.substr(s.size() - 4000) : s;
}

std::string PrivatePcscd::start() {
  if (dir_.empty()) return "cannot create a temp dir";
  std::string last;
  for (int attempt = 0; attempt < 3; ++attempt) {
    last = start_once();
    if (last.empty()) return last;
  }
  return last;
}

std::string PrivatePcscd::start_once() {
  if (pid_ > 0) return "pcscd is already running";
  port_ = free_port_pair();
  if (port_ == 0) return "no free TCP port pair";

  const std::string conf = dir_ + "/reader.conf.d";
  fs::create_directories(conf);
  {
    std::ofstream entry(conf + "/vpcd");
    entry << "FRIENDLYNAME \"" << friendly_ << "\"\n"
          << "DEVICENAME   /dev/null:" << port_ << "\n"
          << "LIBPATH      " << kVpcd << "\n"
          << "CHANNELID    " << port_ << "\n";
  }
  // A pcscd killed earlier leaves its socket and pid file behind.
  const std::string run_dir = fs::path(process_socket()).parent_path().string();
  std::error_code ec;
  fs::remove(run_dir + "/pcscd.comm", ec);
  fs::remove(run_dir + "/pcscd.pid", ec);

  // Everything the child needs is prepared before fork(): after it, only
  // async-signal-safe calls.
  const std::string log = dir_ + "/pcscd.log";
  std::vector<std::string> args = {kPcscd, "--foreground", "--config", conf};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t parent = ::getpid();

  const pid_t pid = ::fork();
  if (pid < 0) return std::string("fork: ") + std::strerror(errno);
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) _exit(120);  // the test died already
    ::setpgid(0, 0);
    if (::unshare(CLONE_NEWNS) != 0) _exit(121);
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) _exit(122);
    if (::mount("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") != 0) _exit(123);
    if (::mkdir("/run/pcscd", 0755) != 0) _exit(124);
    if (::mount(run_dir.c_str(), "/run/pcscd", nullptr, MS_BIND, nullptr) != 0) _exit(125);
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
    }
    ::execv(kPcscd, argv.data());
    _exit(127);
  }
  pid_ = pid;

  const auto deadline = Clock::now() + kStartDeadline;
  const std::vector<std::string> want = {reader(0), reader(1)};
  while (Clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return "pcscd exited (status " + std::to_string(status) + ") during start; log:\n" +
             log_tail();
    }
    if (fs::exists(process_socket()) && listed_readers() == want) {
      return "";
    }
    std::this_thread::sleep_for(kPollStep);
  }
  std::string failure = "pcscd did not list " + want[0] + " and " + want[1] +
                        " within 10 s (port " + std::to_string(port_) + "); log:\n" + log_tail();
  reap(SIGKILL, 0);
  return failure;
}

void PrivatePcscd::reap(int signal, int grace_ms) {
  if (pid_ <= 0) return;
  ::kill(pid_, signal);
  const auto deadline = Clock::now() + std::chrono::milliseconds(grace_ms);
  for (;;) {
    int status = 0;
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_ || (r < 0 && errno == ECHILD)) break;
    if (Clock::now() >= deadline) {
      ::kill(pid_, SIGKILL);
      while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  pid_ = -1;
}

void PrivatePcscd::stop() { reap(SIGTERM, 3000); }

void PrivatePcscd::kill_now() { reap(SIGKILL, 0); }

}  // namespace portier::drivers::pcsc_testing
