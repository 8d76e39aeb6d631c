#include "attest_test_util.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "agent/attest/pcr_replay.h"
#include "agent/attest/tcg_event_log.h"

namespace portier::attest::testing {
namespace {

int listen_on(int port, int* bound_port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 16) != 0) {
    ::close(fd);
    return -1;
  }
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  *bound_port = ntohs(a.sin_port);
  return fd;
}

std::string temp_dir(const char* prefix) {
  const char* t = std::getenv("TMPDIR");
  std::string tmpl = std::string(t != nullptr ? t : "/tmp") + "/" + prefix + "XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) return {};
  return tmpl;
}

}  // namespace

bool Swtpm::installed() {
  const char* path = std::getenv("PATH");
  std::string p = path != nullptr ? path : "/usr/bin:/bin";
  std::size_t start = 0;
  while (start <= p.size()) {
    const auto end = p.find(':', start);
    const std::string dir =
        p.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (!dir.empty() && ::access((dir + "/swtpm").c_str(), X_OK) == 0) return true;
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return false;
}

namespace {

// Connects to the control channel and asks CMD_GET_CAPABILITY: swtpm answers
// only from its main loop, when the server port is listening too. Returns
// false if swtpm went away (e.g. the server port was taken) or the deadline
// passed.
bool wait_ready(int ctrl_port, std::chrono::milliseconds deadline) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<std::uint16_t>(ctrl_port));
  bool ok = fd >= 0 && ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  const unsigned char cmd[4] = {0, 0, 0, 1};  // CMD_GET_CAPABILITY
  ok = ok && ::send(fd, cmd, sizeof cmd, MSG_NOSIGNAL) == 4;
  std::size_t got = 0;
  const auto end = std::chrono::steady_clock::now() + deadline;
  while (ok && got < 8) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        end - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      ok = false;
      break;
    }
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) {
      ok = false;
      break;
    }
    unsigned char buf[64];
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0)
      ok = false;
    else
      got += static_cast<std::size_t>(n);
  }
  if (fd >= 0) ::close(fd);
  return ok;
}

}  // namespace

Swtpm::Swtpm() {
  dir_ = temp_dir("portier-swtpm-");
  if (dir_.empty()) {
    error_ = "mkdtemp failed";
    return;
  }
  for (int attempt = 0; attempt < 5 && pid_ < 0; ++attempt) {
    // Server port: kernel-assigned, released just before swtpm binds it (a
    // rare race, retried). Control port (+1, the swtpm TCTI's convention):
    // held by us and handed over as a listening fd.
    int ctrl = -1;
    for (int k = 0; k < 50 && ctrl < 0; ++k) {
      const int srv = listen_on(0, &port_);
      if (srv >= 0) ::close(srv);
      if (srv < 0 || port_ >= 65535) continue;
      int p2 = 0;
      ctrl = listen_on(port_ + 1, &p2);
    }
    if (ctrl < 0) {
      error_ = "no two consecutive free ports";
      return;
    }
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);
      ::fcntl(ctrl, F_SETFD, 0);
      const int log = ::open((dir_ + "/swtpm.log").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
      if (log >= 0) {
        ::dup2(log, 1);
        ::dup2(log, 2);
      }
      const std::string state = "dir=" + dir_;
      const std::string server = "type=tcp,port=" + std::to_string(port_) + ",bindaddr=127.0.0.1";
      const std::string ctl = "type=tcp,fd=" + std::to_string(ctrl);
      const char* argv[] = {"swtpm",
                            "socket",
                            "--tpmstate",
                            state.c_str(),
                            "--tpm2",
                            "--server",
                            server.c_str(),
                            "--ctrl",
                            ctl.c_str(),
                            "--flags",
                            "not-need-init,startup-clear",
                            nullptr};
      ::execvp("swtpm", const_cast<char* const*>(argv));
      ::_exit(127);
    }
    ::close(ctrl);
    if (pid < 0) {
      error_ = "fork failed";
      return;
    }
    if (wait_ready(port_ + 1, std::chrono::seconds(10))) {
      pid_ = pid;
      return;
    }
    ::kill(pid, SIGKILL);
    int st = 0;
    ::waitpid(pid, &st, 0);
    error_ = "swtpm did not come up (see " + dir_ + "/swtpm.log)";
  }
}

Swtpm::~Swtpm() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    int st = 0;
    ::waitpid(pid_, &st, 0);
  }
  if (!dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
}

std::string Swtpm::tcti() const { return "swtpm:host=127.0.0.1,port=" + std::to_string(port_); }

