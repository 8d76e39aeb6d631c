#include "policy/app_decl.h"

#include <algorithm>

namespace portier::policy {

namespace {
bool contains(const std::vector<std::uint32_t>& set, std::uint32_t v) {
  return std::find(set.begin(), set.end(), v) != set.end();
}
}  // namespace

bool Policy::AppDecl::matches(const Caller& caller) const {
  if (!uids.empty() && !contains(uids, caller.uid)) return false;
  if (!gids.empty() && !contains(gids, caller.gid)) return false;
  if (!exe.empty() && caller.exe != exe) return false;
  if (!sha256.empty() && caller.sha256 != sha256) return false;
  if (!unit.empty() && caller.unit != unit) return false;
  return true;
}

}  // namespace portier::policy
