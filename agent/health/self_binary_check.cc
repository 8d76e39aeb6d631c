#include "agent/health/self_binary_check.h"

#include "agent/health/integrity_baseline.h"

namespace portier::health {

CheckResult SelfBinaryCheck::run(const std::atomic<bool>&) {
  if (o_.installed.empty()) return CheckResult::ok("not configured");
  auto running = sha256_file(o_.running);
  if (!running)
    return CheckResult::fail("cannot read the running executable: " + running.error().message());
  auto installed = sha256_file(o_.installed);
  if (!installed)
    return CheckResult::fail("cannot read the installed binary: " + installed.error().message() +
                             ": reinstall Portier");
  CheckResult r;
  r.values = {
      {"running_sha256", *running}, {"installed_sha256", *installed}, {"installed", o_.installed}};
  if (*running != *installed) {
    r.status = CheckResult::Status::fail;
    r.reason = "the running Portier binary differs from the installed " + o_.installed +
               ": restart Portier after an update; if no update was made, treat as tampering";
  } else {
    r.reason = "running binary matches " + o_.installed;
  }
  return r;
}

}  // namespace portier::health
