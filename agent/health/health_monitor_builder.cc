#include "agent/health/health_monitor_builder.h"

#include <algorithm>

#include "agent/attest/boot_integrity_check.h"
#include "agent/health/standard_checks.h"
#include "common/audit_events.h"
#include "common/audit_sink.h"
#include "common/log.h"

namespace portier::health {
namespace {

// Boot integrity as a health check: critical, so a tampered boot makes the
// terminal COMPROMISED; "no TPM" or nothing provisioned is a warning.
class BootIntegrityHealthCheck final : public Check {
 public:
  explicit BootIntegrityHealthCheck(attest::BootIntegrityConfig config) : check_(config) {}
  std::string id() const override { return "boot_integrity"; }
  Severity severity() const override { return Severity::critical; }
  CheckResult run(const std::atomic<bool>&) override {
    auto r = check_.run();
    std::string reason;
    for (auto& x : r.reasons) reason += (reason.empty() ? "" : "; ") + x;
    CheckResult out;
    out.status = r.state == attest::BootState::ok     ? CheckResult::Status::ok
                 : r.state == attest::BootState::warn ? CheckResult::Status::warn
                                                      : CheckResult::Status::fail;
    out.reason = reason.empty() ? "boot measurements match" : reason;
    out.values = r.measured;
    return out;
  }

 private:
  attest::BootIntegrityCheck check_;
};

policy::Health to_policy(HealthState s) {
  switch (s) {
    case HealthState::ok:
      return policy::Health::ok;
    case HealthState::degraded:
      return policy::Health::degraded;
    case HealthState::compromised:
      return policy::Health::compromised;
  }
  return policy::Health::compromised;
}

}  // namespace

std::unique_ptr<HealthMonitor> build_health_monitor(const HealthConfig& config,
                                                    const agent::FeatureContext& context) {
  auto wanted = [&](const std::string& id) {
    return config.checks.empty() ||
           std::find(config.checks.begin(), config.checks.end(), id) != config.checks.end();
  };
  auto settings_for = [&](const std::string& id) {
    auto s = default_settings(id);
    if (auto it = config.interval_ms.find(id); it != config.interval_ms.end()) {
      s.interval = std::chrono::milliseconds(it->second);
      s.jitter = s.interval / 5;
    }
    return s;
  };

  StandardChecksConfig sc;
  sc.proc_root = config.proc_root;
  sc.sys_root = config.sys_root;
  sc.root_processes.allowed = {config.root_processes_allowed.begin(),
                               config.root_processes_allowed.end()};
  sc.management.host = config.management_host;
  sc.management.port = config.management_port;
  auto t = [&](const char* key, double& field) {
    if (auto it = config.thresholds.find(key); it != config.thresholds.end()) field = it->second;
  };
  t("cpu_warn_per_core", sc.cpu.warn_per_core);
  t("cpu_fail_per_core", sc.cpu.fail_per_core);
  t("memory_warn_available_below", sc.memory.warn_available_below);
  t("memory_fail_available_below", sc.memory.fail_available_below);
  t("disk_warn_free_below", sc.disk.warn_free_below);
  t("disk_fail_free_below", sc.disk.fail_free_below);
  t("temperature_warn_celsius", sc.temperature.warn_celsius);
  t("temperature_fail_celsius", sc.temperature.fail_celsius);
  t("fd_warn_used_above", sc.fd.warn_used_above);
  t("fd_fail_used_above", sc.fd.fail_used_above);
  if (config.disk_path) sc.disk.path = *config.disk_path;
  if (config.baseline_file) sc.baseline.baseline_file = *config.baseline_file;
  if (config.baseline_key_file) sc.baseline.key_file = *config.baseline_key_file;
  if (config.installed_binary) sc.self_binary.installed = *config.installed_binary;
  if (config.setuid_paths) sc.setuid.paths = *config.setuid_paths;
  if (config.setuid_allowed) {
    sc.setuid.allowed = {config.setuid_allowed->begin(), config.setuid_allowed->end()};
  }
  if (config.writable_paths) sc.writable.paths = *config.writable_paths;
  auto standard = make_standard_checks(sc);
  std::vector<PeripheralSelfTest> peripherals;
  for (auto& t : context.peripherals) peripherals.push_back({t.device_id, t.passed, t.detail});
  standard.peripherals->update(peripherals);

  auto monitor = std::make_unique<HealthMonitor>();
  for (auto& [check, settings] : standard.checks) {
    if (!wanted(check->id())) continue;
    auto s = settings_for(check->id());
    monitor->add(check, s);
  }
  if (wanted("boot_integrity")) {
    attest::BootIntegrityConfig bc;
    bc.tpm.tcti = config.tpm_tcti;
    bc.tpm.timeout = std::chrono::milliseconds(config.tpm_timeout_ms);
    bc.event_log_path = config.event_log;
    bc.ima_log_path = config.ima_log;
    bc.reference_path = config.tpm_reference;
    auto s = settings_for("boot_integrity");
    if (!config.interval_ms.count("boot_integrity")) {
      s.interval = std::chrono::seconds(60);
      s.jitter = std::chrono::seconds(12);
    }
    s.timeout = std::chrono::milliseconds(config.tpm_timeout_ms * 3);
    monitor->add(std::make_shared<BootIntegrityHealthCheck>(bc), s);
  }
  monitor->set_listener([gate = context.health, audit = context.audit](const HealthReport& r) {
    if (gate) gate->set_terminal_health(to_policy(r.state), r.reasons);
    std::string reasons;
    for (auto& x : r.reasons) reasons += (reasons.empty() ? "" : "; ") + x;
    if (audit) audit->record(audit::health_changed(to_string(r.state), reasons));
    auto line =
        std::string("health ") + to_string(r.state) + (reasons.empty() ? "" : ": " + reasons);
    if (r.state == HealthState::ok) {
      log_info(line);
    } else {
      log_warning(line);
    }
  });
  return monitor;
}

}  // namespace portier::health
