#include "policy/rule_decl.h"

namespace portier::policy {

bool Policy::RuleDecl::matches_device(const DeviceRef& d) const {
  if (device && !device->match(d.id)) return false;
  if (device_class && d.device_class != *device_class) return false;
  for (const auto& [key, glob] : attributes) {
    auto it = d.attributes.find(key);
    if (it == d.attributes.end() || !glob.match(it->second)) return false;
  }
  return true;
}

}  // namespace portier::policy
