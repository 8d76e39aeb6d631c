// Where decisions and events are recorded: the audit trail (agent/audit_log)
// behind an interface every part may include; tests substitute their own.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/audit_event.h"
#include "common/caller.h"
#include "common/result.h"

namespace portier {

// One audit record as the parts build it: with the builders of
// common/audit_events.h, one per event kind. agent/audit_log turns it into
// proto/portier/v1/audit.proto's AuditRecord, whose JSON mapping the trail is.
struct AuditEntry {
  AuditEvent event = AuditEvent::decision;
  const Caller* caller = nullptr;  // null for daemon-internal events
  std::string app;                 // declared app name, "" when none
  std::string device;
  std::string op;
  AuditDecision decision = AuditDecision::none;  // with one, rule and line are written
  int rule = 0;                                  // 0 = default deny / not applicable
  int line = 0;
  std::string policy;  // policy file
  // The trail's own records (denials_suppressed, audit_truncated, ...).
  std::optional<std::uint32_t> uid;  // whose denials were suppressed
  std::string caller_key;            // ... when not a uid: "unidentified"
  std::optional<std::uint64_t> bytes, last_seq, count;
  std::string reason;  // never payload data
  // A fleet command's records (event command).
  std::string command_id;
  std::string source;  // the link it came over: "mqtt", "grpc"
};

class AuditSink {
 public:
  virtual ~AuditSink() = default;
  // Fire and forget (denials, lease ends, ...): never blocks. Denials may be
  // rate-limited per caller uid; the suppressed ones are counted in the trail.
  virtual void record(const AuditEntry& entry) = 0;
  // Records `entry` and waits until this record is written and fdatasync'd,
  // at most `timeout`. Fails with Errc::unavailable ("audit", <path>, <why>)
  // when the trail cannot be written (write error, file cannot be reopened,
  // buffer full) or the timeout passes; then the caller must refuse the
  // operation the record is about. The record itself stays queued and reaches
  // the file once the trail recovers (unless the buffer was full). Never
  // rate-limited. Sinks without a file (test fakes) just record and succeed.
  virtual Result<void> record_durable(const AuditEntry& entry, std::chrono::milliseconds timeout) {
    record(entry);
    return {};
  }
  // "" while the trail is writable, else why not, e.g. "audit log
  // /x/audit.jsonl: write failed: No space left on device".
  virtual std::string failure() const { return {}; }
  // `fn` is called (from the writer thread, outside locks) whenever failure()
  // changes; "" means the trail recovered. Replaces an earlier `fn`.
  virtual void on_state(std::function<void(const std::string& failure)> fn) {}
  // Last `count` records as JSON lines, oldest first.
  virtual std::vector<std::string> tail(std::size_t count) = 0;
  // Calls `fn` with each new record's JSON line until the returned id is
  // passed to unfollow. `fn` must not block.
  virtual int follow(std::function<void(const std::string&)> fn) = 0;
  virtual void unfollow(int id) = 0;
};

}  // namespace portier
