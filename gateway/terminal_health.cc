#include "terminal_health.h"

#include <algorithm>

#include "common/audit_events.h"
#include "common/log.h"

namespace portier::gateway {

std::string HealthState::summary() const {
  std::string s = state == policy::Health::ok         ? "health OK"
                  : state == policy::Health::degraded ? "health DEGRADED"
                                                      : "health COMPROMISED";
  for (std::size_t i = 0; i < reasons.size(); ++i) s += (i ? "; " : ": ") + reasons[i];
  return s;
}

void TerminalHealth::set_external(policy::Health state, std::vector<std::string> reasons) {
  external_ = state;
  external_reasons_ = std::move(reasons);
}

void TerminalHealth::set_component(const std::string& component, policy::Health state,
                                   std::string reason) {
  if (state == policy::Health::ok) {
    components_.erase(component);
  } else {
    components_[component] = {state, std::move(reason)};
  }
}

void TerminalHealth::set_device_problem(const std::string& device_id, std::string problem) {
  if (problem.empty()) {
    devices_.erase(device_id);
  } else {
    devices_[device_id] = std::move(problem);
  }
}

void TerminalHealth::record_self_tests(const std::vector<drivers::SelfTestResult>& results,
                                       AuditSink& sink) {
  for (auto& r : results) {
    self_tests_.push_back(r);
    const std::string detail = std::string("present=") + (r.present ? "yes" : "no") +
                               " responding=" + (r.responding ? "yes" : "no") +
                               " identity=" + (r.identity_ok ? "ok" : "MISMATCH") +
                               (r.detail.empty() ? "" : "; " + r.detail);
    sink.record(audit::self_test(r.device_id, r.passed(), detail));
    if (r.passed()) {
      log_info("self-test " + r.device_id + ": passed");
    } else {
      log_warning("self-test " + r.device_id + ": FAILED: " + detail);
    }
  }
}

HealthState TerminalHealth::evaluate() const {
  HealthState h{
      external_,
      external_reasons_,
  };
  auto worse = [&](policy::Health s) { h.state = std::max(h.state, s); };
  for (auto& [id, problem] : devices_) {
    worse(policy::Health::degraded);
    h.reasons.push_back(problem);
  }
  for (auto& t : self_tests_) {
    if (t.passed()) continue;
    worse(policy::Health::degraded);
    h.reasons.push_back("self-test of " + t.device_id + " failed" +
                        (t.detail.empty() ? "" : ": " + t.detail));
  }
  auto st = policy_.status();
  if (!st.last_error.empty()) {
    worse(policy::Health::degraded);
    h.reasons.push_back("policy reload rejected (old policy stays in force): " + st.last_error);
  }
  for (auto& [component, state] : components_) {
    worse(state.first);
    h.reasons.push_back(component + " failed: " + state.second);
  }
  if (auto f = audit_.failure(); !f.empty()) {
    worse(audit_failure_health_);
    h.reasons.push_back(
        "the audit trail cannot be written, operations that must be audited are refused: " + f);
  }
  return h;
}

}  // namespace portier::gateway
