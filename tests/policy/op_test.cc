#include <gtest/gtest.h>

#include "policy/policy.h"

namespace portier::policy {
namespace {

TEST(policy_op, NamesRoundTrip) {
  for (int i = 0; i < kOpCount; ++i) {
    const auto op = static_cast<Op>(i);
    const auto parsed = parse_op(op_name(op));
    ASSERT_TRUE(parsed.has_value()) << op_name(op);
    EXPECT_EQ(*parsed, op);
  }
}

TEST(policy_op, NamesAreLowercase) {
  EXPECT_EQ(op_name(Op::list), "list");
  EXPECT_EQ(op_name(Op::watch), "watch");
  EXPECT_EQ(op_name(Op::read), "read");
  EXPECT_EQ(op_name(Op::claim), "claim");
  EXPECT_EQ(op_name(Op::write), "write");
  EXPECT_EQ(op_name(Op::configure), "configure");
  EXPECT_EQ(op_name(Op::transmit), "transmit");
  EXPECT_EQ(op_name(Op::pair), "pair");
  EXPECT_EQ(op_name(Op::authorize), "authorize");
  EXPECT_EQ(op_name(Op::power), "power");
  for (int i = 0; i < kOpCount; ++i) {
    EXPECT_EQ(parse_op(op_name(static_cast<Op>(i))), static_cast<Op>(i));
  }
}

TEST(policy_op, RejectsUnknownNames) {
  EXPECT_FALSE(parse_op("").has_value());
  EXPECT_FALSE(parse_op("*").has_value());
  EXPECT_FALSE(parse_op("Read").has_value());
  EXPECT_FALSE(parse_op("clame").has_value());
  EXPECT_FALSE(parse_op("read ").has_value());
}

}  // namespace
}  // namespace portier::policy
