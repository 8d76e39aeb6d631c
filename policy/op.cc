#include <array>

#include "policy/policy.h"

namespace portier::policy {

namespace {
constexpr std::array<std::string_view, kOpCount> kOpNames = {"list",  "watch", "read",
                                                             "claim", "write", "configure"};
}  // namespace

std::optional<Op> parse_op(std::string_view name) {
  for (int i = 0; i < kOpCount; ++i) {
    if (kOpNames[i] == name) return static_cast<Op>(i);
  }
  return std::nullopt;
}

std::string_view op_name(Op op) {
  const auto i = static_cast<std::size_t>(op);
  return i < kOpNames.size() ? kOpNames[i] : std::string_view("unknown");
}

}  // namespace portier::policy
