// Which readers the driver offers, and which of them are contactless:
// matching reader names against the globs of PcscConfig.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace portier::drivers {

// True when `globs` is empty or one of them (fnmatch(3)) matches `reader`.
bool reader_allowed(std::string_view reader, const std::vector<std::string>& globs);

// True when the name says so (PICC, Contactless or NFC, any case) or one of
// `globs` matches it.
bool reader_contactless(std::string_view reader, const std::vector<std::string>& globs);

}  // namespace portier::drivers
