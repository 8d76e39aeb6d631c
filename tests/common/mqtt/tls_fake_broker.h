// A fake MQTT broker for the tests of what Mosquitto will not do (refuse
// MQTT 5, speak TLS 1.1, send what nobody subscribed to): `openssl s_server`
// does the TLS with the test's certificates, and the test reads the
// client's packets from its stdout and writes the broker's to its stdin.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <vector>

#include "support/mosquitto_broker.h"

extern char** environ;

namespace portier::test {

// `openssl s_server` as a fake broker: TLS with the test's server
// certificate (client certificates required); what the client sends comes
// out on its stdout, what the test writes to its stdin goes to the client.
class TlsFakeBroker {
 public:
  // `extra`: more s_server options; the certificate and key are the test
  // broker's unless `extra` names others (-cert, -key come last and win).
  TlsFakeBroker(const TestTls& tls, const std::string& log, std::vector<std::string> extra,
                bool require_client_cert = true) {
    port_ = portier::test::free_port();
    std::vector<std::string> argv = {
        "openssl", "s_server",      "-accept", "127.0.0.1:" + std::to_string(port_),
        "-cert",   tls.server_cert, "-key",    tls.server_key,
        "-CAfile", tls.ca_file,     "-quiet"};
    if (require_client_cert) argv.insert(argv.end(), {"-Verify", "1"});
    argv.insert(argv.end(), extra.begin(), extra.end());
    int in[2], out[2];
    EXPECT_EQ(::pipe2(in, O_CLOEXEC), 0);
    EXPECT_EQ(::pipe2(out, O_CLOEXEC), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_addopen(&fa, 2, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    EXPECT_EQ(posix_spawnp(&pid_, "openssl", &fa, nullptr, args.data(), environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    ::close(in[0]);
    ::close(out[1]);
    to_ = in[1];
    from_ = out[0];
    // Ready when the port accepts (s_server takes the probe as a failed client).
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!portier::test::port_accepts(port_) && std::chrono::steady_clock::now() < deadline)
      ::poll(nullptr, 0, 20);
  }
  ~TlsFakeBroker() {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    ::close(to_);
    ::close(from_);
  }
  std::string uri() const { return "ssl://127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }

  // The next MQTT packet from the client (fixed header included), or empty
  // when none came before the deadline.
  std::string read_packet(std::chrono::seconds timeout = std::chrono::seconds(10)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (auto p = complete_packet(); !p.empty()) return p;
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return {};
      pollfd pfd{from_, POLLIN, 0};
      if (::poll(&pfd, 1, int(left.count())) <= 0) continue;
      char buf[4096];
      const ssize_t n = ::read(from_, buf, sizeof buf);
      if (n <= 0) return {};
      buffer_.append(buf, std::size_t(n));
    }
  }
  void write(const std::string& bytes) {
    ASSERT_EQ(::write(to_, bytes.data(), bytes.size()), ssize_t(bytes.size()));
  }
  bool received_anything() {
    pollfd pfd{from_, POLLIN, 0};
    if (::poll(&pfd, 1, 0) > 0) {
      char buf[4096];
      const ssize_t n = ::read(from_, buf, sizeof buf);
      if (n > 0) buffer_.append(buf, std::size_t(n));
    }
    return !buffer_.empty();
  }

 private:
  std::string complete_packet() {
    // Fixed header: type byte, then the remaining length (varint).
    std::size_t len = 0, shift = 0, at = 1;
    for (;; ++at, shift += 7) {
      if (at >= buffer_.size() || at > 4) return {};
      len |= std::size_t(buffer_[at] & 0x7f) << shift;
      if (!(buffer_[at] & 0x80)) break;
    }
    if (buffer_.size() < at + 1 + len) return {};
    std::string p = buffer_.substr(0, at + 1 + len);
    buffer_.erase(0, at + 1 + len);
    return p;
  }

  int port_ = 0;
  pid_t pid_ = -1;
  int to_ = -1, from_ = -1;
  std::string buffer_;
};

// The protocol level byte of a CONNECT: after the fixed header and "MQTT".
inline int protocol_level(const std::string& connect) {
  std::size_t at = 1;
  while (at < connect.size() && (connect[at] & 0x80)) ++at;
  at += 1 + 2 + 4;  // remaining length's last byte, name length, "MQTT"
  return at < connect.size() ? connect[at] : -1;
}

// An MQTT PUBLISH at QoS 0 as a broker sends it; MQTT 5 adds an empty
// property block.
inline std::string publish_packet(const std::string& topic, const std::string& payload,
                                  bool mqtt5 = true) {
  std::string body;
  body += char(topic.size() >> 8);
  body += char(topic.size() & 0xff);
  body += topic;
  if (mqtt5) body += '\0';
  body += payload;
  std::string p(1, '\x30');
  for (std::size_t n = body.size();;) {  // the remaining length, a varint
    const char digit = char(n % 128);
    n /= 128;
    p += n > 0 ? char(digit | 0x80) : digit;
    if (n == 0) break;
  }
  return p + body;
}

}  // namespace portier::test
