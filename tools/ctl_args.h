// portierctl's command line: a command path ("policy explain"), options and
// flags, read by common/command_line with the keys portierctl knows.
#pragma once

#include "common/command_line.h"

namespace portier::ctl {

using Args = CommandLine;
using portier::UsageError;

// Throws UsageError for anything the user typed wrong; main() turns it into
// exit 2.
Args parse_args(int argc, char** argv);

}  // namespace portier::ctl
