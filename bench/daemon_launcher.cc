#include "daemon_launcher.h"

#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <vector>

#ifndef PORTIER_BIN_DIR
#error "PORTIER_BIN_DIR must be defined (bench/gateway.cmake does it)"
#endif

namespace portier::bench {
namespace {

volatile sig_atomic_t g_stop = 0;

void on_stop_signal(int) { g_stop = 1; }

}  // namespace

std::int64_t mono_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

int parse_int_arg(const char* program, const char* flag, const char* value, int lo, int hi) {
  char* end = nullptr;
  const long n = std::strtol(value, &end, 10);
  if (!*value || *end || n < lo || n > hi) {
    std::fprintf(stderr, "%s: %s must be %d..%d\n", program, flag, lo, hi);
    std::exit(2);
  }
  return static_cast<int>(n);
}

const char* arg_value(const char* program, int argc, char** argv, int& i) {
  if (i + 1 >= argc) {
    std::fprintf(stderr, "%s: %s needs a value\n", program, argv[i]);
    std::exit(2);
  }
  return argv[++i];
}

int run_bench(const char* program, const std::function<int()>& body) {
  install_stop_signals();
  try {
    int rc = body();
    if (rc == 130) std::fprintf(stderr, "%s: interrupted\n", program);
    return rc;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", program, e.what());
    return 1;
  }
}

void install_stop_signals() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: sleeps return early
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGHUP, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

bool stop_requested() { return g_stop != 0; }

TempDir::TempDir() {
  char tmpl[] = "/tmp/portier-bench-XXXXXX";
  if (!mkdtemp(tmpl)) throw std::runtime_error(std::string("mkdtemp: ") + std::strerror(errno));
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

void write_file(const std::string& path, const std::string& content) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << content;
  if (!f.flush()) throw std::runtime_error("cannot write " + path);
}

std::string self_exe() { return std::filesystem::read_symlink("/proc/self/exe").string(); }

std::string bin_path(const std::string& name) { return std::string(PORTIER_BIN_DIR) + "/" + name; }

std::string read_proc_status(pid_t pid, const char* key) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line, want = std::string(key) + ":";
  while (std::getline(f, line)) {
    if (line.rfind(want, 0) == 0) {
      auto v = line.substr(want.size());
      auto b = v.find_first_not_of(" \t");
      return b == std::string::npos ? "" : v.substr(b);
    }
  }
  return "";
}

long proc_status_kb(pid_t pid, const char* key) {
  auto v = read_proc_status(pid, key);
  if (v.empty()) return -1;
  return std::strtol(v.c_str(), nullptr, 10);
}

namespace {

// utime+stime from a /proc/.../stat file, in ns; -1 when unreadable.
std::int64_t stat_cpu_ns(const std::string& path) {
  std::ifstream f(path);
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  // comm (field 2) may hold spaces; fields after it start past the last ')'.
  auto p = s.rfind(')');
  if (p == std::string::npos) return -1;
  std::istringstream in(s.substr(p + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && in >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  const long hz = sysconf(_SC_CLK_TCK);
  return static_cast<std::int64_t>((utime + stime) *
                                   (1000000000ull / static_cast<unsigned long long>(hz)));
}

}  // namespace

std::int64_t proc_cpu_ns(pid_t pid) {
  return stat_cpu_ns("/proc/" + std::to_string(pid) + "/stat");
}

std::int64_t proc_sched_ns(pid_t pid) {
  std::int64_t total = 0;
  std::error_code ec;
  for (auto& e :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    std::ifstream f(e.path() / "schedstat");
    long long on_cpu = 0;
    if (f >> on_cpu) total += on_cpu;
  }
  return ec ? -1 : total;
}

std::map<pid_t, ThreadCpu> thread_cpu_ns(pid_t pid) {
  std::map<pid_t, ThreadCpu> out;
  std::error_code ec;
  for (auto& e :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    pid_t tid = static_cast<pid_t>(std::atoi(e.path().filename().c_str()));
    std::ifstream comm(e.path() / "comm");
    ThreadCpu t;
    std::getline(comm, t.name);
    t.ns = stat_cpu_ns((e.path() / "stat").string());
    if (t.ns >= 0) out[tid] = t;
  }
  return out;
}

std::string thread_cpu_report(const std::map<pid_t, ThreadCpu>& before,
                              const std::map<pid_t, ThreadCpu>& after, std::int64_t wall_ns) {
  struct Agg {
    int threads = 0;
    std::int64_t ns = 0;
  };
  std::map<std::string, Agg> by_name;
  for (auto& [tid, t] : after) {
    auto it = before.find(tid);
    auto& a = by_name[t.name];
    ++a.threads;
    a.ns += t.ns - (it == before.end() ? 0 : it->second.ns);
  }
  std::vector<std::pair<std::string, Agg>> v(by_name.begin(), by_name.end());
  std::sort(v.begin(), v.end(), [](auto& a, auto& b) { return a.second.ns > b.second.ns; });
  std::string out;
  char buf[128];
  for (auto& [name, a] : v) {
    if (a.ns <= 0) continue;
    std::snprintf(buf, sizeof(buf), "%s%s x%d %.1f %%", out.empty() ? "" : ", ", name.c_str(),
                  a.threads, 100.0 * static_cast<double>(a.ns) / static_cast<double>(wall_ns));
    out += buf;
  }
  return out.empty() ? "(no thread used a full clock tick)" : out;
}

std::string policy_allowing_self() {
  return "version = 1\n\n"
         "[[app]]\n"
         "name = \"bench\"\n"
         "uid = " +
         std::to_string(getuid()) +
         "\n"
         "exe = \"" +
         self_exe() +
         "\"\n\n"
         "[[rule]]\n"
         "app = \"bench\"\n"
         "device = \"*\"\n"
         "ops = [\"*\"]\n";
}

DaemonFiles write_daemon_files(const TempDir& dir, const std::string& extra, int subscriber_queue) {
  DaemonFiles f;
  f.config = dir.file("portierd.toml");
  f.socket = dir.file("portierd.sock");
  f.policy = dir.file("policy.toml");
  write_file(f.policy, policy_allowing_self());
  std::string cfg = "socket = \"" + f.socket +
                    "\"\n"
                    "socket_mode = \"0660\"\n"
                    "state_dir = \"" +
                    dir.file("state") +
                    "\"\n"
                    "policy = \"" +
                    f.policy +
                    "\"\n"
                    "subscriber_queue = " +
                    std::to_string(subscriber_queue) + "\n" + extra;
  write_file(f.config, cfg);
  return f;
}

ChildProcess::ChildProcess(std::vector<std::string> argv) : argv_(std::move(argv)) {}

ChildProcess::~ChildProcess() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    int status = 0;
    reap(&status, true);
  }
  if (reader_.joinable()) reader_.join();
}

