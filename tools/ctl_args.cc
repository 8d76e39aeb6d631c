#include "ctl_args.h"

#include <cerrno>
#include <cstdlib>

namespace portier::ctl {
namespace {

const std::set<std::string> kFlags = {"--json", "--follow", "--help", "--run"};
const std::set<std::string> kOptions = {
    "--socket",  "--device", "--count", "--seconds",    "--app-uid",     "--app-gid", "--exe",
    "--sha256",  "--unit",   "--op",    "--class",      "--policy",      "--data",    "--text",
    "--timeout", "--apdu",   "--param", "--timeout-ms", "--checkpoints", "--key",     "--cert"};

}  // namespace

Args parse_args(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string w = argv[i];
    if (w.rfind("--", 0) == 0) {
      auto eq = w.find('=');
      std::string key = w.substr(0, eq);
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

unsigned long long number(const Args& a, const std::string& key, unsigned long long fallback,
                          unsigned long long max) {
  auto v = a.opt(key);
  if (!v) return fallback;
  errno = 0;
  char* end = nullptr;
  auto n = std::strtoull(v->c_str(), &end, 10);
  if (v->empty() || *end || errno || (*v)[0] == '-' || n > max) {
    throw UsageError{"--" + key + " must be a whole number 0.." + std::to_string(max)};
  }
  return n;
}

}  // namespace portier::ctl
