// portierd's configuration file (TOML). Every key is documented in README.md;
// unknown keys are errors, so a typo never silently falls back to a default.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/log.h"
#include "common/result.h"
#include "drivers/bluetooth/bluetooth_config.h"
#include "drivers/hid_scanner/hid_scanner_config.h"
#include "drivers/pcsc/pcsc_config.h"
#include "drivers/serial_scanner/scanner_config.h"
#include "drivers/simulated/simulated_card_reader.h"
#include "drivers/usb/usb_config.h"

namespace portier::daemon {

struct DaemonConfig {
  std::string socket = "/run/portier/portierd.sock";
  mode_t socket_mode = 0660;
  std::string socket_group;
  std::string state_dir = "/var/lib/portier";
  std::string policy = "/etc/portier/policy.toml";
  std::string audit_log;  // default: <state_dir>/audit.jsonl
  std::uint64_t audit_max_bytes = 16u << 20;
  int audit_keep_files = 24;  // rotated files kept: <audit_log>.1 (newest) .. .24
  // The health state the terminal takes while the audit trail cannot be
  // written: "degraded" or "compromised".
  std::string audit_failure_health = "degraded";
  LogLevel log_level = LogLevel::info;
  std::uint32_t subscriber_queue = 256;
  std::uint32_t max_lease_seconds = 300;
  std::vector<drivers::SerialScannerConfig> serial_scanners;
  std::vector<drivers::SimulatedScannerConfig> simulated_scanners;
  std::vector<drivers::HidScannerConfig> hid_scanners;
  std::optional<drivers::PcscConfig> pcsc;            // the [pcsc] table enables the driver
  std::optional<drivers::BluetoothConfig> bluetooth;  // the [bluetooth] table enables the driver
  std::optional<drivers::usb::UsbConfig> usb;         // the [usb] table enables the driver
  std::vector<drivers::SimulatedCardReaderConfig> simulated_readers;
  // [health] refuse_when_compromised: "op" or "op:class" entries.
  struct Refusal {
    std::string op;
    std::string device_class;
  };
  // [health]: the health monitor (off unless `monitor = true`).
  struct Health {
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
  } health;
  // [identity]: how callers are identified (README, App identity).
  struct Identity {
    std::uint64_t max_exe_bytes = 1ull << 30;  // larger executables are refused
    int hash_timeout_ms = 3000;                // an executable not hashed by then is refused
    int resolver_threads = 4;                  // identities resolved at once
    int resolving_per_uid = 1;                 // of which one uid's
    int waiting_per_uid = 64;                  // connections of one uid waiting
    bool peer_pidfd = true;  // false: identify as on kernels without SO_PEERPIDFD (tests)
  } identity;
  // [limits]: connections and streams per app (declared) or uid (undeclared),
  // from separate pools so undeclared callers never starve declared apps.
  struct Limits {
    int connections_per_app = 64, connections_declared = 1024;
    int connections_per_undeclared_uid = 8, connections_undeclared = 64;
    int streams_per_app = 64, streams_declared = 256;
    int streams_per_undeclared_uid = 4, streams_undeclared = 32;
  } limits;
  std::vector<Refusal> refuse_when_compromised = {
      {"transmit", ""}, {"claim", "smartcard"}, {"claim", "nfc"}, {"claim", "pinpad"}};
};

// Errors carry "<source>:<line>:<col>: <key>: <reason>".
Result<DaemonConfig> parse_config(std::string_view text, const std::string& source);
Result<DaemonConfig> load_config(const std::string& path);

// The embedded demo: simulated scanner, socket and policy under `state_dir`,
// a policy that lets root's portierctl (next to `bin_dir`) use everything.
// Writes the policy file and returns the config.
Result<DaemonConfig> demo_config(const std::string& state_dir, const std::string& bin_dir);

}  // namespace portier::daemon
