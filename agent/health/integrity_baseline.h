// File-integrity baseline (REQ-7 "root", REQ-9 integrity): at provisioning the
// SHA-256 of /etc/passwd, /etc/shadow, /etc/sudoers and Portier's binaries and
// units are written to a baseline file whose last line is an HMAC-SHA256 over
// the rest, keyed by a 0600 key file. The check verifies the HMAC, then each
// file's digest.
//
// Baseline format (text, one record a line):
//   portier-baseline v1
//   sha256 <64 hex> <absolute path to end of line>
//   hmac-sha256 <64 hex>      (over every byte before this line)
#pragma once

#include <string>
#include <vector>

#include "agent/health/health_check.h"
#include "common/result.h"

namespace portier::health {

// Lower-case hex SHA-256 of a file's content.
Result<std::string> sha256_file(const std::string& path);

// Writes the baseline (atomically: temp file, fsync, rename; mode 0600).
// Creates the key file (32 random bytes, 0600) when it does not exist.
// Fails when a listed file cannot be read: a baseline must be complete.
Result<void> create_baseline(const std::vector<std::string>& paths,
                             const std::string& baseline_file, const std::string& key_file);

struct BaselineOptions {
  std::string baseline_file = "/var/lib/portier/health/baseline";
  std::string key_file = "/etc/portier/health-baseline.key";
  Severity severity = Severity::critical;
};
class IntegrityBaselineCheck : public Check {
 public:
  explicit IntegrityBaselineCheck(BaselineOptions o = {}) : o_(std::move(o)) {}
  std::string id() const override { return "file_integrity"; }
  Severity severity() const override { return o_.severity; }
  CheckResult run(const std::atomic<bool>& cancel) override;

 private:
  BaselineOptions o_;
};

}  // namespace portier::health
