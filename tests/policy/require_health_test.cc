// A rule can require a terminal health; the decision carries it so the
// gateway can refuse while the terminal is degraded or compromised.
#include <gtest/gtest.h>

#include "policy/policy.h"

namespace portier::policy {
namespace {

const Caller kPay{1002, 1002, 1, "/opt/pay/bin/payment", "", ""};
const DeviceRef kReader{"reader0", "smartcard", {}};

std::shared_ptr<const Policy> parse(const std::string& text) {
  auto p = Policy::parse(text, "p.toml");
  EXPECT_TRUE(p) << (p ? "" : p.error().message());
  return p ? *p : nullptr;
}

// REQ-7: access to card readers can depend on the terminal's health.
TEST(policy_require_health, DecisionCarriesTheRequirement) {
  auto p = parse(R"(version = 1
[[app]]
name = "payment"
uid = 1002
[[rule]]
app = "payment"
class = "smartcard"
ops = ["transmit"]
require_health = "ok"
[[rule]]
app = "payment"
ops = ["list"]
require_health = "degraded"
[[rule]]
app = "payment"
ops = ["read"]
)");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->decide(kPay, kReader, Op::transmit).require_health, Health::ok);
  EXPECT_EQ(p->decide(kPay, kReader, Op::list).require_health, Health::degraded);
  EXPECT_EQ(p->decide(kPay, kReader, Op::read).require_health, Health::compromised);
}

TEST(policy_require_health, UnknownValueIsALocatedError) {
  auto p = Policy::parse(
      "version = 1\n[[rule]]\napp = \"*\"\nops = [\"list\"]\n"
      "require_health = \"good\"\n",
      "p.toml");
  ASSERT_FALSE(p);
  EXPECT_NE(p.error().message().find("p.toml:5:"), std::string::npos) << p.error().message();
  EXPECT_NE(p.error().message().find("unknown require_health 'good'"), std::string::npos);
}

}  // namespace
}  // namespace portier::policy
