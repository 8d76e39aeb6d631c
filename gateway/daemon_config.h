// portierd's configuration file (TOML). Every key is documented in README.md;
// unknown keys are errors, so a typo never silently falls back to a default.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "drivers/bluetooth/bluetooth_config.h"
#include "drivers/hid_scanner/hid_scanner_config.h"
#include "drivers/pcsc/pcsc_config.h"
#include "drivers/serial_scanner/scanner_config.h"
#include "drivers/simulated/simulated_card_reader.h"
#include "drivers/usb/usb_config.h"
#include "log.h"
#include "portier/result.h"

namespace portier::gateway {

struct DaemonConfig {
  std::string socket = "/run/portier/portierd.sock";
  mode_t socket_mode = 0660;
  std::string socket_group;
  std::string state_dir = "/var/lib/portier";
  std::string policy = "/etc/portier/policy.toml";
  std::string audit_log;  // default: <state_dir>/audit.jsonl
  std::uint64_t audit_max_bytes = 16u << 20;
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

}  // namespace portier::gateway
