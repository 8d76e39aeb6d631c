// A small self-contained launcher for the benches (they must not link the
// test fixture): a private temp dir, a child process (portierd or a baseline
// like /bin/sleep) whose stderr is read through a pipe so that the moment a
// log line appears is known to the microsecond, and fresh gRPC connections
// to the daemon's Unix socket. Everything it starts it also ends: the child
// is killed and the temp dir removed on every exit path (destructors; the
// child also gets SIGKILL through PR_SET_PDEATHSIG if the bench dies).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "portier/v1/gateway.grpc.pb.h"

namespace portier::bench {

using namespace std::chrono_literals;

// CLOCK_MONOTONIC in nanoseconds (the same clock in every process).
std::int64_t mono_ns();

// A command-line integer for `flag` in lo..hi; otherwise prints
// "<program>: <flag> must be lo..hi" and exits 2 (a usage error).
int parse_int_arg(const char* program, const char* flag, const char* value, int lo, int hi);
// The value after argv[i] (advancing i); "<program>: <flag> needs a value"
// and exit 2 when there is none.
const char* arg_value(const char* program, int argc, char** argv, int& i);
// Installs the stop signals and runs `body`: an exception is a one-line
// error and exit 1, an interruption says so and exits 130.
int run_bench(const char* program, const std::function<int()>& body);

// SIGINT/SIGTERM set a flag instead of killing the bench, so that the bench
// can stop its loops, kill the daemon and remove its temp dir.
void install_stop_signals();
bool stop_requested();

class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

void write_file(const std::string& path, const std::string& content);
std::string self_exe();                                    // /proc/self/exe, resolved
std::string bin_path(const std::string& name);             // PORTIER_BIN_DIR/name
std::string read_proc_status(pid_t pid, const char* key);  // "VmRSS" -> "1234 kB"
long proc_status_kb(pid_t pid, const char* key);           // VmRSS in kB, -1 when unknown
// utime+stime of `pid` (all its threads, exited ones included) in ns.
std::int64_t proc_cpu_ns(pid_t pid);
// Time on CPU of the live threads of `pid` from /proc/<pid>/task/*/schedstat,
// in ns: exact where utime+stime count whole clock ticks (10 ms).
std::int64_t proc_sched_ns(pid_t pid);
// utime+stime per live thread of `pid`: tid -> (thread name, ns).
struct ThreadCpu {
  std::string name;
  std::int64_t ns = 0;
};
std::map<pid_t, ThreadCpu> thread_cpu_ns(pid_t pid);
// "default-executo 41.2 %, portierd x3 20.1 %, ...": CPU per thread name
// between two snapshots, as % of one core over `wall_ns`, busiest first.
std::string thread_cpu_report(const std::map<pid_t, ThreadCpu>& before,
                              const std::map<pid_t, ThreadCpu>& after, std::int64_t wall_ns);

// Policy that lets this very binary (uid getuid(), exe /proc/self/exe) do
// everything on every device, "terminal" included.
std::string policy_allowing_self();

// portierd.toml for a daemon living in `dir`: socket, state_dir and policy
// there; `extra` is appended ([[scanner]] tables, ...).
struct DaemonFiles {
  std::string config, socket, policy;
};
DaemonFiles write_daemon_files(const TempDir& dir, const std::string& extra,
                               int subscriber_queue = 256);

// One child process. stderr goes to a pipe that a thread reads (and keeps),
// stdout to /dev/null.
class ChildProcess {
 public:
  explicit ChildProcess(std::vector<std::string> argv);
  ~ChildProcess();  // SIGKILL and reap if still running
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  bool start();  // false when fork or pipe fails (exec failure: exits 127)
  pid_t pid() const { return pid_; }
  std::int64_t spawned_ns() const { return spawned_ns_; }  // just before fork()
  bool alive();
  // Waits until stderr contains `text`; returns the mono_ns() when the line
  // carrying it was read, or -1 on timeout, exit or stop request.
  std::int64_t wait_for_log(const std::string& text, std::chrono::milliseconds timeout);
  std::string log() const;
  // Sends `sig`, waits up to `timeout` for the exit (then SIGKILL). Returns the
  // exit code (128+signal when killed), -1 when not running; `took_ns` gets the
  // time from the signal to the reaped exit.
  int stop(int sig, std::chrono::milliseconds timeout, std::int64_t* took_ns = nullptr);
  // Waits for the exit without signalling; -1 on timeout.
  int wait_exit(std::chrono::milliseconds timeout);

 private:
  void read_stderr(int fd);
  bool reap(int* status, bool block);

  std::vector<std::string> argv_;
  pid_t pid_ = -1;
  int exit_code_ = -1;
  std::int64_t spawned_ns_ = 0;
  std::thread reader_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::string log_;
  std::vector<std::pair<std::size_t, std::int64_t>> line_times_;  // log_ offset of line end, time
  bool eof_ = false;
};

// A fresh connection (its own subchannel, never shared with other stubs).
std::unique_ptr<v1::Gateway::Stub> connect(const std::string& socket);
// One GetHealth on a fresh connection, failing fast when nothing listens.
grpc::Status get_health(const std::string& socket, v1::Health* out,
                        std::chrono::milliseconds deadline = 2000ms);

// Polls `pred` (1 ms .. 20 ms apart) until it holds, `timeout` passes or a
// stop is requested.
template <class Pred>
bool wait_until(Pred pred, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto step = 1ms;
  for (;;) {
    if (pred()) return true;
    if (stop_requested() || std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(step);
    step = std::min(step * 2, std::chrono::milliseconds(20));
  }
}

}  // namespace portier::bench
