// Replacing a file whole or not at all: the installed device certificate
// and its chain. Written and fsync'd under a temporary name in the same
// directory, renamed over the old one, the directory fsync'd: a crash
// leaves the old file or the new one, never a part.
#pragma once

#include <string>
#include <string_view>

#include "common/result.h"

namespace portier::identity {

Result<void> replace_file(const std::string& path, std::string_view data, unsigned mode);

}  // namespace portier::identity
