#include "common/audit_events.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <utility>

namespace portier::audit {
namespace {

AuditEntry plain(AuditEvent event, std::string reason) {
  AuditEntry e;
  e.event = event;
  e.reason = std::move(reason);
  return e;
}

AuditEntry lease_end(AuditEvent event, const Caller* caller, std::string app, std::string device,
                     std::string reason) {
  AuditEntry e = plain(event, std::move(reason));
  e.caller = caller;
  e.app = std::move(app);
  e.device = std::move(device);
  return e;
}

AuditEntry refused_connection(AuditEvent event, const Caller* caller, std::string reason) {
  AuditEntry e = plain(event, std::move(reason));
  e.caller = caller;
  e.decision = AuditDecision::deny;
  return e;
}

}  // namespace

AuditEntry decision(const Caller* caller, std::string app, std::string device, std::string op,
                    bool allow, RuleRef rule, std::string reason) {
  AuditEntry e = plain(AuditEvent::decision, std::move(reason));
  e.caller = caller;
  e.app = std::move(app);
  e.device = std::move(device);
  e.op = std::move(op);
  e.decision = allow ? AuditDecision::allow : AuditDecision::deny;
  e.rule = rule.rule;
  e.line = rule.line;
  e.policy = std::move(rule.policy);
  return e;
}

AuditEntry refusal(const Caller* caller, std::string device, std::string op, std::string reason) {
  AuditEntry e = plain(AuditEvent::decision, std::move(reason));
  e.caller = caller;
  e.device = std::move(device);
  e.op = std::move(op);
  e.decision = AuditDecision::deny;
  return e;
}

AuditEntry claim_refused(const Caller* caller, std::string app, std::string device, RuleRef rule,
                         std::string reason) {
  AuditEntry e = decision(caller, std::move(app), std::move(device), "claim", false,
                          std::move(rule), std::move(reason));
  e.event = AuditEvent::claim;
  return e;
}

AuditEntry claim_held(const Caller* caller, std::string app, std::string device, RuleRef rule,
                      const std::string& holder) {
  return claim_refused(caller, std::move(app), std::move(device), std::move(rule),
                       "held by " + holder);
}

AuditEntry allow_revoked(AuditEntry allow, const std::string& why) {
  allow.event = AuditEvent::allow_revoked;
  allow.decision = AuditDecision::deny;
  allow.reason = "refused after all: its audit record could not be written in time (" + why + ")";
  return allow;
}

AuditEntry lease_released(const Caller* caller, std::string app, std::string device,
                          std::string reason) {
  return lease_end(AuditEvent::lease_released, caller, std::move(app), std::move(device),
                   std::move(reason));
}

AuditEntry lease_expired(const Caller* caller, std::string app, std::string device,
                         std::string reason) {
  return lease_end(AuditEvent::lease_expired, caller, std::move(app), std::move(device),
                   std::move(reason));
}

AuditEntry lease_revoked(const Caller* caller, std::string app, std::string device,
                         std::string reason) {
  return lease_end(AuditEvent::lease_revoked, caller, std::move(app), std::move(device),
                   std::move(reason));
}

AuditEntry card_reset(std::string device, const std::string& error) {
  AuditEntry e =
      plain(AuditEvent::card_reset,
            error.empty() ? "after the lease ended" : "after the lease ended, failed: " + error);
  e.device = std::move(device);
  return e;
}

AuditEntry action_failed(const Caller* caller, std::string app, std::string device, std::string op,
                         std::string reason) {
  AuditEntry e = lease_end(AuditEvent::action_failed, caller, std::move(app), std::move(device),
                           std::move(reason));
  e.op = std::move(op);
  return e;
}

AuditEntry identity_lost(const Caller* caller, std::string reason) {
  AuditEntry e = plain(AuditEvent::identity_lost, std::move(reason));
  e.caller = caller;
  return e;
}

AuditEntry alarm(std::string device, std::string code, std::string text) {
  AuditEntry e = plain(AuditEvent::alarm, std::move(text));
  e.device = std::move(device);
  e.op = std::move(code);
  return e;
}

AuditEntry self_test(std::string device, bool passed, std::string detail) {
  AuditEntry e = plain(AuditEvent::self_test, std::move(detail));
  e.device = std::move(device);
  e.decision = passed ? AuditDecision::pass : AuditDecision::fail;
  return e;
}

AuditEntry identity_refused(const Caller* caller, std::string reason) {
  return refused_connection(AuditEvent::identity_refused, caller, std::move(reason));
}

AuditEntry connection_refused(const Caller* caller, std::string reason) {
  return refused_connection(AuditEvent::connection_refused, caller, std::move(reason));
}

AuditEntry health_changed(std::string state, const std::string& reasons) {
  AuditEntry e = plain(AuditEvent::health_changed, reasons.empty() ? "all checks ok" : reasons);
  e.device = "terminal";
  e.op = std::move(state);
  return e;
}

AuditEntry policy_loaded(std::string policy, std::string reason) {
  AuditEntry e = plain(AuditEvent::policy_loaded, std::move(reason));
  e.policy = std::move(policy);
  return e;
}

AuditEntry policy_rejected(std::string policy, std::string reason) {
  AuditEntry e = plain(AuditEvent::policy_rejected, std::move(reason));
  e.policy = std::move(policy);
  return e;
}

AuditEntry feature_failed(std::string reason) {
  return plain(AuditEvent::feature_failed, std::move(reason));
}

AuditEntry feature_recovered(const std::string& feature, int failures) {
  return plain(AuditEvent::feature_recovered, "feature " + feature + " runs again after " +
                                                  std::to_string(failures) + " failure(s)");
}

AuditEntry audit_failed(std::string reason) {
  return plain(AuditEvent::audit_failed, std::move(reason));
}

AuditEntry audit_recovered() { return plain(AuditEvent::audit_recovered, {}); }

AuditEntry audit_truncated(std::uint64_t bytes, std::uint64_t last_seq) {
  AuditEntry e = plain(AuditEvent::audit_truncated,
                       "a torn last line of " + std::to_string(bytes) + " bytes after seq " +
                           std::to_string(last_seq) + " was removed at start");
  e.bytes = bytes;
  e.last_seq = last_seq;
  return e;
}

AuditEntry audit_reopened(const std::string& path, std::uint64_t last_seq,
                          const std::string& what) {
  const std::string last = std::to_string(last_seq);
  AuditEntry e = plain(AuditEvent::audit_reopened, "the audit log " + path + " was " + what +
                                                       "; reopened: records after seq " + last +
                                                       " written to the old file may be lost");
  e.last_seq = last_seq;
  return e;
}

AuditEntry audit_records_lost(std::uint64_t count, std::uint64_t pending_bytes) {
  const std::string n = std::to_string(count);
  AuditEntry e = plain(AuditEvent::audit_records_lost,
                       n + " records were not kept while the audit log could not be written (" +
                           std::to_string(pending_bytes) + " bytes buffered)");
  e.count = count;
  return e;
}

AuditEntry denials_suppressed(const std::string& key, std::uint64_t count, double burst,
                              double per_second) {
  std::uint32_t n = 0;
  auto [end, err] = std::from_chars(key.data(), key.data() + key.size(), n);
  const bool uid = !key.empty() && err == std::errc() && end == key.data() + key.size() &&
                   std::all_of(key.begin(), key.end(), [](char c) { return c >= '0' && c <= '9'; });
  const std::string who = uid ? "uid " + key : key + " callers";
  char rate[32];
  std::snprintf(rate, sizeof(rate), "%g", per_second);
  AuditEntry e =
      plain(AuditEvent::denials_suppressed,
            std::to_string(count) + " denials of " + who + " not recorded (rate limit: burst " +
                std::to_string(static_cast<long>(burst)) + ", " + rate + "/s)");
  if (uid) {
    e.uid = n;
  } else {
    e.caller_key = key;
  }
  e.count = count;
  return e;
}

namespace {

AuditEntry command(std::string source, std::string command_id, std::string action, bool ran,
                   std::string reason) {
  AuditEntry e = plain(AuditEvent::command, std::move(reason));
  e.op = std::move(action);
  e.decision = ran ? AuditDecision::allow : AuditDecision::deny;
  e.command_id = std::move(command_id);
  e.source = std::move(source);
  return e;
}

}  // namespace

AuditEntry command_refused(std::string source, std::string command_id, std::string action,
                           std::string reason) {
  return command(std::move(source), std::move(command_id), std::move(action), false,
                 std::move(reason));
}

AuditEntry command_ran(std::string source, std::string command_id, std::string action,
                       std::string outcome) {
  return command(std::move(source), std::move(command_id), std::move(action), true,
                 std::move(outcome));
}

}  // namespace portier::audit
