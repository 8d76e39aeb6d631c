// portierd: the peripheral gateway daemon, with the features built in.
#include "daemon/daemon_config.h"
#include "daemon/portierd_cli.h"

int main(int argc, char** argv) {
  return portier::daemon::run_portierd(argc, argv, portier::daemon::builtin_features());
}
