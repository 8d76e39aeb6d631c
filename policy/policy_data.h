// What a validated policy file says, before compilation into bitsets.
#pragma once

#include <string>
#include <vector>

#include "policy/app_decl.h"
#include "policy/rule_decl.h"

namespace portier::policy {

struct PolicyData {
  std::string source;
  std::vector<Policy::AppDecl> apps;    // file order
  std::vector<Policy::RuleDecl> rules;  // file order
};

}  // namespace portier::policy
