// One builder per kind of audit record: the only way the parts make an
// AuditEntry (common/audit_sink.h). Each sets the event kind and the fields
// that kind carries (proto/portier/v1/audit.proto, README "Audit log"); the
// audit log stamps time and chain. A `caller` pointer must outlive the
// record() call that takes the entry (the log copies what it needs then).
#pragma once

#include <cstdint>
#include <string>

#include "common/audit_sink.h"
#include "common/caller.h"

namespace portier::audit {

// The rule that decided: its number (0 = none matched, default deny), line
// and policy file.
struct RuleRef {
  int rule = 0;
  int line = 0;
  std::string policy;
};

// --- Calls and leases (the device hub) ---

// A call decided by policy: allowed or denied by `rule`.
AuditEntry decision(const Caller* caller, std::string app, std::string device, std::string op,
                    bool allow, RuleRef rule, std::string reason);
// A call denied before policy (the caller's identity did not re-verify).
AuditEntry refusal(const Caller* caller, std::string device, std::string op, std::string reason);
// A claim policy allows, refused for `reason` (the device is not free).
AuditEntry claim_refused(const Caller* caller, std::string app, std::string device, RuleRef rule,
                         std::string reason);
// A claim policy allows, refused because `holder` holds the device.
AuditEntry claim_held(const Caller* caller, std::string app, std::string device, RuleRef rule,
                      const std::string& holder);
// `allow` (a decision record queued) refused after all: its record could not
// be written in time (`why`).
AuditEntry allow_revoked(AuditEntry allow, const std::string& why);
AuditEntry lease_released(const Caller* caller, std::string app, std::string device,
                          std::string reason);
AuditEntry lease_expired(const Caller* caller, std::string app, std::string device,
                         std::string reason);
AuditEntry lease_revoked(const Caller* caller, std::string app, std::string device,
                         std::string reason);
// A reader reset after a lease ended; `error` "" when it worked.
AuditEntry card_reset(std::string device, const std::string& error);
// An allowed action that failed in the driver (never the payload).
AuditEntry action_failed(const Caller* caller, std::string app, std::string device, std::string op,
                         std::string reason);
AuditEntry identity_lost(const Caller* caller, std::string reason);

// --- Devices ---

// A driver's alarm: `code` (the record's op) and its text.
AuditEntry alarm(std::string device, std::string code, std::string text);
AuditEntry self_test(std::string device, bool passed, std::string detail);

// --- Connections (the listener) ---

AuditEntry identity_refused(const Caller* caller, std::string reason);
AuditEntry connection_refused(const Caller* caller, std::string reason);

// --- The daemon and its features ---

// The terminal's health is `state` ("OK", "DEGRADED", ...) for `reasons`
// ("" = all checks ok).
AuditEntry health_changed(std::string state, const std::string& reasons);
AuditEntry policy_loaded(std::string policy, std::string reason);
AuditEntry policy_rejected(std::string policy, std::string reason);
AuditEntry feature_failed(std::string reason);
AuditEntry feature_recovered(const std::string& feature, int failures);
AuditEntry audit_failed(std::string reason);
AuditEntry audit_recovered();

// --- The audit log's own records ---

// A torn last line of `bytes` bytes after seq `last_seq`, cut away at start.
AuditEntry audit_truncated(std::uint64_t bytes, std::uint64_t last_seq);
// The file `path` was `what` ("deleted", "replaced by another file") after
// seq `last_seq` and reopened.
AuditEntry audit_reopened(const std::string& path, std::uint64_t last_seq, const std::string& what);
// `count` records not kept while `pending_bytes` waited to be written.
AuditEntry audit_records_lost(std::uint64_t count, std::uint64_t pending_bytes);
// `count` denials of `key` (a uid in decimal, else a name such as
// "unidentified") not recorded under the rate limit `burst`, `per_second`.
AuditEntry denials_suppressed(const std::string& key, std::uint64_t count, double burst,
                              double per_second);

// --- Signed commands from the fleet (agent/commands) ---

// A command refused before anything ran, or a repeat answered with its first
// result: `reason` says which. `command_id` "" when the command could not be
// read, `action` ("ping", ...) "" when unknown; `source` the link ("mqtt").
AuditEntry command_refused(std::string source, std::string command_id, std::string action,
                           std::string reason);
// A verified command that ran; `outcome`: "OK", or "FAILED: why".
AuditEntry command_ran(std::string source, std::string command_id, std::string action,
                       std::string outcome);

}  // namespace portier::audit
