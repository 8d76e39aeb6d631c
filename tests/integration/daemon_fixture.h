// Starts the real portierd binary on a private temp dir (its own socket,
// policy, audit log and ptys) and talks to it over its Unix socket. Tests
// wait on conditions with deadlines, never on sleeps.
#pragma once

#include <grpcpp/grpcpp.h>
#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "portier/v1/gateway.grpc.pb.h"
#include "support/temp_dir.h"

namespace portier::test {

using namespace std::chrono_literals;

// Polls `pred` until it holds or `timeout` passes; returns its last value.
bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout = 10s);

// Other uids in the tests must reach the daemon's socket in it: 0755.
class TempDir : public test_support::TempDir {
 public:
  TempDir() : test_support::TempDir("portier-test", 0755) {}
};

void write_file(const std::string& path, const std::string& content, mode_t mode = 0644);
// Replaces `path` atomically (write to a temp name, rename), like a config manager.
void replace_file(const std::string& path, const std::string& content, mode_t mode = 0644);
std::string read_file(const std::string& path);
std::string sha256_file(const std::string& path);
void copy_file(const std::string& from, const std::string& to, mode_t mode = 0755);

// A pty pair; the daemon opens `link` (a symlink to the slave) as its scanner.
class Pty {
 public:
  explicit Pty(std::string link);
  ~Pty();
  void write(const std::string& bytes);
  void close_master();  // the scanner is unplugged
  void reopen();        // plugged in again (new pty, link re-pointed)
  const std::string& link() const { return link_; }

 private:
  void open_pair();
  std::string link_;
  int master_ = -1;
};

struct ProcessResult {
  int exit_code = -1;
  std::string out, err;
};

// Runs `argv` under `uid`/`gid` (with `groups` as supplementary groups), waits.
ProcessResult run_as(uid_t uid, gid_t gid, const std::vector<gid_t>& groups,
                     const std::vector<std::string>& argv, std::chrono::seconds timeout = 20s);
ProcessResult run(const std::vector<std::string>& argv, std::chrono::seconds timeout = 20s);

// A child process left running (e.g. a subscriber to be stopped with SIGSTOP).
class Child {
 public:
  explicit Child(const std::vector<std::string>& argv, uid_t uid = 0, gid_t gid = 0);
  ~Child();
  pid_t pid() const { return pid_; }
  void signal(int sig);
  int wait_exit(std::chrono::milliseconds timeout);  // -1 on timeout

 private:
  pid_t pid_ = -1;
};

struct DaemonOptions {
  // The daemon binary (portierd_test: portierd plus test-only features).
  std::string binary = "portierd";
  std::string policy;        // policy file contents
  std::string extra_config;  // appended to the generated config (e.g. [[scanner]] tables)
  std::string socket_mode = "0660";
  std::string socket_group;
  std::string subscriber_queue = "256";
  std::string max_lease_seconds = "300";
  std::string log_level = "info";
  std::vector<std::string> env;  // "NAME=value" added to the daemon's environment
  uid_t uid = 0;                 // run the daemon under this uid/gid (0: as the test)
  gid_t gid = 0;
  // Runs portierd through this program: its argv, followed by portierd's
  // (e.g. seccomp_launcher ... --, emulating the unit's sandbox). The
  // launcher must exec portierd in the same process.
  std::vector<std::string> launcher;
};

class Daemon {
 public:
  Daemon(const TempDir& dir, DaemonOptions options);
  ~Daemon();
  bool start();  // true once it reported ready and the socket answers
  int stop();    // SIGTERM; returns the exit code
  void signal(int sig);
  bool alive();
  pid_t pid() const { return pid_; }

  const std::string& socket() const { return socket_; }
  const std::string& policy_path() const { return policy_; }
  const std::string& config_path() const { return config_; }
  std::string log() const;  // what it wrote to stderr
  std::string audit() const;
  // Waits (with a deadline) until the audit log, written asynchronously, has `text`.
  bool audit_has(const std::string& text) const;

  // A fresh connection (never shared with other stubs).
  std::unique_ptr<v1::Gateway::Stub> connect() const;
  v1::Health health() const;

 private:
  TempDir const& dir_;
  DaemonOptions options_;
  std::string socket_, policy_, config_, log_, audit_;
  pid_t pid_ = -1;
};

// Policy text declaring this test binary as app "test-runner" (uid 0 and
// its exe), and a rule granting it `ops` on devices matching `device`.
std::string runner_app();
std::string runner_rule(const std::string& device, const std::string& ops);

std::string bin(const std::string& name);  // path of a built binary
std::string test_data(const std::string& rel);

}  // namespace portier::test
