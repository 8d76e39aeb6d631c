#include "pcsc/reader_match.h"

#include <fnmatch.h>

#include <algorithm>
#include <array>
#include <cctype>

namespace portier::drivers {
namespace {

bool any_glob_matches(std::string_view reader, const std::vector<std::string>& globs) {
  const std::string name(reader);
  return std::any_of(globs.begin(), globs.end(), [&](const std::string& g) {
    return ::fnmatch(g.c_str(), name.c_str(), 0) == 0;
  });
}

bool contains_ignoring_case(std::string_view hay, std::string_view needle) {
  auto lower = [](char c) {
    return static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  };
  return std::search(hay.begin(), hay.end(), needle.begin(), needle.end(),
                     [&](char a, char b) { return lower(a) == lower(b); }) != hay.end();
}

}  // namespace

bool reader_allowed(std::string_view reader, const std::vector<std::string>& globs) {
  return globs.empty() || any_glob_matches(reader, globs);
}

bool reader_contactless(std::string_view reader, const std::vector<std::string>& globs) {
  static constexpr std::array<std::string_view, 3> kWords = {"PICC", "Contactless", "NFC"};
  for (auto w : kWords) {
    if (contains_ignoring_case(reader, w)) return true;
  }
  return any_glob_matches(reader, globs);
}

}  // namespace portier::drivers
