// portierd's configuration file (TOML). Every key is documented in README.md;
// unknown keys are errors, so a typo never silently falls back to a default.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "agent/feature_registry.h"
#include "common/log.h"
#include "common/result.h"
#include "drivers/driver_registry.h"

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
  // The drivers the config's driver tables ([[scanner]], [pcsc], ...) ask
  // for, in the order they were read; built through builtin_drivers().
  std::vector<drivers::DriverSpec> drivers;
  // [health] refuse_when_compromised: "op" or "op:class" entries.
  struct Refusal {
    std::string op;
    std::string device_class;
  };
  // The agent features whose tables ([health], ...) the config has, in the
  // order they were registered; built through builtin_features().
  std::vector<agent::FeatureSpec> features;
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

// The driver kinds and agent features built into this portierd
// (drivers/builtin_drivers.cc, agent/builtin_features.cc).
const drivers::DriverRegistry& builtin_drivers();
const agent::FeatureRegistry& builtin_features();

// Errors carry "<source>:<line>:<col>: <key>: <reason>", at the value that is
// wrong; an unknown key names the nearest known one.
Result<DaemonConfig> parse_config(std::string_view text, const std::string& source);
Result<DaemonConfig> parse_config(std::string_view text, const std::string& source,
                                  const drivers::DriverRegistry& drivers,
                                  const agent::FeatureRegistry& features);
Result<DaemonConfig> load_config(const std::string& path,
                                 const agent::FeatureRegistry& features = builtin_features());

// The embedded demo: simulated scanner, socket and policy under `state_dir`,
// a policy that lets root's portierctl (next to `bin_dir`) use everything.
// Writes the policy file and returns the config.
Result<DaemonConfig> demo_config(const std::string& state_dir, const std::string& bin_dir);

}  // namespace portier::daemon
