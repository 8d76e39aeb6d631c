// A real Mosquitto for the MQTT tests: TLS only, client certificates
// required, on a free 127.0.0.1 port of its own, in the test's directory.
// stop() and start() again keep the port (for outage tests); the destructor
// kills it. Also the test certificates (write_test_tls) and a way to run
// the other command-line peers (run_command: openssl, mosquitto_pub).
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <string>
#include <vector>

namespace portier::test {

// The files of a throwaway PKI in one directory.
struct TestTls {
  std::string dir;
  std::string ca_file, ca_key;
  std::string server_cert, server_key;  // SAN IP:127.0.0.1, DNS:localhost
  std::string cert(const std::string& client) const { return dir + "/" + client + ".pem"; }
  std::string key(const std::string& client) const { return dir + "/" + client + ".key"; }
};

// A CA, a server certificate and one client certificate per name (its
// subject CN), ECDSA P-256, made with the openssl CLI. Kept apart so that it
// can move to tests/support/test_pki (the project's own crypto layer).
// Failures are reported with ADD_FAILURE.
TestTls write_test_tls(const std::string& dir, const std::vector<std::string>& clients);

// One more leaf of that CA: <dir>/<name>.pem and .key, subject CN `name`,
// with `extensions` (openssl x509 -extfile lines), e.g. a broker
// certificate for another name, or a client certificate used as a server's.
// ECDSA P-256, or RSA 2048 when `rsa` (for TLS 1.1 suites without ECDHE).
void write_test_cert(const TestTls& tls, const std::string& name, const std::string& extensions,
                     bool rsa = false);

// Runs argv[0] (searched in PATH) with stdout and stderr appended to
// `log`, waits for it; its exit status, or -1 when it could not run or was
// killed.
int run_command(const std::vector<std::string>& argv, const std::string& log);

// A port nobody listens on now (bound and released).
int free_port();
// Whether something accepts TCP connections on 127.0.0.1:port.
bool port_accepts(int port);

struct BrokerOptions {
  std::string tls_version = "tlsv1.2";  // Mosquitto's minimum for the listener
  std::string extra;                    // lines appended to the generated config
  // Log errors, warnings and notices only (the default logs every PUBLISH
  // and PUBACK, which a benchmark would measure with the link).
  bool quiet_log = false;
  // When set, the whole configuration instead, with @PORT@, @CAFILE@,
  // @CERTFILE@, @KEYFILE@, @DIR@ and @USER@ replaced.
  std::string config;
};

class MosquittoBroker {
 public:
  MosquittoBroker(std::string dir, TestTls tls, BrokerOptions options = {});
  ~MosquittoBroker();
  MosquittoBroker(const MosquittoBroker&) = delete;
  MosquittoBroker& operator=(const MosquittoBroker&) = delete;

  // Starts it and waits (10 s at most) until it accepts connections.
  ::testing::AssertionResult start();
  void stop();  // SIGTERM, then waits for it
  // SIGSTOP / SIGCONT: a broker that accepts bytes and answers nothing.
  void freeze();
  void thaw();
  ::testing::AssertionResult restart() {
    stop();
    return start();
  }

  int port() const { return port_; }
  std::string uri() const { return "ssl://127.0.0.1:" + std::to_string(port_); }
  std::string log() const;  // what it logged, for failure messages

 private:
  std::string dir_;
  TestTls tls_;
  BrokerOptions options_;
  int port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace portier::test