TpmConfig Swtpm::config(std::chrono::milliseconds timeout) const {
  TpmConfig c;
  c.tcti = tcti();
  c.timeout = timeout;
  return c;
}

void Swtpm::stop_process() {
  if (pid_ > 0) ::kill(pid_, SIGSTOP);
}
void Swtpm::continue_process() {
  if (pid_ > 0) ::kill(pid_, SIGCONT);
}

int closed_port() {
  int port = 0;
  const int fd = listen_on(0, &port);
  ::close(fd);  // nothing listens there any more: connect is refused
  return port;
}

void put_u16(std::string& s, std::uint16_t v) {
  s.push_back(static_cast<char>(v & 0xff));
  s.push_back(static_cast<char>(v >> 8));
}
void put_u32(std::string& s, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
std::string bytes_str(const Bytes& b) { return std::string(b.begin(), b.end()); }

EventLogBuilder::EventLogBuilder() {
  // TCG_PCR_EVENT with the Spec ID Event03.
  std::string spec("Spec ID Event03", 15);
  spec.push_back('\0');
  put_u32(spec, 0);   // platform class
  spec.push_back(0);  // minor
  spec.push_back(2);  // major
  spec.push_back(0);  // errata
  spec.push_back(2);  // uintn size
  put_u32(spec, 2);
  put_u16(spec, kAlgSha1);
  put_u16(spec, 20);
  put_u16(spec, kAlgSha256);
  put_u16(spec, 32);
  spec.push_back(0);  // vendor info size
  put_u32(bytes_, 0);
  put_u32(bytes_, kEvNoAction);
  bytes_.append(20, '\0');
  put_u32(bytes_, static_cast<std::uint32_t>(spec.size()));
  bytes_ += spec;
}

void EventLogBuilder::add(std::uint32_t pcr, std::uint32_t type, const std::string& data) {
  offsets_.push_back(bytes_.size());
  const std::span<const std::uint8_t> d(reinterpret_cast<const std::uint8_t*>(data.data()),
                                        data.size());
  Extend ex{pcr, {{kAlgSha1, hash_bytes(kAlgSha1, d)}, {kAlgSha256, hash_bytes(kAlgSha256, d)}}};
  put_u32(bytes_, pcr);
  put_u32(bytes_, type);
  put_u32(bytes_, 2);
  put_u16(bytes_, kAlgSha1);
  bytes_ += bytes_str(ex.digests[kAlgSha1]);
  put_u16(bytes_, kAlgSha256);
  bytes_ += bytes_str(ex.digests[kAlgSha256]);
  put_u32(bytes_, static_cast<std::uint32_t>(data.size()));
  bytes_ += data;
  extends_.push_back(std::move(ex));
}

void EventLogBuilder::add_no_action(const std::string& data) {
  offsets_.push_back(bytes_.size());
  put_u32(bytes_, 0);
  put_u32(bytes_, kEvNoAction);
  put_u32(bytes_, 2);
  put_u16(bytes_, kAlgSha1);
  bytes_.append(20, '\0');
  put_u16(bytes_, kAlgSha256);
  bytes_.append(32, '\0');
  put_u32(bytes_, static_cast<std::uint32_t>(data.size()));
  bytes_ += data;
}

ImaLine ima_ng_line(const std::string& path, const std::string& content) {
  ImaEntry e;
  e.template_name = "ima-ng";
  e.filedata_alg = "sha256";
  e.filedata_hash = hash_bytes(
      kAlgSha256, {reinterpret_cast<const std::uint8_t*>(content.data()), content.size()});
  e.filename = path;
  const Bytes tdata = ima_template_data(e);
  ImaLine l;
  l.digests[kAlgSha1] = hash_bytes(kAlgSha1, tdata);
  l.digests[kAlgSha256] = hash_bytes(kAlgSha256, tdata);
  l.text = "10 " + to_hex(l.digests[kAlgSha1]) + " ima-ng sha256:" + to_hex(e.filedata_hash) + " " +
           path;
  return l;
}

std::string write_temp_file(const std::string& name, const std::string& content) {
  // One directory per test process, removed at exit.
  struct Dir {
    std::string path = temp_dir("portier-attest-test-");
    ~Dir() {
      std::error_code ec;
      if (!path.empty()) std::filesystem::remove_all(path, ec);
    }
  };
  static const Dir dir;
  const std::string path = dir.path + "/" + name;
  std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
  return path;
}

}  // namespace portier::attest::testing
