// A real Mosquitto for the MQTT tests (see mosquitto_broker.h).
#include "support/mosquitto_broker.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>

extern char** environ;

namespace portier::test {
namespace {

pid_t spawn(const std::vector<std::string>& argv, const std::string& log) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  pid_t pid = -1;
  if (posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ) != 0) pid = -1;
  posix_spawn_file_actions_destroy(&actions);
  return pid;
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (auto at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size()))
    s.replace(at, from.size(), to);
  return s;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

bool port_accepts(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

namespace {

// Mosquitto started as root drops to the user "mosquitto", which could not
// read the test's files: it stays the user the test runs as.
std::string user_name() {
  const passwd* pw = ::getpwuid(::geteuid());
  return pw ? pw->pw_name : "root";
}

constexpr char kDefaultConfig[] = R"(per_listener_settings false
allow_anonymous false
persistence false
log_dest file @DIR@/mosquitto.log
@LOG@
user @USER@
listener @PORT@ 127.0.0.1
cafile @CAFILE@
certfile @CERTFILE@
keyfile @KEYFILE@
require_certificate true
use_identity_as_username true
)";

}  // namespace

int run_command(const std::vector<std::string>& argv, const std::string& log) {
  const pid_t pid = spawn(argv, log);
  if (pid < 0) return -1;
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) return -1;
  return WEXITSTATUS(status);
}

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
    port = ntohs(addr.sin_port);
  ::close(fd);
  return port;
}

namespace {

const std::vector<std::string> kEcKey = {"-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                                         "-nodes"};

void openssl(std::vector<std::string> argv, const std::string& log) {
  argv.insert(argv.begin(), "openssl");
  if (run_command(argv, log) != 0)
    ADD_FAILURE() << "openssl " << argv[1] << " failed:\n" << read_file(log);
}

std::vector<std::string> operator+(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// A key and a CSR, then the certificate signed by the CA with `ext`.
void write_leaf(const TestTls& t, const std::string& cert, const std::string& key,
                const std::string& cn, const std::string& ext, bool rsa = false) {
  const std::string csr = cert + ".csr", extfile = cert + ".ext", log = t.dir + "/openssl.log";
  std::ofstream(extfile) << ext;
  const std::vector<std::string> rsa_key = {"-newkey", "rsa:2048", "-nodes"};
  openssl(std::vector<std::string>{"req"} + (rsa ? rsa_key : kEcKey) +
              std::vector<std::string>{"-keyout", key, "-out", csr, "-subj", "/CN=" + cn},
          log);
  openssl({"x509", "-req", "-in", csr, "-CA", t.ca_file, "-CAkey", t.ca_key, "-CAcreateserial",
           "-out", cert, "-days", "2", "-extfile", extfile},
          log);
}

}  // namespace

TestTls write_test_tls(const std::string& dir, const std::vector<std::string>& clients) {
  TestTls t;
  t.dir = dir;
  t.ca_file = dir + "/ca.pem";
  t.ca_key = dir + "/ca.key";
  t.server_cert = dir + "/server.pem";
  t.server_key = dir + "/server.key";
  openssl(
      std::vector<std::string>{"req", "-x509"} + kEcKey +
          std::vector<std::string>{"-keyout", t.ca_key, "-out", t.ca_file, "-days", "2", "-subj",
                                   "/CN=Portier test CA " + dir.substr(dir.rfind('/') + 1),
                                   "-addext", "basicConstraints=critical,CA:TRUE", "-addext",
                                   "keyUsage=critical,keyCertSign,cRLSign"},
      dir + "/openssl.log");
  write_leaf(t, t.server_cert, t.server_key, "localhost",
             "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
             "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n");
  for (const auto& name : clients)
    write_test_cert(t, name,
                    "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                    "extendedKeyUsage=clientAuth\n");
  return t;
}

void write_test_cert(const TestTls& tls, const std::string& name, const std::string& extensions,
                     bool rsa) {
  write_leaf(tls, tls.cert(name), tls.key(name), name, extensions, rsa);
}

MosquittoBroker::MosquittoBroker(std::string dir, TestTls tls, BrokerOptions options)
    : dir_(std::move(dir)), tls_(std::move(tls)), options_(std::move(options)) {}

MosquittoBroker::~MosquittoBroker() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);  // also when frozen
    ::waitpid(pid_, nullptr, 0);
  }
}

::testing::AssertionResult MosquittoBroker::start() {
  if (pid_ > 0) return ::testing::AssertionFailure() << "mosquitto runs already";
  if (port_ == 0) port_ = free_port();
  std::string config = options_.config;
  if (config.empty())
    config = std::string(kDefaultConfig) + "tls_version " + options_.tls_version + "\n" +
             options_.extra + "\n";
  config = replace_all(
      config, "@LOG@",
      options_.quiet_log ? "log_type error\nlog_type warning\nlog_type notice" : "log_type all");
  config = replace_all(config, "@PORT@", std::to_string(port_));
  config = replace_all(config, "@CAFILE@", tls_.ca_file);
  config = replace_all(config, "@CERTFILE@", tls_.server_cert);
  config = replace_all(config, "@KEYFILE@", tls_.server_key);
  config = replace_all(config, "@DIR@", dir_);
  config = replace_all(config, "@USER@", user_name());
  const std::string path = dir_ + "/mosquitto.conf";
  std::ofstream(path) << config;

  pid_ = spawn({"mosquitto", "-c", path}, dir_ + "/mosquitto.out");
  if (pid_ < 0) return ::testing::AssertionFailure() << "cannot run mosquitto";
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!port_accepts(port_)) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return ::testing::AssertionFailure() << "mosquitto exited at start:\n" << log();
    }
    if (std::chrono::steady_clock::now() > deadline)
      return ::testing::AssertionFailure()
             << "mosquitto does not accept on port " << port_ << " after 10 s:\n"
             << log();
    ::poll(nullptr, 0, 20);
  }
  return ::testing::AssertionSuccess();
}

void MosquittoBroker::stop() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGCONT);
  ::kill(pid_, SIGTERM);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

void MosquittoBroker::freeze() {
  if (pid_ > 0) ::kill(pid_, SIGSTOP);
}

void MosquittoBroker::thaw() {
  if (pid_ > 0) ::kill(pid_, SIGCONT);
}

std::string MosquittoBroker::log() const {
  return read_file(dir_ + "/mosquitto.out") + read_file(dir_ + "/mosquitto.log");
}

}  // namespace portier::test
