// portier-fleet's command line: --db PATH, a command with its positionals,
// options (--public-key FILE, --from N) and flags (--json, --help), read by
// common/command_line with the keys portier-fleet knows.
#pragma once

#include "common/command_line.h"

namespace portier::fleet {

using FleetArgs = CommandLine;
using portier::UsageError;

// Throws UsageError for anything the user typed wrong; main() prints it and
// exits 2.
FleetArgs parse_fleet_args(int argc, char** argv);

}  // namespace portier::fleet
