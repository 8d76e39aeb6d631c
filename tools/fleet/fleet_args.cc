#include "tools/fleet/fleet_args.h"

#include <cerrno>
#include <cstdlib>

namespace portier::fleet {
namespace {

const std::set<std::string> kFlags = {"--json", "--help", "--authorize", "--block"};
const std::set<std::string> kOptions = {
    "--db",           "--public-key", "--from",   "--limit",   "--mqtt",       "--grpc",
    "--fleet",        "--ca",         "--cert",   "--key",     "--spool",      "--signing-key",
    "--signing-cert", "--chain",      "--text",   "--id",      "--expires-in", "--health",
    "--decisions",    "--checkpoint", "--policy", "--version", "--device",     "--first",
    "--last",         "--client-id"};

}  // namespace

FleetArgs parse_fleet_args(int argc, char** argv) {
  FleetArgs a;
  for (int i = 1; i < argc; ++i) {
    std::string w = argv[i];
    if (w == "-h") w = "--help";
    if (w.rfind("--", 0) == 0) {
      const auto eq = w.find('=');
      const std::string key = w.substr(0, eq);
      if (kFlags.count(key)) {
        if (eq != std::string::npos) throw UsageError{key + " takes no value"};
        a.flags.insert(key.substr(2));
      } else if (kOptions.count(key)) {
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
    } else {
      a.words.push_back(w);
    }
  }
  return a;
}

unsigned long long number_option(const FleetArgs& a, const std::string& key,
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

}  // namespace portier::fleet
