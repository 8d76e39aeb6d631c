// Who may do what to which device. A Policy is immutable once built; the
// daemon swaps in a new one on reload. Pure logic: no I/O but reading its file.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/caller.h"
#include "common/result.h"

namespace portier::policy {

// list/watch/read/claim/write/configure: every device. transmit: APDU
// exchange with a card. pair: Bluetooth pair, trust, remove. authorize: USB
// device, interface and port authorization. power: radio power.
enum class Op : std::uint8_t {
  list,
  watch,
  read,
  claim,
  write,
  configure,
  transmit,
  pair,
  authorize,
  power
};
inline constexpr int kOpCount = 10;
static_assert(kOpCount <= 16, "Rule::ops is 16 bits wide");
std::optional<Op> parse_op(std::string_view name);
std::string_view op_name(Op op);

// What the kernel says about the caller (never what the caller claims).
using Caller = portier::Caller;  // common/caller.h

struct DeviceRef {
  std::string id;
  std::string device_class;
  std::map<std::string, std::string> attributes;
};

// A set of bits, one per app or per rule, fixed size per policy.
using BitSet = std::vector<std::uint64_t>;

// The terminal's health, from the health monitor; a rule may require one.
enum class Health : std::uint8_t { ok, degraded, compromised };

struct Decision {
  bool allow = false;
  // The deciding rule's `require_health`: the worst terminal health in which
  // the allow holds (compromised = no requirement). The gateway checks it.
  Health require_health = Health::compromised;
  int rule = 0;        // 1-based index of the deciding rule; 0 = default deny
  int line = 0;        // line of that rule in the policy source; 0 = none
  std::string app;     // first declared app the caller is, "" when none
  std::string source;  // policy file path (or name given to parse)
};

// The sentence a person reads for a decision: "app 'kiosk-ui' may not claim
// 'scanner0' (rule 3 of /etc/portier/policy.toml, line 12)". `device` is
// inserted as given (quote it first).
std::string explain(const Decision& d, std::uint32_t uid, Op op, const std::string& device);

class Policy {
 public:
  struct AppDecl;
  struct RuleDecl;

  // Reads and validates `path`. Refuses a file writable by group or others.
  static Result<std::shared_ptr<const Policy>> load_file(const std::string& path);
  // Validates `text`; errors carry "source:line:col".
  static Result<std::shared_ptr<const Policy>> parse(std::string_view text,
                                                     const std::string& source);
  ~Policy();
  Policy(const Policy&) = delete;
  Policy& operator=(const Policy&) = delete;

  // Compiled matching: compute once per connection / per device, then decide
  // with a few word-wide ANDs.
  BitSet rules_for_caller(const Caller& caller) const;
  BitSet rules_for_device(const DeviceRef& device) const;
  std::string app_name(const Caller& caller) const;  // first matching app or ""
  std::vector<std::string> app_names(const Caller& caller) const;
  Decision decide(const BitSet& caller_rules, const BitSet& device_rules, Op op) const;
  // Convenience for explain and tests.
  Decision decide(const Caller& caller, const DeviceRef& device, Op op) const;
  // Whether some allow rule for `op` matches this caller (on some device):
  // false means `op` is denied on every device, present or to come.
  bool may_allow_any(const BitSet& caller_rules, Op op) const;

  const std::string& source() const;
  std::size_t rule_count() const;
  std::size_t app_count() const;

 private:
  Policy();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace portier::policy
