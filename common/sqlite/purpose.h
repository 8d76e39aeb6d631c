// What a statement or a transaction is for, as its errors name it ("store",
// "record command c-7"): a string literal, or a string that outlives the
// statement. Kept as a view so that preparing a statement allocates nothing
// of ours; a temporary string would dangle, so it does not compile.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace portier::sqlite {

class Purpose {
 public:
  template <std::size_t N>
  Purpose(const char (&literal)[N]) : view_(literal, N - 1) {}  // NOLINT: implicit on purpose
  Purpose(const std::string& s) : view_(s) {}                   // NOLINT
  Purpose(std::string&&) = delete;  // would dangle: name it in a variable first
  std::string_view view() const { return view_; }

 private:
  std::string_view view_;
};

}  // namespace portier::sqlite
