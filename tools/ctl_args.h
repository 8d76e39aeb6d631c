// portierctl's command line: a command path ("policy explain") and options.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace portier::ctl {

struct Args {
  std::vector<std::string> words;              // command and positionals
  std::map<std::string, std::string> options;  // --key value
  std::set<std::string> flags;                 // --json, --follow

  bool flag(const std::string& f) const { return flags.count(f) > 0; }
  std::optional<std::string> opt(const std::string& k) const {
    auto it = options.find(k);
    if (it == options.end()) return std::nullopt;
    return it->second;
  }
};

// Thrown for anything the user typed wrong; main() turns it into exit 2.
struct UsageError {
  std::string message;
};

Args parse_args(int argc, char** argv);
// Parses an unsigned integer option or throws UsageError.
unsigned long long number(const Args& a, const std::string& key, unsigned long long fallback,
                          unsigned long long max);

}  // namespace portier::ctl
