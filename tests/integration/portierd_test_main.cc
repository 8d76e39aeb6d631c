// portierd_test: portierd with the built-in features plus the test-only
// gated features (gated_features.h). Built for the integration tests only;
// never installed.
#include "daemon/daemon_config.h"
#include "daemon/portierd_cli.h"
#include "gated_features.h"

int main(int argc, char** argv) {
  portier::agent::FeatureRegistry features;
  portier::agent::register_builtin_features(features);
  portier::test::register_gated_features(features);
  return portier::daemon::run_portierd(argc, argv, features);
}
