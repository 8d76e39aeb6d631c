#include "policy/glob.h"

#include <fnmatch.h>

namespace portier::policy {

namespace {
bool has_meta(std::string_view s) { return s.find_first_of("*?[\\") != std::string_view::npos; }

// '*' and '?' only: the classic greedy match that backtracks to the last '*'.
// Linear in practice, O(pattern * subject) at worst; never recursive.
bool wildcard_match(std::string_view p, std::string_view s) {
  std::size_t pi = 0, si = 0;
  std::size_t star = std::string_view::npos, resume = 0;
  while (si < s.size()) {
    if (pi < p.size() && p[pi] == '*') {
      star = pi++;
      resume = si;
    } else if (pi < p.size() && (p[pi] == '?' || p[pi] == s[si])) {
      ++pi;
      ++si;
    } else if (star != std::string_view::npos) {
      pi = star + 1;
      si = ++resume;
    } else {
      return false;
    }
  }
  while (pi < p.size() && p[pi] == '*') ++pi;
  return pi == p.size();
}
}  // namespace

Glob::Glob(std::string pattern) : pattern_(std::move(pattern)) {
  const std::string_view p = pattern_;
  if (p == "*") {
    kind_ = Kind::any;
  } else if (!has_meta(p)) {
    kind_ = Kind::exact;
    literal_ = pattern_;
  } else if (p.size() > 1 && p.back() == '*' && !has_meta(p.substr(0, p.size() - 1))) {
    kind_ = Kind::prefix;
    literal_ = pattern_.substr(0, p.size() - 1);
  } else if (p.size() > 1 && p.front() == '*' && !has_meta(p.substr(1))) {
    kind_ = Kind::suffix;
    literal_ = pattern_.substr(1);
  } else if (p.find_first_of("[\\") == std::string_view::npos) {
    kind_ = Kind::wildcard;
  }
}

bool Glob::match(const std::string& subject) const {
  switch (kind_) {
    case Kind::any:
      // fnmatch("*", s) is true for every string without NUL; keep that.
      return subject.find('\0') == std::string::npos;
    case Kind::exact:
      return subject == literal_;
    case Kind::prefix:
      return subject.starts_with(literal_) && subject.find('\0') == std::string::npos;
    case Kind::suffix:
      return subject.ends_with(literal_) && subject.find('\0') == std::string::npos;
    case Kind::wildcard:
      if (subject.find('\0') != std::string::npos) return false;
      return wildcard_match(pattern_, subject);
    case Kind::general:
      // A NUL inside the subject would make fnmatch see only a prefix of it.
      if (subject.find('\0') != std::string::npos) return false;
      return ::fnmatch(pattern_.c_str(), subject.c_str(), 0) == 0;
  }
  return false;
}

}  // namespace portier::policy
