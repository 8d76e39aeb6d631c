#include "access_decider.h"

#include "common/audit_events.h"
#include "quoted.h"

namespace portier::gateway {

using policy::Op;

Error no_device(const std::string& device_id) {
  return Error{Errc::not_found,
               {},
               {},
               "no device " + quoted(device_id) + "; `portierctl devices` lists them"};
}

std::string AccessDecider::describe(const Connection& conn, const std::string& app) {
  if (!app.empty()) return "app '" + app + "'";
  const auto& c = conn.caller();
  return "undeclared app (uid " + std::to_string(c.uid) + ", " + c.exe + ")";
}

void AccessDecider::refresh_caller(Connection& conn, const PolicySnapshot& snap) {
  if (conn.policy_generation == snap.generation) return;
  conn.caller_rules = snap.policy->rules_for_caller(conn.caller());
  conn.apps = snap.policy->app_names(conn.caller());
  conn.policy_generation = snap.generation;
}

Result<void> AccessDecider::verify_caller(Connection& conn, const std::string& device_id,
                                          const std::string& op) {
  if (!conn.identify_error.empty()) {
    // Audited once, when the connection was refused an identity (once per
    // file for an executable too large or slow to hash), not per call.
    return fail_msg(Errc::permission_denied,
                    "caller could not be identified: " + conn.identify_error);
  }
  if (auto ok = verify_peer(conn.identity); !ok) {
    audit_.record(audit::refusal(&conn.caller(), device_id, op, ok.error().why));
    return fail_msg(Errc::permission_denied, ok.error().message());
  }
  return {};
}

policy::Decision AccessDecider::decide(Connection& conn, DeviceRecord& dev, Op op,
                                       const PolicySnapshot& snap) {
  if (!snap.policy) return {};
  if (dev.policy_generation != snap.generation) {
    dev.device_rules = snap.policy->rules_for_device(dev.ref());
    dev.policy_generation = snap.generation;
  }
  std::lock_guard lock(conn.mu);
  refresh_caller(conn, snap);
  auto d = snap.policy->decide(conn.caller_rules, dev.device_rules, op);
  if (d.app.empty() && !conn.apps.empty()) d.app = conn.apps.front();
  return d;
}

Access AccessDecider::check(Connection& conn, DeviceRecord* dev, const std::string& device_id,
                            Op op, const PolicySnapshot& snap) {
  Access a;
  const std::string opn(policy::op_name(op));
  if (!dev) {
    a.status = std::unexpected(no_device(device_id));
    return a;
  }
  a.decision = decide(conn, *dev, op, snap);
  const auto& d = a.decision;
  if (d.allow) {
    if (auto why = health_gate(*dev, op, d); !why.empty()) {
      a.status = fail_msg(Errc::permission_denied, describe(conn, d.app) + " may not " + opn + " " +
                                                       quoted(device_id) + " now: " + why);
      record_decision(&conn, d.app, device_id, op, {}, why);
    }
    return a;
  }
  std::string why;
  if (!snap.policy) {
    why = "no policy is loaded";
  } else if (d.rule > 0) {
    why = "rule " + std::to_string(d.rule) + " of " + d.source + ", line " + std::to_string(d.line);
  } else {
    why = "no rule of " + d.source + " allows it; default deny";
  }
  a.status = fail_msg(Errc::permission_denied, describe(conn, d.app) + " may not " + opn + " " +
                                                   quoted(device_id) + " (" + why + ")");
  record_decision(&conn, d.app, device_id, op, d, why);
  return a;
}

std::string AccessDecider::health_gate(const DeviceRecord& dev, Op op,
                                       const policy::Decision& d) const {
  // Most decisions cannot be gated: skip working out the health for them.
  bool by_refusal = false;
  for (auto& r : refusals_) {
    by_refusal |=
        r.op == op && (r.device_class.empty() || r.device_class == dev.view.info.device_class);
  }
  if (d.require_health == policy::Health::compromised && !by_refusal) return {};
  auto h = health_.evaluate();
  std::string why_state;
  for (auto& r : h.reasons) why_state += (why_state.empty() ? "" : "; ") + r;
  if (h.state > d.require_health) {
    return "rule " + std::to_string(d.rule) + " of " + d.source + " requires health " +
           (d.require_health == policy::Health::ok ? "OK" : "not COMPROMISED") +
           " and the terminal is " +
           (h.state == policy::Health::degraded ? "DEGRADED" : "COMPROMISED") + " (" + why_state +
           ")";
  }
  if (h.state == policy::Health::compromised && by_refusal) {
    return "the terminal is COMPROMISED (" + why_state + "); " + std::string(policy::op_name(op)) +
           " is refused until its health recovers";
  }
  return {};
}

Result<void> AccessDecider::may_watch(Connection& conn) {
  if (auto ok = verify_caller(conn, "", "watch"); !ok) return ok;
  auto snap = policy_.current();
  if (!snap.policy) return fail_msg(Errc::permission_denied, "no policy is loaded");
  std::string app;
  {
    std::lock_guard lock(conn.mu);
    refresh_caller(conn, snap);
    if (snap.policy->may_allow_any(conn.caller_rules, Op::watch)) return {};
    if (!conn.apps.empty()) app = conn.apps.front();
  }
  const std::string why = "no rule of " + snap.policy->source() + " lets it watch any device";
  policy::Decision d;
  d.app = app;
  d.source = snap.policy->source();
  record_decision(&conn, app, "", Op::watch, d, why);
  return fail_msg(Errc::permission_denied,
                  describe(conn, app) + " may not watch devices (" + why + ")");
}

std::vector<std::string> AccessDecider::app_names(Connection& conn) {
  auto snap = policy_.current();
  if (!snap.policy || !conn.identify_error.empty()) return {};
  std::lock_guard lock(conn.mu);
  refresh_caller(conn, snap);
  return conn.apps;
}

Result<void> AccessDecider::record_allow(const AuditEntry& entry, const std::string& what) {
  auto r = audit_.record_durable(entry, audit_timeout_);
  if (r) return {};
  // The allow stays queued and reaches the file once the trail recovers:
  // the refusal that follows is recorded right behind it, so the trail
  // never shows a granted operation that did not happen.
  audit_.record(audit::allow_revoked(entry, r.error().why));
  return fail_msg(Errc::unavailable, what + " refused: its audit record cannot be written (" +
                                         r.error().message() +
                                         "); it is allowed again once the audit trail is");
}

void AccessDecider::record_decision(const Connection* conn, const std::string& app,
                                    const std::string& device, Op op, const policy::Decision& d,
                                    const std::string& reason) {
  audit_.record(decision_entry(conn, app, device, op, d, reason));
}

AuditEntry AccessDecider::decision_entry(const Connection* conn, const std::string& app,
                                         const std::string& device, Op op,
                                         const policy::Decision& d, const std::string& reason) {
  return audit::decision(conn ? &conn->caller() : nullptr, app, device,
                         std::string(policy::op_name(op)), d.allow, {d.rule, d.line, d.source},
                         reason);
}

}  // namespace portier::gateway