bool ChildProcess::start() {
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0) return false;
  int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
  std::vector<char*> args;
  for (auto& a : argv_) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t parent = getpid();
  spawned_ns_ = mono_ns();
  pid_t pid = fork();
  if (pid == 0) {
    // Only async-signal-safe calls until exec: the bench has threads.
    prctl(PR_SET_PDEATHSIG, SIGKILL);  // a killed bench leaves no daemon behind
    if (getppid() != parent) _exit(125);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    signal(SIGPIPE, SIG_DFL);
    if (devnull >= 0) dup2(devnull, 1);
    dup2(pipefd[1], 2);
    execv(args[0], args.data());
    _exit(127);
  }
  if (devnull >= 0) close(devnull);
  close(pipefd[1]);
  if (pid < 0) {
    close(pipefd[0]);
    return false;
  }
  pid_ = pid;
  reader_ = std::thread([this, fd = pipefd[0]] { read_stderr(fd); });
  return true;
}

void ChildProcess::read_stderr(int fd) {
  char buf[4096];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    const std::int64_t now = mono_ns();
    std::lock_guard lock(mu_);
    for (ssize_t i = 0; i < n; ++i) {
      log_ += buf[i];
      if (buf[i] == '\n') line_times_.emplace_back(log_.size(), now);
    }
    cv_.notify_all();
  }
  close(fd);
  std::lock_guard lock(mu_);
  eof_ = true;
  cv_.notify_all();
}

std::int64_t ChildProcess::wait_for_log(const std::string& text,
                                        std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::unique_lock lock(mu_);
  for (;;) {
    auto at = log_.find(text);
    if (at != std::string::npos) {
      for (auto& [end, t] : line_times_) {
        if (end > at) return t;
      }
      // The line is not finished yet; wait for its newline.
    } else if (eof_) {
      return -1;
    }
    if (stop_requested() || std::chrono::steady_clock::now() >= deadline) return -1;
    cv_.wait_for(lock, 20ms);
  }
}

std::string ChildProcess::log() const {
  std::lock_guard lock(mu_);
  return log_;
}

bool ChildProcess::reap(int* status, bool block) {
  if (pid_ <= 0) return true;
  pid_t r;
  do {
    r = waitpid(pid_, status, block ? 0 : WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == pid_) {
    if (WIFEXITED(*status)) {
      exit_code_ = WEXITSTATUS(*status);
    } else if (WIFSIGNALED(*status)) {
      exit_code_ = 128 + WTERMSIG(*status);
    }
    pid_ = -1;
    return true;
  }
  return r < 0;  // ECHILD: nothing left to reap
}

bool ChildProcess::alive() {
  int status = 0;
  return !reap(&status, false);
}

int ChildProcess::wait_exit(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return exit_code_;
  int status = 0;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  // Short polls: the shutdown time is measured with this loop.
  while (!reap(&status, false)) {
    if (std::chrono::steady_clock::now() >= deadline) return -1;
    std::this_thread::sleep_for(200us);
  }
  return exit_code_;
}

int ChildProcess::stop(int sig, std::chrono::milliseconds timeout, std::int64_t* took_ns) {
  if (pid_ <= 0) return -1;
  const std::int64_t t0 = mono_ns();
  kill(pid_, sig);
  int rc = wait_exit(timeout);
  if (took_ns) *took_ns = mono_ns() - t0;
  if (rc == -1 && pid_ > 0) {
    kill(pid_, SIGKILL);
    int status = 0;
    reap(&status, true);
    return -1;
  }
  return rc;
}

std::unique_ptr<v1::Gateway::Stub> connect(const std::string& socket) {
  grpc::ChannelArguments args;
  // Each stub its own connection, as separate apps would have.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  auto ch = grpc::CreateCustomChannel("unix:" + socket, grpc::InsecureChannelCredentials(), args);
  return v1::Gateway::NewStub(ch);
}

grpc::Status get_health(const std::string& socket, v1::Health* out,
                        std::chrono::milliseconds deadline) {
  auto stub = connect(socket);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + deadline);
  ctx.set_wait_for_ready(false);  // fail at once when nothing listens yet
  return stub->GetHealth(&ctx, {}, out);
}

}  // namespace portier::bench
