#include "tools/fleet/fleet_args.h"

namespace portier::fleet {
namespace {

const std::set<std::string> kFlags = {"--json", "--help", "--authorize", "--block"};
const std::set<std::string> kOptions = {
    "--db", "--public-key", "--from", "--limit", "--mqtt", "--grpc", "--fleet", "--ca", "--cert",
    "--key", "--spool", "--signing-key", "--signing-cert", "--chain", "--text", "--id",
    "--expires-in", "--health", "--decisions", "--checkpoint", "--policy", "--version", "--device",
    "--first", "--last", "--client-id",
    // Enrolment: hosted by serve, provisioned by expect.
    "--enrol", "--enrol-ca-cert", "--enrol-ca-key", "--enrol-ca-chain", "--enrol-cert",
    "--enrol-key", "--enrol-registry", "--device-lifetime", "--secret-file",
    // send TERMINAL install-certificate --from-result ID and/or --csr FILE:
    // the CSR of the terminal's newest rotate-key result.
    "--csr", "--from-result"};

}  // namespace

FleetArgs parse_fleet_args(int argc, char** argv) {
  return parse_command_line(argc, argv, kFlags, kOptions);
}

}  // namespace portier::fleet
