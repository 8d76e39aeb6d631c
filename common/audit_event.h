// The kinds of audit record and the decisions a record names, as the parts of
// the daemon use them (without protobuf). They mirror proto/portier/v1/
// audit.proto's AuditEvent.Kind and AuditRecord.Decision: same names, same
// numbers (tests/gateway/audit_record_test.cc checks both ways). The name is
// what the trail's "event" / "decision" strings hold.
#pragma once

#include <optional>
#include <string_view>

namespace portier {

// X(name, number): one line per kind; add a kind to audit.proto as well.
#define PORTIER_AUDIT_EVENTS(X) \
  X(decision, 1)                \
  X(claim, 2)                   \
  X(allow_revoked, 3)           \
  X(lease_released, 4)          \
  X(lease_expired, 5)           \
  X(lease_revoked, 6)           \
  X(card_reset, 7)              \
  X(self_test, 8)               \
  X(alarm, 9)                   \
  X(action_failed, 10)          \
  X(identity_lost, 11)          \
  X(identity_refused, 12)       \
  X(connection_refused, 13)     \
  X(health_changed, 14)         \
  X(policy_loaded, 15)          \
  X(policy_rejected, 16)        \
  X(feature_failed, 17)         \
  X(feature_recovered, 18)      \
  X(audit_failed, 19)           \
  X(audit_recovered, 20)        \
  X(audit_reopened, 21)         \
  X(audit_records_lost, 22)     \
  X(audit_truncated, 23)        \
  X(denials_suppressed, 24)     \
  X(command, 25)

enum class AuditEvent : int {
  unspecified = 0,
#define PORTIER_AUDIT_EVENT_ENUM(name, number) name = number,
  PORTIER_AUDIT_EVENTS(PORTIER_AUDIT_EVENT_ENUM)
#undef PORTIER_AUDIT_EVENT_ENUM
};

enum class AuditDecision : int { none = 0, allow = 1, deny = 2, pass = 3, fail = 4 };

// "decision", "lease_expired", ...; "" for unspecified or a number not named.
constexpr std::string_view audit_event_name(AuditEvent e) {
  switch (e) {
#define PORTIER_AUDIT_EVENT_NAME(name, number) \
  case AuditEvent::name:                       \
    return #name;
    PORTIER_AUDIT_EVENTS(PORTIER_AUDIT_EVENT_NAME)
#undef PORTIER_AUDIT_EVENT_NAME
    case AuditEvent::unspecified:
      break;
  }
  return {};
}

constexpr std::optional<AuditEvent> parse_audit_event(std::string_view name) {
#define PORTIER_AUDIT_EVENT_PARSE(n, number) \
  if (name == #n) return AuditEvent::n;
  PORTIER_AUDIT_EVENTS(PORTIER_AUDIT_EVENT_PARSE)
#undef PORTIER_AUDIT_EVENT_PARSE
  return std::nullopt;
}

// "allow", "deny", "pass", "fail"; "" for none.
constexpr std::string_view audit_decision_name(AuditDecision d) {
  switch (d) {
    case AuditDecision::allow:
      return "allow";
    case AuditDecision::deny:
      return "deny";
    case AuditDecision::pass:
      return "pass";
    case AuditDecision::fail:
      return "fail";
    case AuditDecision::none:
      break;
  }
  return {};
}

constexpr AuditDecision parse_audit_decision(std::string_view name) {
  for (auto d :
       {AuditDecision::allow, AuditDecision::deny, AuditDecision::pass, AuditDecision::fail}) {
    if (audit_decision_name(d) == name) return d;
  }
  return AuditDecision::none;
}

}  // namespace portier
