// The command line of portierctl and portier-fleet: words (a command and
// its positionals), `--key value` / `--key=value` options and `--flag`s,
// each tool naming which keys it knows. Anything else is a UsageError,
// which the tools print and turn into exit status 2.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace portier {

struct CommandLine {
  std::vector<std::string> words;              // command and positionals
  std::map<std::string, std::string> options;  // key (without "--") -> value
  std::set<std::string> flags;                 // without "--"

  bool flag(const std::string& f) const { return flags.count(f) > 0; }
  std::optional<std::string> opt(const std::string& k) const {
    auto it = options.find(k);
    if (it == options.end()) return std::nullopt;
    return it->second;
  }
};

// Anything the user typed wrong.
struct UsageError {
  std::string message;
};

// `flags` and `options` spelled with their leading "--"; "-h" is "--help"
// when "--help" is a flag. Throws UsageError.
CommandLine parse_command_line(int argc, char** argv, const std::set<std::string>& flags,
                               const std::set<std::string>& options);
// An unsigned integer option (0..max), `fallback` when absent; throws
// UsageError naming the option.
unsigned long long number_option(const CommandLine& a, const std::string& key,
                                 unsigned long long fallback, unsigned long long max);

}  // namespace portier
