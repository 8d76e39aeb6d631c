#include <array>
#include <string>

#include "policy/policy.h"

namespace portier::policy {

namespace {
constexpr std::array<std::string_view, kOpCount> kOpNames = {
    "list",      "watch",    "read", "claim",     "write",
    "configure", "transmit", "pair", "authorize", "power"};
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

std::string explain(const Decision& d, std::uint32_t uid, Op op, const std::string& device) {
  std::string who =
      d.app.empty() ? "undeclared app (uid " + std::to_string(uid) + ")" : "app '" + d.app + "'";
  std::string why = d.rule > 0 ? "rule " + std::to_string(d.rule) + " of " + d.source + ", line " +
                                     std::to_string(d.line)
                               : "no rule matched in " + d.source + "; default deny";
  return who + (d.allow ? " may " : " may not ") + std::string(op_name(op)) + " " + device + " (" +
         why + ")";
}

}  // namespace portier::policy
