// A shell-style pattern (fnmatch(3), no flags) on device ids and attribute
// values. Patterns made only of literals, '*' and '?' (nearly all of them) are
// matched here byte by byte; brackets and escapes go to fnmatch.
#pragma once

#include <string>
#include <string_view>

namespace portier::policy {

class Glob {
 public:
  // `pattern` must be non-empty and free of NUL characters (the parser checks).
  explicit Glob(std::string pattern);

  bool match(const std::string& subject) const;
  const std::string& pattern() const { return pattern_; }

 private:
  enum class Kind { any, exact, prefix, suffix, wildcard, general };
  std::string pattern_;
  std::string literal_;  // the fixed part for exact / prefix / suffix
  Kind kind_ = Kind::general;
};

}  // namespace portier::policy
