// Decisions on small, readable policies: first match wins, default deny.
#include <gtest/gtest.h>

#include <string>

#include "policy/policy.h"
#include "policy_under_test.h"

namespace portier::policy {
namespace {

using testing::caller_with;
using testing::device_with;
using testing::must_parse;

const std::string kDigest = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
const std::string kOtherDigest = "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752";

Caller kiosk() {
  return Caller{.uid = 1001,
                .gid = 1001,
                .pid = 42,
                .exe = "/opt/kiosk/bin/kiosk-ui",
                .sha256 = kDigest,
                .unit = "kiosk-ui.service"};
}

DeviceRef scanner() {
  return DeviceRef{.id = "scanner0",
                   .device_class = "scanner",
                   .attributes = {{"vendor", "0c2e"}, {"model", "1500g"}}};
}

DeviceRef printer() {
  return DeviceRef{.id = "printer0", .device_class = "printer", .attributes = {}};
}

// REQ-10
TEST(policy_decide, FirstMatchingRuleWins) {
  auto p = must_parse(R"(version = 1
[[app]]
name = "kiosk-ui"
uid = 1001

[[rule]]
app = "kiosk-ui"
device = "scanner*"
ops = ["read"]

[[rule]]
app = "kiosk-ui"
device = "scanner*"
ops = ["read", "claim"]
effect = "deny"
)");
  ASSERT_TRUE(p);
  const auto read = p->decide(kiosk(), scanner(), Op::read);
  EXPECT_TRUE(read.allow);
  EXPECT_EQ(read.rule, 1);
  EXPECT_EQ(read.line, 6);
  EXPECT_EQ(read.app, "kiosk-ui");
  EXPECT_EQ(read.source, "p.toml");
  const auto claim = p->decide(kiosk(), scanner(), Op::claim);
  EXPECT_FALSE(claim.allow);
  EXPECT_EQ(claim.rule, 2);
  EXPECT_EQ(claim.line, 11);
}

// REQ-10
TEST(policy_decide, RuleOrderDecidesBetweenAllowAndDeny) {
  const std::string allow = "[[rule]]\napp = \"*\"\nops = [\"write\"]\n";
  const std::string deny = "[[rule]]\napp = \"*\"\nops = [\"write\"]\neffect = \"deny\"\n";
  auto allow_first = must_parse("version = 1\n" + allow + deny);
  auto deny_first = must_parse("version = 1\n" + deny + allow);
  ASSERT_TRUE(allow_first && deny_first);
  EXPECT_TRUE(allow_first->decide(kiosk(), printer(), Op::write).allow);
  EXPECT_FALSE(deny_first->decide(kiosk(), printer(), Op::write).allow);
  EXPECT_EQ(deny_first->decide(kiosk(), printer(), Op::write).rule, 1);
}

// REQ-10
TEST(policy_decide, DenyRuleCarvesAnExceptionOutOfABroadAllow) {
  auto p = must_parse(R"(version = 1
[[app]]
name = "kiosk-ui"
uid = 1001

[[rule]]
app = "*"
device = "nfc*"
ops = ["configure"]
effect = "deny"

[[rule]]
app = "kiosk-ui"
ops = ["*"]
)");
  ASSERT_TRUE(p);
  const DeviceRef nfc{.id = "nfc0", .device_class = "nfc", .attributes = {}};
  EXPECT_FALSE(p->decide(kiosk(), nfc, Op::configure).allow);
  EXPECT_EQ(p->decide(kiosk(), nfc, Op::configure).rule, 1);
  EXPECT_TRUE(p->decide(kiosk(), nfc, Op::read).allow);
  EXPECT_TRUE(p->decide(kiosk(), printer(), Op::configure).allow);
}

// REQ-10
TEST(policy_decide, DefaultIsDeny) {
  auto p = must_parse(R"(version = 1
[[app]]
name = "kiosk-ui"
uid = 1001
[[rule]]
app = "kiosk-ui"
ops = ["list"]
)");
  ASSERT_TRUE(p);
  const auto d = p->decide(kiosk(), scanner(), Op::write);
  EXPECT_FALSE(d.allow);
  EXPECT_EQ(d.rule, 0);
  EXPECT_EQ(d.line, 0);
  EXPECT_EQ(d.app, "kiosk-ui");
  EXPECT_EQ(d.source, "p.toml");
  Caller stranger = kiosk();
  stranger.uid = 2000;
  EXPECT_FALSE(p->decide(stranger, scanner(), Op::list).allow);
  EXPECT_EQ(p->decide(stranger, scanner(), Op::list).app, "");
}

// REQ-18
TEST(policy_decide, DeviceGlobSelectsDevices) {
  auto p = must_parse(R"(version = 1
[[rule]]
app = "*"
device = "scanner-?"
ops = ["read"]
[[rule]]
app = "*"
device = "nfc[0-9]"
ops = ["read"]
[[rule]]
app = "*"
device = "*-usb"
ops = ["read"]
)");
  ASSERT_TRUE(p);
  auto allowed = [&](std::string id) {
    return p->decide(kiosk(), device_with(std::move(id)), Op::read).allow;
  };
  EXPECT_TRUE(allowed("scanner-1"));
  EXPECT_FALSE(allowed("scanner-12"));
  EXPECT_FALSE(allowed("scanner"));
  EXPECT_TRUE(allowed("nfc7"));
  EXPECT_FALSE(allowed("nfcx"));
  EXPECT_TRUE(allowed("printer-usb"));
  EXPECT_FALSE(allowed("printer-usb2"));
}

// REQ-18
TEST(policy_decide, AttributesMustBePresentAndMatch) {
  auto p = must_parse(R"(version = 1
[[rule]]
app = "*"
attributes = { vendor = "0c2e*", model = "1500?" }
ops = ["read"]
)");
  ASSERT_TRUE(p);
  EXPECT_TRUE(p->decide(kiosk(), scanner(), Op::read).allow);
  DeviceRef other_vendor = scanner();
  other_vendor.attributes["vendor"] = "05e0";
  EXPECT_FALSE(p->decide(kiosk(), other_vendor, Op::read).allow);
  DeviceRef no_model = scanner();
  no_model.attributes.erase("model");
  EXPECT_FALSE(p->decide(kiosk(), no_model, Op::read).allow);
  EXPECT_FALSE(p->decide(kiosk(), printer(), Op::read).allow);
}

// REQ-18
TEST(policy_decide, ClassIsAnExactMatch) {
  auto p = must_parse(R"(version = 1
[[rule]]
app = "*"
class = "scanner"
ops = ["read"]
)");
  ASSERT_TRUE(p);
  EXPECT_TRUE(p->decide(kiosk(), scanner(), Op::read).allow);
  DeviceRef prefixed = scanner();
  prefixed.device_class = "scanner2";
  EXPECT_FALSE(p->decide(kiosk(), prefixed, Op::read).allow);
  EXPECT_FALSE(p->decide(kiosk(), printer(), Op::read).allow);
}

// REQ-10
TEST(policy_decide, AppMatchesOnlyWhenEveryIdentityFieldMatches) {
  auto p = must_parse(R"(version = 1
[[app]]
name = "kiosk-ui"
uid = 1001
exe = "/opt/kiosk/bin/kiosk-ui"
sha256 = ")" + kDigest +
                      R"("

[[rule]]
app = "kiosk-ui"
ops = ["read"]
)");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->app_name(kiosk()), "kiosk-ui");
  EXPECT_TRUE(p->decide(kiosk(), scanner(), Op::read).allow);

  Caller wrong_uid = kiosk();
  wrong_uid.uid = 1002;
  Caller wrong_exe = kiosk();
  wrong_exe.exe = "/tmp/kiosk-ui";
  Caller wrong_digest = kiosk();
  wrong_digest.sha256 = kOtherDigest;
  Caller no_digest = kiosk();
  no_digest.sha256.clear();
  for (const Caller& c : {wrong_uid, wrong_exe, wrong_digest, no_digest}) {
    EXPECT_EQ(p->app_name(c), "");
    const auto d = p->decide(c, scanner(), Op::read);
    EXPECT_FALSE(d.allow);
    EXPECT_EQ(d.rule, 0);
  }
}

// REQ-10
TEST(policy_decide, GidAndUnitIdentifyApps) {
  auto p = must_parse(R"(version = 1
[[app]]
name = "by-gid"
gid = [50, 1001]
[[app]]
name = "by-unit"
unit = "kiosk-ui.service"
[[rule]]
app = "by-unit"
ops = ["write"]
)");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->app_names(kiosk()), (std::vector<std::string>{"by-gid", "by-unit"}));
  EXPECT_EQ(p->app_name(kiosk()), "by-gid");
  const auto d = p->decide(kiosk(), printer(), Op::write);
  EXPECT_TRUE(d.allow);
  EXPECT_EQ(d.app, "by-gid");  // first declared app the caller is, not the rule's app
  Caller no_unit = kiosk();
  no_unit.unit.clear();
  EXPECT_FALSE(p->decide(no_unit, printer(), Op::write).allow);
}

// REQ-10
TEST(policy_decide, StarAppMatchesAnUndeclaredCaller) {
  auto p = must_parse(R"(version = 1
[[app]]
name = "kiosk-ui"
uid = 1001
[[rule]]
app = "*"
ops = ["list"]
)");
  ASSERT_TRUE(p);
  const Caller nobody = caller_with(65534, 65534);
  const auto d = p->decide(nobody, scanner(), Op::list);
  EXPECT_TRUE(d.allow);
  EXPECT_EQ(d.rule, 1);
  EXPECT_EQ(d.app, "");
  EXPECT_FALSE(p->decide(nobody, scanner(), Op::read).allow);
}

// REQ-10
TEST(policy_decide, AppsListCoversEachNamedApp) {
  auto p = must_parse(R"(version = 1
[[app]]
name = "a"
uid = 1
[[app]]
name = "b"
uid = 2
[[app]]
name = "c"
uid = 3
[[rule]]
apps = ["a", "c"]
ops = ["read"]
)");
  ASSERT_TRUE(p);
  EXPECT_TRUE(p->decide(caller_with(1), scanner(), Op::read).allow);
  EXPECT_FALSE(p->decide(caller_with(2), scanner(), Op::read).allow);
  EXPECT_TRUE(p->decide(caller_with(3), scanner(), Op::read).allow);
}

// REQ-18
TEST(policy_decide, EachAppGetsItsOwnDevicesAndOperations) {
  auto p = must_parse(R"(version = 1
[[app]]
name = "teller-ui"
uid = 1001
[[app]]
name = "payment"
uid = 1002

[[rule]]
app = "teller-ui"
class = "scanner"
ops = ["list", "watch", "read"]

[[rule]]
app = "payment"
device = "pinpad*"
ops = ["*"]

[[rule]]
app = "*"
ops = ["list"]
)");
  ASSERT_TRUE(p);
  const Caller teller = caller_with(1001);
  const Caller payment = caller_with(1002);
  const DeviceRef pinpad{.id = "pinpad0", .device_class = "pinpad", .attributes = {}};
  EXPECT_TRUE(p->decide(teller, scanner(), Op::read).allow);
  EXPECT_FALSE(p->decide(teller, scanner(), Op::claim).allow);
  EXPECT_FALSE(p->decide(teller, pinpad, Op::read).allow);
  EXPECT_TRUE(p->decide(teller, pinpad, Op::list).allow);
  EXPECT_EQ(p->decide(teller, pinpad, Op::list).rule, 3);
  EXPECT_TRUE(p->decide(payment, pinpad, Op::claim).allow);
  EXPECT_TRUE(p->decide(payment, pinpad, Op::configure).allow);
  EXPECT_FALSE(p->decide(payment, scanner(), Op::read).allow);
}

TEST(policy_decide, StarOpCoversAllSixOperations) {
  auto p = must_parse("version = 1\n[[rule]]\napp = \"*\"\nops = [\"*\"]\n");
  ASSERT_TRUE(p);
  for (int i = 0; i < kOpCount; ++i) {
    EXPECT_TRUE(p->decide(kiosk(), scanner(), static_cast<Op>(i)).allow) << i;
  }
}

TEST(policy_decide, AppNamesAreInFileOrder) {
  auto p = must_parse(R"(version = 1
[[app]]
name = "z-last-alphabetically"
uid = 1001
[[app]]
name = "other"
uid = 5
[[app]]
name = "a-first-alphabetically"
exe = "/opt/kiosk/bin/kiosk-ui"
)");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->app_names(kiosk()),
            (std::vector<std::string>{"z-last-alphabetically", "a-first-alphabetically"}));
  EXPECT_EQ(p->app_name(kiosk()), "z-last-alphabetically");
  EXPECT_TRUE(p->app_names(caller_with(9)).empty());
}

TEST(policy_decide, CompiledPathAgreesWithConvenience) {
  auto p = must_parse(R"(version = 1
[[app]]
name = "kiosk-ui"
uid = 1001
[[rule]]
app = "kiosk-ui"
device = "scanner*"
ops = ["read"]
effect = "deny"
[[rule]]
app = "*"
ops = ["read"]
)");
  ASSERT_TRUE(p);
  const auto c = p->rules_for_caller(kiosk());
  const auto d = p->rules_for_device(scanner());
  const auto compiled = p->decide(c, d, Op::read);
  const auto convenient = p->decide(kiosk(), scanner(), Op::read);
  EXPECT_EQ(compiled.allow, convenient.allow);
  EXPECT_EQ(compiled.rule, convenient.rule);
  EXPECT_EQ(compiled.line, convenient.line);
  EXPECT_EQ(compiled.source, convenient.source);
  EXPECT_EQ(convenient.rule, 1);
  EXPECT_FALSE(convenient.allow);
}

}  // namespace
}  // namespace portier::policy
