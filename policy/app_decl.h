// One [[app]] table: an identity the kernel can vouch for. A caller is the
// app when every field the table gives matches.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "policy/policy.h"

namespace portier::policy {

struct Policy::AppDecl {
  std::string name;
  std::vector<std::uint32_t> uids;  // empty = any uid
  std::vector<std::uint32_t> gids;  // empty = any gid
  std::string exe;                  // "" = any executable path
  std::string sha256;               // lowercase hex, "" = any digest
  std::string unit;                 // "" = any unit
  int line = 0;

  bool matches(const Caller& caller) const;
};

}  // namespace portier::policy
