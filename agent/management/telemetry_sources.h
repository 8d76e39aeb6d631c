// What the terminal tells its fleet on its own (issue 10, item 2), sealed
// through the Uplink: a birth at start (full state), the health on every
// change of the verdict and periodically, the device inventory on change,
// the audit records as they reach the trail, and a summary of the policy
// decisions (counts per app, device, operation and decision) per interval.
//
// Audit records go at security priority and continue from a cursor kept in
// the outbox (the last record number committed), so records written while
// the link or the feature was down are caught up from the trail; the fleet
// keeps each record once by its number. None is ever dropped: at most
// max_audit_queued wait in memory; beyond that the sources stop taking
// lines as they are written and read them back from the trail's files by
// number (the audit reader) once the queue, and the Uplink behind it, have
// room again (back-pressure).
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

#include "agent/management/audit_checkpointer.h"
#include "agent/management/uplink.h"
#include "common/audit_sink.h"
#include "gateway/gateway_view.h"

namespace portier::management {

struct TelemetryIntervals {
  std::chrono::seconds health{300};
  std::chrono::seconds decisions{60};
  std::chrono::milliseconds inventory_settle{1000};  // changes within it go as one
  std::chrono::milliseconds audit_flush{500};
  std::size_t audit_batch = 200;          // records per AuditBatch at most
  std::size_t max_audit_queued = 100000;  // audit lines waiting in memory at most
  std::chrono::seconds checkpoint{300};   // a signed checkpoint of the trail's head
};

// The policy in force, as the birth reports it.
struct PolicyInForce {
  std::string sha256;         // of its file, lowercase hex; "" unknown
  std::uint64_t version = 0;  // the last version a fleet command installed; 0 none
};

// What the birth says about this terminal besides the gateway's state.
struct BirthInfo {
  std::string portierd_version;
  std::string key_algorithm;
  std::string public_key_pem;
  std::string policy_sha256;
  std::uint64_t policy_version = 0;
};

// The audit records first..last the trail still holds, oldest first
// (DaemonControl::audit_range); not_found when it holds none of them.
using AuditReader =
    std::function<Result<std::vector<std::string>>(std::uint64_t first, std::uint64_t last)>;

class TelemetrySources {
 public:
  // `gateway`, `audit` and `checkpointer` may be null (tests, or a daemon
  // without them).
  // `audit_cursor` is the last audit record number already committed
  // (from the outbox); `save_cursor` keeps a new one.
  TelemetrySources(gateway::GatewayView* gateway, AuditSink* audit, Uplink& uplink, BirthInfo birth,
                   TelemetryIntervals intervals, std::uint64_t audit_cursor,
                   std::function<void(std::uint64_t)> save_cursor,
                   AuditCheckpointer* checkpointer = nullptr);
  ~TelemetrySources();

  void start();
  void stop();
  // Commands: new intervals (0 = unchanged), a health report now.
  void set_intervals(std::chrono::seconds health, std::chrono::seconds decisions,
                     std::chrono::seconds checkpoint = std::chrono::seconds(0));
  void report_health_now();
  // Where records that did not fit the queue are read back from. Without
  // one (tests), the trail's in-memory tail (AuditSink::tail) is all there
  // is to catch up from. Set before start().
  void set_audit_reader(AuditReader reader) { audit_reader_ = std::move(reader); }
  // Where each birth takes the policy in force (else BirthInfo's fields).
  // The birth is the terminal's full state: when the policy changes (a
  // ReplacePolicy ran, or a local edit is seen at the next periodic health
  // report) a new birth of the same session goes up with it, as Sparkplug's
  // rebirth does. Set before start().
  void set_policy_source(std::function<PolicyInForce()> source) {
    policy_source_ = std::move(source);
  }
  // The policy changed: a new birth now.
  void report_policy_changed();
  // Called on the sources' thread every `every` (the feature's idle
  // housekeeping: the outbox lets go of its connection). Set before start().
  void set_housekeeping(std::function<void()> fn, std::chrono::milliseconds every) {
    housekeeping_ = std::move(fn);
    housekeeping_every_ = every;
  }

 private:
  class ChangeListener;
  void run();
  void on_audit_line(const std::string& line);
  void send_birth();
  void send_health(bool changed);
  void send_inventory();
  void send_audit();
  // Lines the queue did not take, read back from the trail while it has
  // room.
  void catch_up_audit();
  void send_decisions(std::chrono::system_clock::time_point now);
  void send_checkpoint();

  gateway::GatewayView* gateway_;
  AuditSink* audit_;
  Uplink& uplink_;
  BirthInfo birth_;
  std::function<void(std::uint64_t)> save_cursor_;
  AuditCheckpointer* checkpointer_;

  std::mutex mu_;
  std::condition_variable cv_;
  TelemetryIntervals intervals_;
  bool stopping_ = false;
  bool health_due_ = false, health_changed_ = false, inventory_dirty_ = false;
  bool birth_due_ = false;
  std::function<PolicyInForce()> policy_source_;
  std::function<void()> housekeeping_;
  std::chrono::milliseconds housekeeping_every_{0};
  std::string birth_policy_;  // the sha256 the last birth carried
  std::chrono::steady_clock::time_point inventory_since_;
  std::deque<std::pair<std::uint64_t, std::string>> audit_lines_;  // (seq, line)
  std::uint64_t audit_cursor_ = 0;                                 // last one queued
  // The queue was full: lines after audit_cursor_ up to audit_head_ (the
  // newest seen) are read back from the trail, not taken as they come.
  bool audit_behind_ = false;
  std::uint64_t audit_head_ = 0;
  AuditReader audit_reader_;
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
