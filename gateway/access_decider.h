// Whether a connection may do an operation on a device now: its identity
// still holds, the policy allows it, and the terminal's health does not
// gate it. Denials are audited with the rule and the reason, and come back
// as the sentence the app is told; allows that must be audited are written
// durably before the operation counts. Decisions run with the hub's lock
// held (they use the registry's per-device policy cache); verify_caller,
// may_watch, app_names and record_allow must run without it.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "common/audit_sink.h"
#include "common/result.h"
#include "connection.h"
#include "device_registry.h"
#include "policy/policy.h"
#include "policy_store.h"
#include "terminal_health.h"

namespace portier::gateway {

// An operation refused while the terminal is COMPROMISED (on devices of
// `device_class`, or on all when empty).
struct HealthRefusal {
  policy::Op op;
  std::string device_class;
};

// What a policy check said, ready to return to the app.
struct Access {
  Result<void> status;  // success when allowed
  policy::Decision decision;
  bool ok() const { return status.has_value(); }
};

// not_found for a device id the registry does not know, with where to look.
Error no_device(const std::string& device_id);

class AccessDecider {
 public:
  AccessDecider(PolicyStore& policy, AuditSink& audit, const TerminalHealth& health,
                std::chrono::milliseconds audit_timeout)
      : policy_(policy), audit_(audit), health_(health), audit_timeout_(audit_timeout) {}

  // permission_denied (audited) when the caller has no identity or is no
  // longer the process that connected. Reads /proc: never under a lock.
  Result<void> verify_caller(Connection& conn, const std::string& device_id, const std::string& op);
  policy::Decision decide(Connection& conn, DeviceRecord& dev, policy::Op op,
                          const PolicySnapshot& snap);
  // Decides `op` on `dev` (null: not_found) and gates it on health; every
  // refusal is audited. Allows are not: see record_allow.
  Access check(Connection& conn, DeviceRecord* dev, const std::string& device_id, policy::Op op,
               const PolicySnapshot& snap);
  // Why an allowed `op` is refused now because of the terminal's health, or "".
  std::string health_gate(const DeviceRecord& dev, policy::Op op, const policy::Decision& d) const;
  // Success when some rule lets `conn` watch some device; else
  // permission_denied, audited.
  Result<void> may_watch(Connection& conn);
  std::vector<std::string> app_names(Connection& conn);
  void set_compromised_refusals(std::vector<HealthRefusal> refusals) {
    refusals_ = std::move(refusals);
  }

  // Writes the record of an allowed operation that must be audited and
  // waits for it: unavailable (the operation must be refused, and the trail
  // says so right behind the allow) when the trail cannot take it.
  Result<void> record_allow(const AuditEntry& entry, const std::string& what);
  void record_decision(const Connection* conn, const std::string& app, const std::string& device,
                       policy::Op op, const policy::Decision& d, const std::string& reason);
  static AuditEntry decision_entry(const Connection* conn, const std::string& app,
                                   const std::string& device, policy::Op op,
                                   const policy::Decision& d, const std::string& reason);
  // Readable for messages: "app 'kiosk-ui'" or "undeclared app (uid 1000, /usr/bin/x)".
  static std::string describe(const Connection& conn, const std::string& app);

 private:
  // The connection's policy cache for `snap` (conn.mu held).
  static void refresh_caller(Connection& conn, const PolicySnapshot& snap);

  PolicyStore& policy_;
  AuditSink& audit_;
  const TerminalHealth& health_;
  const std::chrono::milliseconds audit_timeout_;
  std::vector<HealthRefusal> refusals_;
};

}  // namespace portier::gateway
