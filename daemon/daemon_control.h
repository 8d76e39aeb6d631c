// What the daemon lets a feature do on the fleet's behalf (agent::
// DaemonControl): health checks now, a policy replaced through the local
// reload path, a device action as the daemon, a range of the audit trail,
// and the digest of the policy in force.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "agent/feature.h"
#include "common/audit_sink.h"
#include "gateway/device_hub.h"
#include "gateway/policy_store.h"

namespace portier::daemon {

class HubDaemonControl final : public agent::DaemonControl {
 public:
  HubDaemonControl(gateway::DeviceHub& hub, gateway::PolicyStore& policy, AuditSink& audit,
                   std::string audit_path, int audit_keep_files)
      : hub_(hub),
        policy_(policy),
        audit_(audit),
        audit_path_(std::move(audit_path)),
        keep_files_(audit_keep_files) {}
  // Set once the health checks exist (they start after the features).
  void set_health_run(std::function<void()> fn) { health_run_ = std::move(fn); }

  void run_health_checks() override;
  Result<void> replace_policy(const std::string& toml) override;
  Result<std::string> device_action(const std::string& device_id,
                                    const std::string& action) override;
  Result<std::vector<std::string>> audit_range(std::uint64_t first, std::uint64_t last) override;
  // Taken from the file once per policy generation (the loaded policy keeps
  // no bytes): a file edited and not reloaded yet (the watch reloads it at
  // once) could be read in its place, never one that failed to load.
  std::string policy_sha256() override;

 private:
  gateway::DeviceHub& hub_;
  gateway::PolicyStore& policy_;
  AuditSink& audit_;
  std::string audit_path_;
  int keep_files_;
  std::function<void()> health_run_;
  std::mutex digest_mu_;
  std::uint64_t digest_generation_ = 0;  // of the policy digest_ is of
  std::string digest_;
};

}  // namespace portier::daemon
