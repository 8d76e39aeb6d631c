// The [health] table of portierd's config: the health monitor's settings
// (off unless `monitor = true`). README.md, Health monitor, lists each key.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace portier::health {

struct HealthConfig {
  bool monitor = false;
  std::vector<std::string> checks;         // ids to run; empty = all standard + boot_integrity
  std::map<std::string, int> interval_ms;  // per check id
  std::string proc_root = "/proc", sys_root = "/sys";
  std::vector<std::string> root_processes_allowed;
  std::string management_host, management_port;
  std::string tpm_tcti = "device:/dev/tpmrm0";
  int tpm_timeout_ms = 5000;
  std::string tpm_reference;  // provisioned PCR values; "" = none (warn)
  std::string event_log = "/sys/kernel/security/tpm0/binary_bios_measurements";
  std::string ima_log = "/sys/kernel/security/ima/ascii_runtime_measurements";
  // Thresholds and paths; unset keys keep the checks' defaults (README).
  std::map<std::string, double> thresholds;  // cpu_warn_per_core, ...
  std::optional<std::string> disk_path, baseline_file, baseline_key_file, installed_binary;
  std::optional<std::vector<std::string>> setuid_paths, setuid_allowed, writable_paths;
};

}  // namespace portier::health
