// For the hub's unit tests: an audit sink that keeps records in memory, a
// clock the test steps, and connections of this very process (identified
// through a socketpair, as the listener identifies an app).
#pragma once

#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/audit_sink.h"
#include "connection.h"
#include "drivers/driver.h"
#include "lease_table.h"
#include "peer_identity.h"

namespace portier::gateway::test {

class MemoryAudit final : public AuditSink {
 public:
  void record(const AuditEntry& e) override {
    std::lock_guard lock(mu_);
    const AuditDecision d = e.decision;
    events_.push_back(std::string(audit_event_name(e.event)) +
                      (d == AuditDecision::none ? "" : ":" + std::string(audit_decision_name(d))) +
                      " " + e.device + (e.reason.empty() ? "" : " (" + e.reason + ")"));
  }
  std::vector<std::string> tail(std::size_t) override { return {}; }
  int follow(std::function<void(const std::string&)>) override { return 0; }
  void unfollow(int) override {}
  std::vector<std::string> events() const {
    std::lock_guard lock(mu_);
    return events_;
  }
  bool has(const std::string& prefix) const {
    for (auto& e : events()) {
      if (e.rfind(prefix, 0) == 0) return true;
    }
    return false;
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::string> events_;
};

// A clock that moves only when the test says so.
struct SteppedClock {
  std::shared_ptr<std::chrono::steady_clock::duration> offset =
      std::make_shared<std::chrono::steady_clock::duration>();
  const std::chrono::steady_clock::time_point base = std::chrono::steady_clock::now();
  void step(std::chrono::seconds s) { *offset += s; }
  LeaseClock lease_clock() const {
    LeaseClock c;
    c.steady = [o = offset, b = base] { return b + *o; };
    c.wall = [o = offset] {
      return std::chrono::system_clock::time_point{} +
             std::chrono::duration_cast<std::chrono::system_clock::duration>(*o);
    };
    return c;
  }
};

// A reader whose card reset waits until the test lets it finish, and whose
// pairing fails the way BlueZ's AlreadyConnected does. (Stands in for a
// PC/SC or BlueZ driver: the hub's unit tests run without either peer.)
class GatedDriver final : public drivers::Driver {
 public:
  std::string_view name() const override { return "gated"; }
  Result<void> start(drivers::DriverSink&) override { return {}; }
  void stop() override {}
  Result<std::size_t> write(const std::string&, std::string_view data) override {
    return data.size();
  }
  Result<drivers::ActionResult> act(const drivers::ActionRequest& r) override {
    if (r.action == "pair") return fail(Errc::already_exists, "bluez", "pair", "AlreadyConnected");
    std::unique_lock lock(mu_);
    ++resets_started_;
    cv_.notify_all();
    cv_.wait(lock, [&] { return open_; });
    return drivers::ActionResult{};
  }
  void open_gate() {
    std::lock_guard lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  bool wait_resets(int n, std::chrono::milliseconds deadline) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, deadline, [&] { return resets_started_ >= n; });
  }
  int resets() {
    std::lock_guard lock(mu_);
    return resets_started_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
  int resets_started_ = 0;
};

// A connection of this process, with the identity the kernel reports.
inline std::shared_ptr<Connection> self_connection(std::uint64_t id) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return nullptr;
  auto identity = resolve_peer(sv[0]);
  close(sv[0]);
  close(sv[1]);
  if (!identity) return nullptr;
  auto conn = std::make_shared<Connection>();
  conn->id = id;
  conn->identity = std::move(*identity);
  return conn;
}

}  // namespace portier::gateway::test
