// Replacing a file whole: written under a temporary name in the same
// directory (created 0600, so a secret is never readable on the way, then
// given `mode`), fsync'd, renamed over the old one and the directory
// fsync'd, so a crash leaves the old file or the new one, never a torn one.
// A full disk is resource_exhausted.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

#include "common/result.h"

namespace portier {

Result<void> replace_file(const std::string& path, std::string_view data, mode_t mode);

}  // namespace portier
