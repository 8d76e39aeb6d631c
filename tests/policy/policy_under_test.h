// Parsing shortcuts shared by the policy tests.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "policy/policy.h"

namespace portier::policy::testing {

// Builders that name only the fields a test cares about (designated
// initializers that skip members trip -Wmissing-field-initializers on GCC 12).
inline Caller caller_with(std::uint32_t uid, std::uint32_t gid = 0, std::string sha256 = {}) {
  Caller c;
  c.uid = uid;
  c.gid = gid;
  c.sha256 = std::move(sha256);
  return c;
}

inline DeviceRef device_with(std::string id) {
  DeviceRef d;
  d.id = std::move(id);
  return d;
}

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
