#include "daemon/portierd_cli.h"

#include <malloc.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>

#include "daemon/daemon.h"
#include "gateway/policy_store.h"
#include "gateway/version.h"
#include "policy/policy.h"

namespace portier::daemon {
namespace {

constexpr const char* kUsage =
    "usage: portierd --config FILE [--check-config]\n"
    "       portierd --demo [--state-dir DIR]\n"
    "       portierd --version\n"
    "\n"
    "  --config FILE    run with this configuration (see README.md)\n"
    "  --check-config   validate the configuration and its policy file, then exit\n"
    "                   (0 when valid; otherwise the file, line and reason on stderr)\n"
    "  --demo           run the embedded demo configuration: a simulated scanner,\n"
    "                   the socket and policy under --state-dir (default /tmp/portier-demo)\n";

std::string self_dir() {
  std::error_code ec;
  auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string(".") : p.parent_path().string();
}

}  // namespace

int run_portierd(int argc, char** argv, const agent::FeatureRegistry& features) {
  using portier::gateway::kVersion;
  // A few dozen threads, little allocation: two malloc arenas are plenty and
  // keep the idle footprint small (the RSS target is 20 MB).
  mallopt(M_ARENA_MAX, 2);
  std::string config_path, state_dir = "/tmp/portier-demo";
  bool check = false, demo = false, state_dir_given = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](std::string& out) {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "portierd: %s needs a value\n%s", a.c_str(), kUsage);
        std::exit(2);
      }
      out = argv[++i];
    };
    if (a == "--config") {
      value(config_path);
    } else if (a == "--check-config") {
      check = true;
    } else if (a == "--demo") {
      demo = true;
    } else if (a == "--state-dir") {
      value(state_dir);
      state_dir_given = true;
    } else if (a == "--version") {
      std::printf("portierd %s\n", kVersion);
      return 0;
    } else if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else {
      std::fprintf(stderr, "portierd: unknown argument '%s'\n%s", a.c_str(), kUsage);
      return 2;
    }
  }
  if (!demo && state_dir_given) {
    std::fprintf(stderr, "portierd: --state-dir goes with --demo (set state_dir in the config)\n");
    return 2;
  }
  if (demo == !config_path.empty()) {
    std::fprintf(stderr, "portierd: give exactly one of --config FILE or --demo\n%s", kUsage);
    return 2;
  }
  auto config = demo ? demo_config(std::filesystem::absolute(state_dir).string(), self_dir())
                     : load_config(config_path, features);
  if (!config) {
    std::fprintf(stderr, "portierd: %s\n", config.error().message().c_str());
    return 1;
  }
  if (check) {
    auto p = portier::gateway::load_policy_file(config->policy);
    if (!p) {
      std::fprintf(stderr, "portierd: %s\n", p.error().message().c_str());
      return 1;
    }
    std::printf("%s: configuration OK; policy %s: %zu apps, %zu rules\n",
                config_path.empty() ? "demo" : config_path.c_str(), config->policy.c_str(),
                (*p)->app_count(), (*p)->rule_count());
    return 0;
  }
  if (demo) {
    std::printf("portierd demo: socket %s\n  try: %s/portierctl --socket %s watch\n",
                config->socket.c_str(), self_dir().c_str(), config->socket.c_str());
    std::fflush(stdout);
  }
  return run_daemon(*config, features);
}

}  // namespace portier::daemon
