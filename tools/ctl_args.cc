#include "ctl_args.h"

namespace portier::ctl {
namespace {

const std::set<std::string> kFlags = {"--json", "--follow", "--help", "--run"};
const std::set<std::string> kOptions = {
    "--socket",  "--device", "--count", "--seconds",    "--app-uid",     "--app-gid", "--exe",
    "--sha256",  "--unit",   "--op",    "--class",      "--policy",      "--data",    "--text",
    "--timeout", "--apdu",   "--param", "--timeout-ms", "--checkpoints", "--key",     "--cert"};

}  // namespace

Args parse_args(int argc, char** argv) { return parse_command_line(argc, argv, kFlags, kOptions); }

}  // namespace portier::ctl
