// A TCP relay on 127.0.0.1 in front of a server (the fleet's Enrolment
// service) that can lose everything the server sends back: the caller's
// bytes still go through, its answers never come (review finding M4: a key
// rotation whose answer is lost). One thread per connection, polling both
// sockets; all of them end with the relay.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace portier::test {

class AnswerLosingRelay {
 public:
  explicit AnswerLosingRelay(int to_port) : to_port_(to_port) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), len) != 0 ||
        ::listen(listen_fd_, 16) != 0 ||
        ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      return;
    }
    port_ = ntohs(a.sin_port);
    accepter_ = std::thread([this] { accept_loop(); });
  }
  ~AnswerLosingRelay() {
    stopping_ = true;
    if (accepter_.joinable()) accepter_.join();
    std::lock_guard lock(mu_);
    for (auto& t : pumps_) t.join();
    if (listen_fd_ >= 0) ::close(listen_fd_);
  }
  AnswerLosingRelay(const AnswerLosingRelay&) = delete;
  AnswerLosingRelay& operator=(const AnswerLosingRelay&) = delete;

  int port() const { return port_; }  // 0: it could not listen
  void lose_answers(bool lose) { lose_ = lose; }

 private:
  void accept_loop() {
    while (!stopping_) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      const int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) continue;
      const int server = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      a.sin_port = htons(static_cast<std::uint16_t>(to_port_));
      if (server < 0 || ::connect(server, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        ::close(client);
        if (server >= 0) ::close(server);
        continue;
      }
      std::lock_guard lock(mu_);
      pumps_.emplace_back([this, client, server] { pump(client, server); });
    }
  }
  void pump(int client, int server) {
    char buf[16384];
    while (!stopping_) {
      pollfd p[2] = {{client, POLLIN, 0}, {server, POLLIN, 0}};
      if (::poll(p, 2, 50) <= 0) continue;
      if (p[0].revents != 0) {
        const ssize_t n = ::read(client, buf, sizeof buf);
        if (n <= 0 || ::write(server, buf, static_cast<std::size_t>(n)) != n) break;
      }
      if (p[1].revents != 0) {
        const ssize_t n = ::read(server, buf, sizeof buf);
        if (n <= 0) break;
        if (!lose_ && ::write(client, buf, static_cast<std::size_t>(n)) != n) break;
      }
    }
    ::close(client);
    ::close(server);
  }

  int to_port_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false}, lose_{false};
  std::thread accepter_;
  std::mutex mu_;
  std::vector<std::thread> pumps_;
};

}  // namespace portier::test
