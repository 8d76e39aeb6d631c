#include "common/command_line.h"

#include <cerrno>
#include <cstdlib>

namespace portier {

CommandLine parse_command_line(int argc, char** argv, const std::set<std::string>& flags,
                               const std::set<std::string>& options) {
  CommandLine a;
  for (int i = 1; i < argc; ++i) {
    std::string w = argv[i];
    if (w == "-h" && flags.count("--help")) w = "--help";
    if (w.rfind("--", 0) != 0) {
      a.words.push_back(w);
      continue;
    }
    const auto eq = w.find('=');
    const std::string key = w.substr(0, eq);
    if (flags.count(key)) {
      if (eq != std::string::npos) throw UsageError{key + " takes no value"};
      a.flags.insert(key.substr(2));
    } else if (options.count(key)) {
      if (eq != std::string::npos) {
        a.options[key.substr(2)] = w.substr(eq + 1);
      } else if (i + 1 < argc) {
        a.options[key.substr(2)] = argv[++i];
      } else {
        throw UsageError{key + " needs a value"};
      }
    } else {
      throw UsageError{"unknown option " + key};
    }
  }
  return a;
}

unsigned long long number_option(const CommandLine& a, const std::string& key,
                                 unsigned long long fallback, unsigned long long max) {
  auto v = a.opt(key);
  if (!v) return fallback;
  errno = 0;
  char* end = nullptr;
  const auto n = std::strtoull(v->c_str(), &end, 10);
  if (v->empty() || *end || errno || (*v)[0] == '-' || n > max) {
    throw UsageError{"--" + key + " must be a whole number 0.." + std::to_string(max)};
  }
  return n;
}

}  // namespace portier
