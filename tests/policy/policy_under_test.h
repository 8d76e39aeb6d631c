// Parsing shortcuts shared by the policy tests.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <string_view>

#include "policy/policy.h"

namespace portier::policy::testing {

// Parses `text` as "p.toml"; a failure is a test failure that shows the error.
inline std::shared_ptr<const Policy> must_parse(std::string_view text) {
  auto p = Policy::parse(text, "p.toml");
  EXPECT_TRUE(p.has_value()) << (p ? std::string() : p.error().message());
  return p ? *p : nullptr;
}

// The full error message for `text`, or "" when it unexpectedly parses.
inline std::string parse_error(std::string_view text) {
  auto p = Policy::parse(text, "p.toml");
  EXPECT_FALSE(p.has_value()) << "expected a parse error";
  if (p) return {};
  EXPECT_EQ(p.error().code, Errc::invalid_argument);
  return p.error().message();
}

}  // namespace portier::policy::testing
