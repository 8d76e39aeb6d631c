// Boot integrity: TPM PCRs against provisioned reference values, against
// the replay of the firmware event log, and PCR 10 against the replay of the
// IMA log. For the health monitor (REQ-7).
//
//   state ok    everything checked matches
//   state warn  something could not be checked (no TPM → "degraded: no TPM",
//               no reference values, no event log, a missing sha256 bank)
//   state fail  a mismatch (tampered log, different boot, PCR differs from
//               reference), a corrupted log, a TPM that stops answering
// The health monitor maps warn → DEGRADED and fail → COMPROMISED; a missing
// TPM never passes silently.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "agent/attest/pcr_replay.h"
#include "agent/attest/tpm_client.h"

namespace portier::attest {

struct BootIntegrityConfig {
  TpmConfig tpm;  // tcti "device:/dev/tpmrm0", timeout 5 s per TPM operation
  // Empty path: that source is not used.
  std::string event_log_path = "/sys/kernel/security/tpm0/binary_bios_measurements";
  std::string ima_log_path = "/sys/kernel/security/ima/ascii_runtime_measurements";
  std::string reference_path;  // see reference_values.h; empty: none provisioned (warn)
  ImaSha256Mode ima_mode = ImaSha256Mode::template_data;
  // PCRs always compared with the event-log replay (firmware PCRs), in
  // addition to every PCR the log extends.
  std::vector<std::uint32_t> firmware_pcrs{0, 1, 2, 3, 4, 5, 6, 7};
};

enum class BootState { ok, warn, fail };
const char* to_string(BootState s);

struct BootIntegrityResult {
  BootState state = BootState::ok;
  bool tpm_present = false;
  bool degraded = false;             // a source could not be checked (e.g. "degraded: no TPM")
  std::vector<std::string> reasons;  // person-readable, one per finding
  // Measured values, "sha256:7" → hex (TPM PCRs that were read).
  std::map<std::string, std::string> measured;
  std::size_t event_log_events = 0;
  std::size_t ima_entries = 0;
  std::chrono::microseconds elapsed{0};
};

class BootIntegrityCheck {
 public:
  explicit BootIntegrityCheck(BootIntegrityConfig cfg);
  // Runs all checks; never throws, never blocks past the TPM timeout (plus
  // local file reads).
  BootIntegrityResult run();
  TpmClient& tpm() { return tpm_; }

 private:
  BootIntegrityConfig cfg_;
  TpmClient tpm_;
};

}  // namespace portier::attest
