// Portier itself (REQ-5 self-test): the running executable's SHA-256 against
// the installed binary's. Different → the running code is not what was
// installed (replaced in memory, or an update not yet restarted).
#pragma once

#include <string>

#include "agent/health/health_check.h"

namespace portier::health {

struct SelfBinaryOptions {
  std::string running = "/proc/self/exe";
  std::string installed;  // e.g. /usr/bin/portierd; empty: not configured (ok)
  Severity severity = Severity::critical;
};
class SelfBinaryCheck : public Check {
 public:
  explicit SelfBinaryCheck(SelfBinaryOptions o = {}) : o_(std::move(o)) {}
  std::string id() const override { return "self_binary"; }
  Severity severity() const override { return o_.severity; }
  CheckResult run(const std::atomic<bool>& cancel) override;

 private:
  SelfBinaryOptions o_;
};

}  // namespace portier::health
