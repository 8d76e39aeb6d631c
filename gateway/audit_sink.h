// Where the gateway's decisions go. The JSON-lines file behind it lives in
// agent/audit_log; tests may substitute their own.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "policy/policy.h"

namespace portier::gateway {

struct AuditEntry {
  std::string event = "decision";          // decision, lease_expired, lease_released, ...
  const policy::Caller* caller = nullptr;  // null for daemon-internal events
  std::string app;                         // declared app name, "" when none
  std::string device;
  std::string op;
  std::string decision;  // "allow", "deny", or "" for plain events
  int rule = 0;          // 0 = default deny / not applicable
  int line = 0;
  std::string policy;  // policy file
  std::string reason;  // never payload data
};

class AuditSink {
 public:
  virtual ~AuditSink() = default;
  virtual void record(const AuditEntry& entry) = 0;
  // Last `count` records as JSON lines, oldest first.
  virtual std::vector<std::string> tail(std::size_t count) = 0;
  // Calls `fn` with each new record's JSON line until the returned id is
  // passed to unfollow. `fn` must not block.
  virtual int follow(std::function<void(const std::string&)> fn) = 0;
  virtual void unfollow(int id) = 0;
};

}  // namespace portier::gateway
