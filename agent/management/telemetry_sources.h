// What the terminal tells its fleet on its own (issue 10, item 2), sealed
// through the Uplink: a birth at start (full state), the health on every
// change of the verdict and periodically, the device inventory on change,
// the audit records as they reach the trail, and a summary of the policy
// decisions (counts per app, device, operation and decision) per interval.
//
// Audit records go at security priority and continue from a cursor kept in
// the outbox (the last record number committed), so records written while
// the link or the feature was down are caught up from the trail's tail; the
// fleet keeps each record once by its number.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <tuple>

#include "agent/management/uplink.h"
#include "common/audit_sink.h"
#include "gateway/gateway_view.h"

namespace portier::management {

struct TelemetryIntervals {
  std::chrono::seconds health{300};
  std::chrono::seconds decisions{60};
  std::chrono::milliseconds inventory_settle{1000};  // changes within it go as one
  std::chrono::milliseconds audit_flush{500};
  std::size_t audit_batch = 200;  // records per AuditBatch at most
};

// What the birth says about this terminal besides the gateway's state.
struct BirthInfo {
  std::string portierd_version;
  std::string key_algorithm;
  std::string public_key_pem;
  std::string policy_sha256;
  std::uint64_t policy_version = 0;
};

class TelemetrySources {
 public:
  // `gateway` and `audit` may be null (tests, or a daemon without them).
  // `audit_cursor` is the last audit record number already committed
  // (from the outbox); `save_cursor` keeps a new one.
  TelemetrySources(gateway::GatewayView* gateway, AuditSink* audit, Uplink& uplink, BirthInfo birth,
                   TelemetryIntervals intervals, std::uint64_t audit_cursor,
                   std::function<void(std::uint64_t)> save_cursor);
  ~TelemetrySources();

  void start();
  void stop();
  // Commands: new intervals (0 = unchanged), a health report now.
  void set_intervals(std::chrono::seconds health, std::chrono::seconds decisions);
  void report_health_now();

 private:
  class ChangeListener;
  void run();
  void on_audit_line(const std::string& line);
  void send_birth();
  void send_health(bool changed);
  void send_inventory();
  void send_audit();
  void send_decisions(std::chrono::system_clock::time_point now);

  gateway::GatewayView* gateway_;
  AuditSink* audit_;
  Uplink& uplink_;
  BirthInfo birth_;
  std::function<void(std::uint64_t)> save_cursor_;

  std::mutex mu_;
  std::condition_variable cv_;
  TelemetryIntervals intervals_;
  bool stopping_ = false;
  bool health_due_ = false, health_changed_ = false, inventory_dirty_ = false;
  std::chrono::steady_clock::time_point inventory_since_;
  std::deque<std::pair<std::uint64_t, std::string>> audit_lines_;  // (seq, line)
  std::uint64_t audit_cursor_ = 0;                                 // last one queued
  std::uint64_t audit_dropped_ = 0;
  // (app, device, op, decision) -> count, since decisions_from_.
  std::map<std::tuple<std::string, std::string, std::string, std::string>, std::uint64_t>
      decisions_;
  std::chrono::system_clock::time_point decisions_from_;

  std::shared_ptr<ChangeListener> listener_;
  std::uint64_t listen_id_ = 0;
  int follow_id_ = -1;
  std::thread thread_;
};

}  // namespace portier::management
