// The command line of `portier-fleet serve` as the end-to-end tests start
// it: the store, the trust anchor, the spool, the command key (which also
// signs acknowledgements) and one link, MQTT through `mqtt_uri` (with the
// client certificate) or the gRPC endpoint on `grpc_port` (with the server
// certificate). Callers add what else they need (enrolment, ...).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "support/test_pki.h"

namespace portier::test {

inline std::vector<std::string> fleet_serve_argv(const std::string& program, const std::string& db,
                                                 const std::string& ca, const std::string& spool,
                                                 const IssuedLeaf& commands,
                                                 const std::optional<std::string>& mqtt_uri,
                                                 const IssuedLeaf& client, const IssuedLeaf& server,
                                                 int grpc_port) {
  std::vector<std::string> argv{program,
                                "--db",
                                db,
                                "serve",
                                "--ca",
                                ca,
                                "--spool",
                                spool,
                                "--signing-key",
                                commands.key_path,
                                "--signing-cert",
                                commands.chain_path};
  if (mqtt_uri) {
    argv.insert(argv.end(), {"--mqtt", *mqtt_uri, "--fleet", "bank", "--cert", client.chain_path,
                             "--key", client.key_path});
  } else {
    argv.insert(argv.end(), {"--grpc", "127.0.0.1:" + std::to_string(grpc_port), "--cert",
                             server.chain_path, "--key", server.key_path});
  }
  return argv;
}

}  // namespace portier::test
