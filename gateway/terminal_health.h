// The terminal's health as the gate sees it: the health monitor's verdict
// (boot, root, resources, network), devices that are not ready, failed
// self-tests, a rejected policy reload, failing parts of the daemon (agent
// features) and an unwritable audit trail, each with its reason. Not
// thread-safe: the hub holds its lock around every call.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "common/audit_sink.h"
#include "drivers/driver.h"
#include "health_state.h"
#include "policy/policy.h"
#include "policy_store.h"

namespace portier::gateway {

class TerminalHealth {
 public:
  TerminalHealth(const PolicyStore& policy, const AuditSink& audit,
                 policy::Health audit_failure_health)
      : policy_(policy), audit_(audit), audit_failure_health_(audit_failure_health) {}

  void set_external(policy::Health state, std::vector<std::string> reasons);
  // OK clears `component`; anything else adds "<component> failed: <reason>".
  void set_component(const std::string& component, policy::Health state, std::string reason);
  // A device that is not ready degrades the terminal; "" = it is ready again.
  void set_device_problem(const std::string& device_id, std::string problem);
  // Keeps the drivers' self-test results, each audited and logged.
  void record_self_tests(const std::vector<drivers::SelfTestResult>& results, AuditSink& sink);
  const std::vector<drivers::SelfTestResult>& self_tests() const { return self_tests_; }

  HealthState evaluate() const;

 private:
  const PolicyStore& policy_;
  const AuditSink& audit_;
  const policy::Health audit_failure_health_;
  policy::Health external_ = policy::Health::ok;
  std::vector<std::string> external_reasons_;
  std::map<std::string, std::string> devices_;  // device id -> problem
  std::vector<drivers::SelfTestResult> self_tests_;
  std::map<std::string, std::pair<policy::Health, std::string>> components_;
};

}  // namespace portier::gateway
