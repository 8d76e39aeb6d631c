// portier-fleet's command line: --db PATH, a command with its positionals,
// options (--public-key FILE, --from N) and flags (--json, --help).
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace portier::fleet {

struct FleetArgs {
  std::vector<std::string> words;              // command and positionals
  std::map<std::string, std::string> options;  // --key value
  std::set<std::string> flags;                 // json, help

  bool flag(const std::string& f) const { return flags.count(f) > 0; }
  std::optional<std::string> opt(const std::string& k) const {
    auto it = options.find(k);
    if (it == options.end()) return std::nullopt;
    return it->second;
  }
};

// Anything the user typed wrong; main() prints it and exits 2.
struct UsageError {
  std::string message;
};

FleetArgs parse_fleet_args(int argc, char** argv);
// An unsigned integer option (0..max), or UsageError.
unsigned long long number_option(const FleetArgs& a, const std::string& key,
                                 unsigned long long fallback, unsigned long long max);

}  // namespace portier::fleet
