// One [[rule]] table: which apps, which devices, which operations, and
// whether the first match allows or denies.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "policy/glob.h"
#include "policy/policy.h"

namespace portier::policy {

struct Policy::RuleDecl {
  bool any_app = false;           // app = "*"
  std::vector<std::size_t> apps;  // indexes into the declared apps
  std::optional<Glob> device;     // on DeviceRef::id
  std::optional<std::string> device_class;
  std::vector<std::pair<std::string, Glob>> attributes;
  std::uint16_t ops = 0;  // bit i = Op(i)
  bool allow = true;
  Health require_health = Health::compromised;  // no requirement
  int line = 0;                                 // of the [[rule]] header

  bool has_device_matchers() const {
    return device.has_value() || device_class.has_value() || !attributes.empty();
  }
  bool matches_device(const DeviceRef& d) const;
  bool has_op(Op op) const { return (ops >> static_cast<unsigned>(op)) & 1u; }
};

}  // namespace portier::policy
