#include "daemon_fixture.h"

#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "common/crypto/digest.h"
#include "common/hex.h"

namespace portier::test {

bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto step = 1ms;
  for (;;) {
    if (pred()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return pred();
    std::this_thread::sleep_for(step);  // polling interval, not a fixed wait
    step = std::min(step * 2, std::chrono::milliseconds(50));
  }
}

void write_file(const std::string& path, const std::string& content, mode_t mode) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << content;
  f.close();
  chmod(path.c_str(), mode);
}

void replace_file(const std::string& path, const std::string& content, mode_t mode) {
  write_file(path + ".new", content, mode);
  std::filesystem::rename(path + ".new", path);
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string sha256_file(const std::string& path) {
  auto md = crypto::digest_file(crypto::DigestAlgo::sha256, path);
  return md ? to_hex(md->data(), md->size()) : std::string();
}

void copy_file(const std::string& from, const std::string& to, mode_t mode) {
  std::filesystem::copy_file(from, to, std::filesystem::copy_options::overwrite_existing);
  chmod(to.c_str(), mode);
}

Pty::Pty(std::string link) : link_(std::move(link)) { open_pair(); }

Pty::~Pty() { close_master(); }

void Pty::open_pair() {
  master_ = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (master_ < 0 || grantpt(master_) != 0 || unlockpt(master_) != 0) {
    throw std::runtime_error("posix_openpt failed");
  }
  std::string slave = ptsname(master_);
  std::filesystem::remove(link_ + ".tmp");
  std::filesystem::create_symlink(slave, link_ + ".tmp");
  std::filesystem::rename(link_ + ".tmp", link_);
}

void Pty::write(const std::string& bytes) {
  std::size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = ::write(master_, bytes.data() + off, bytes.size() - off);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      throw std::runtime_error(std::string("pty write: ") + std::strerror(errno));
    }
    off += static_cast<std::size_t>(n);
  }
}

void Pty::close_master() {
  if (master_ >= 0) ::close(master_);
  master_ = -1;
}

void Pty::reopen() {
  close_master();
  open_pair();
}

namespace {

std::string slurp_fd(int fd) {
  std::string s;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof(buf))) > 0) s.append(buf, static_cast<std::size_t>(n));
  return s;
}

pid_t spawn(const std::vector<std::string>& argv, uid_t uid, gid_t gid,
            const std::vector<gid_t>& groups, int out_fd, int err_fd,
            const std::vector<std::string>& env = {}) {
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    // Children die with the test, so a test killed on timeout leaves no daemon behind.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(125);
    for (auto& e : env) putenv(const_cast<char*>(e.c_str()));
    if (out_fd >= 0) dup2(out_fd, 1);
    if (err_fd >= 0) dup2(err_fd, 2);
    if (uid != 0 || gid != 0) {
      if (setgroups(groups.size(), groups.data()) != 0 || setresgid(gid, gid, gid) != 0 ||
          setresuid(uid, uid, uid) != 0) {
        _exit(126);
      }
    }
    execv(args[0], args.data());
    _exit(127);
  }
  return pid;
}

int wait_pid(pid_t pid, std::chrono::milliseconds timeout) {
  int status = 0;
  bool done = wait_until([&] { return waitpid(pid, &status, WNOHANG) == pid; }, timeout);
  if (!done) return -1;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + WTERMSIG(status);
}

}  // namespace

ProcessResult run_as(uid_t uid, gid_t gid, const std::vector<gid_t>& groups,
                     const std::vector<std::string>& argv, std::chrono::seconds timeout) {
  char out_t[] = "/tmp/portier-out-XXXXXX", err_t[] = "/tmp/portier-err-XXXXXX";
  int out = mkstemp(out_t), err = mkstemp(err_t);
  unlink(out_t);
  unlink(err_t);
  pid_t pid = spawn(argv, uid, gid, groups, out, err);
  ProcessResult r;
  r.exit_code = wait_pid(pid, timeout);
  if (r.exit_code == -1) {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
  }
  lseek(out, 0, SEEK_SET);
  lseek(err, 0, SEEK_SET);
  r.out = slurp_fd(out);
  r.err = slurp_fd(err);
  close(out);
  close(err);
  return r;
}

