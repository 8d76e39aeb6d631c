// An in-process Link for the management feature's unit tests: it records
// what is sent and lets the test acknowledge, drop the connection and
// deliver commands. The real links (MQTT against Mosquitto, gRPC against
// portier-fleet) have their own tests; this double only stands in for the
// transport so the outbox logic can be driven step by step.
#pragma once

#include <condition_variable>
#include <deque>
#include <mutex>

#include "agent/link/link.h"

namespace portier::management::test {

class FakeLink final : public link::Link {
 public:
  Result<void> start(link::LinkHandler& handler) override {
    std::lock_guard lock(mu_);
    handler_ = &handler;
    return {};
  }
  void stop() override {
    std::lock_guard lock(mu_);
    handler_ = nullptr;
  }
  Result<void> send(const link::Outgoing& m) override {
    std::lock_guard lock(mu_);
    if (!up_) return fail_msg(Errc::unavailable, "fake link: down");
    sent_.push_back(m);
    cv_.notify_all();
    return {};
  }
  bool connected() const override {
    std::lock_guard lock(mu_);
    return up_;
  }

  void connect() {
    link::LinkHandler* h;
    {
      std::lock_guard lock(mu_);
      up_ = true;
      h = handler_;
    }
    if (h) h->on_connected();
  }
  void disconnect() {
    link::LinkHandler* h;
    {
      std::lock_guard lock(mu_);
      up_ = false;
      h = handler_;
    }
    if (h) h->on_disconnected("test");
  }
  // Waits for `n` sent messages in total; acknowledges none.
  bool wait_sent(std::size_t n, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return sent_.size() >= n; });
  }
  std::vector<link::Outgoing> sent() {
    std::lock_guard lock(mu_);
    return {sent_.begin(), sent_.end()};
  }
  void ack(std::uint64_t id) {
    link::LinkHandler* h;
    {
      std::lock_guard lock(mu_);
      h = handler_;
    }
    if (h) h->on_acknowledged(id);
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  link::LinkHandler* handler_ = nullptr;
  bool up_ = false;
  std::deque<link::Outgoing> sent_;
};

}  // namespace portier::management::test