ProcessResult run(const std::vector<std::string>& argv, std::chrono::seconds timeout) {
  return run_as(0, 0, {}, argv, timeout);
}

Child::Child(const std::vector<std::string>& argv, uid_t uid, gid_t gid) {
  int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
  pid_ = spawn(argv, uid, gid, {gid}, null, null);
  close(null);
}

Child::~Child() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    kill(pid_, SIGCONT);
    waitpid(pid_, nullptr, 0);
  }
}

void Child::signal(int sig) { kill(pid_, sig); }

int Child::wait_exit(std::chrono::milliseconds timeout) {
  int rc = wait_pid(pid_, timeout);
  if (rc != -1) pid_ = -1;
  return rc;
}

std::string runner_app() {
  auto exe = std::filesystem::read_symlink("/proc/self/exe").string();
  return "[[app]]\nname = \"test-runner\"\nuid = 0\nexe = \"" + exe + "\"\n";
}

std::string runner_rule(const std::string& device, const std::string& ops) {
  return "[[rule]]\napp = \"test-runner\"\ndevice = \"" + device + "\"\nops = " + ops + "\n";
}

std::string bin(const std::string& name) { return std::string(PORTIER_BIN_DIR) + "/" + name; }
std::string test_data(const std::string& rel) { return std::string(PORTIER_TEST_DATA) + "/" + rel; }

Daemon::Daemon(const TempDir& dir, DaemonOptions o) : dir_(dir), options_(o) {
  socket_ = dir.file("portierd.sock");
  policy_ = dir.file("policy.toml");
  config_ = dir.file("portierd.toml");
  log_ = dir.file("portierd.log");
  audit_ = dir.file("state/audit.jsonl");
  write_file(policy_, o.policy);
  std::string cfg = "socket = \"" + socket_ + "\"\n" + "socket_mode = \"" + o.socket_mode + "\"\n" +
                    "state_dir = \"" + dir.file("state") + "\"\n" + "policy = \"" + policy_ +
                    "\"\n" + "subscriber_queue = " + o.subscriber_queue + "\n" +
                    "max_lease_seconds = " + o.max_lease_seconds + "\n" + "log_level = \"" +
                    o.log_level + "\"\n";
  if (!o.socket_group.empty()) cfg += "socket_group = \"" + o.socket_group + "\"\n";
  cfg += o.extra_config;
  write_file(config_, cfg);
}

Daemon::~Daemon() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
}

bool Daemon::start() {
  int err = open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  std::vector<std::string> argv = options_.launcher;
  argv.insert(argv.end(), {bin(options_.binary), "--config", config_});
  pid_ = spawn(argv, options_.uid, options_.gid, {options_.gid}, -1, err, options_.env);
  close(err);
  return wait_until(
             [&] {
               if (!alive()) return true;
               return log().find("ready in") != std::string::npos;
             },
             15s) &&
         alive();
}

void Daemon::signal(int sig) { kill(pid_, sig); }

bool Daemon::alive() {
  if (pid_ <= 0) return false;
  int status = 0;
  if (waitpid(pid_, &status, WNOHANG) == pid_) {
    pid_ = -1;
    return false;
  }
  return true;
}

int Daemon::stop() {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGTERM);
  int rc = wait_pid(pid_, 10s);
  if (rc == -1) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  pid_ = -1;
  return rc;
}

std::string Daemon::log() const { return read_file(log_); }
std::string Daemon::audit() const { return read_file(audit_); }

bool Daemon::audit_has(const std::string& text) const {
  return wait_until([&] { return audit().find(text) != std::string::npos; });
}

std::unique_ptr<v1::Gateway::Stub> Daemon::connect() const {
  grpc::ChannelArguments args;
  // Each stub its own connection, so that leases and identities are not shared.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  auto ch = grpc::CreateCustomChannel("unix:" + socket_, grpc::InsecureChannelCredentials(), args);
  return v1::Gateway::NewStub(ch);
}

v1::Health Daemon::health() const {
  auto stub = connect();
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 5s);
  v1::Health h;
  auto st = stub->GetHealth(&ctx, {}, &h);
  if (!st.ok()) throw std::runtime_error("GetHealth: " + st.error_message());
  return h;
}

}  // namespace portier::test
