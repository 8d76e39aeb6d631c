// Every validation error names source:line:col, the object and the reason.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "policy/policy.h"
#include "policy_under_test.h"

namespace portier::policy {
namespace {

using testing::caller_with;
using testing::device_with;
using ::testing::HasSubstr;
using testing::must_parse;
using testing::parse_error;
using ::testing::StartsWith;

constexpr std::string_view kApp = R"(version = 1
[[app]]
name = "kiosk-ui"
uid = 1001
)";

std::string with_app(std::string_view rest) { return std::string(kApp) + std::string(rest); }

TEST(policy_parse, AcceptsTheDocumentedExample) {
  auto p = must_parse(R"(version = 1                      # required, must be 1

[[app]]
name = "kiosk-ui"
uid = 1001
gid = 1001
exe = "/opt/kiosk/bin/kiosk-ui"
sha256 = "0123456789abcdef0123456789ABCDEF0123456789abcdef0123456789abcdef"
unit = "kiosk-ui.service"

[[rule]]
app = "kiosk-ui"
device = "scanner*"
class = "scanner"
attributes = { vendor = "0c2e*" }
ops = ["list", "watch", "read"]
effect = "allow"
)");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->app_count(), 1u);
  EXPECT_EQ(p->rule_count(), 1u);
  EXPECT_EQ(p->source(), "p.toml");
}

TEST(policy_parse, EmptyRuleListIsValidAndDeniesEverything) {
  auto p = must_parse(kApp);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->rule_count(), 0u);
  const auto d = p->decide(caller_with(1001), device_with("scanner0"), Op::list);
  EXPECT_FALSE(d.allow);
  EXPECT_EQ(d.rule, 0);
  EXPECT_EQ(d.app, "kiosk-ui");
  EXPECT_TRUE(p->rules_for_caller(Caller{}).empty());
}

TEST(policy_parse, VersionOnlyIsValid) {
  auto p = must_parse("version = 1\n");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->app_count(), 0u);
  EXPECT_EQ(p->rule_count(), 0u);
}

TEST(policy_parse, RejectsSyntaxErrorWithTomlPosition) {
  const auto m = parse_error("version = 1\n\n[[rule]\napp = \"*\"\n");
  EXPECT_THAT(m, StartsWith("p.toml:3:"));
  EXPECT_THAT(m, HasSubstr("TOML syntax error"));
}

TEST(policy_parse, RejectsMissingVersion) {
  EXPECT_EQ(parse_error("[[app]]\nname = \"a\"\nuid = 1\n"),
            "p.toml:1:1: version: missing 'version = 1' at the top of the file");
}

TEST(policy_parse, RejectsUnsupportedVersion) {
  EXPECT_EQ(parse_error("\nversion = 2\n"),
            "p.toml:2:11: version: unsupported version 2 (this Portier reads version 1)");
}

TEST(policy_parse, RejectsVersionOfWrongType) {
  EXPECT_EQ(parse_error("version = \"1\"\n"),
            "p.toml:1:11: version: expected the integer 1, got a string");
}

TEST(policy_parse, RejectsUnknownTopLevelKey) {
  const auto m = parse_error("version = 1\n[[rules]]\napp = \"*\"\nops = [\"list\"]\n");
  EXPECT_THAT(m, StartsWith("p.toml:2:3: top level: unknown key 'rules'"));
  EXPECT_THAT(m, HasSubstr("did you mean 'rule'?"));
}

TEST(policy_parse, RejectsUnknownAppKey) {
  const auto m = parse_error(with_app("uids = 5\n"));
  EXPECT_THAT(m, StartsWith("p.toml:5:1: app 'kiosk-ui': unknown key 'uids'"));
  EXPECT_THAT(m, HasSubstr("did you mean 'uid'?"));
}

TEST(policy_parse, RejectsUnknownRuleKeyAndSuggestsTheRightOne) {
  const auto m =
      parse_error(with_app("[[rule]]\napp = \"*\"\nops = [\"list\"]\neffekt = \"deny\"\n"));
  EXPECT_THAT(m, StartsWith("p.toml:8:1: rule 1: unknown key 'effekt' (did you mean 'effect'?)"));
}

TEST(policy_parse, RejectsUnknownKeyInSubTable) {
  const auto m =
      parse_error(with_app("[[rule]]\napp = \"*\"\nops = [\"list\"]\n[rule.extra]\nx = 1\n"));
  EXPECT_THAT(m, StartsWith("p.toml:8:7: rule 1: unknown key 'extra'"));
}

TEST(policy_parse, ReportsTheFirstUnknownKeyInFileOrder) {
  const auto m =
      parse_error(with_app("[[rule]]\napp = \"*\"\nzzz = 1\nops = [\"list\"]\naaa = 2\n"));
  EXPECT_THAT(m, StartsWith("p.toml:7:1: rule 1: unknown key 'zzz'"));
}

TEST(policy_parse, RejectsAppNotWrittenAsArrayOfTables) {
  EXPECT_THAT(parse_error("version = 1\n[app]\nname = \"a\"\nuid = 1\n"),
              StartsWith("p.toml:2:1: app: expected [[app]] tables"));
  EXPECT_THAT(parse_error("version = 1\nrule = \"all\"\n"),
              StartsWith("p.toml:2:8: rule: expected [[rule]] tables"));
}

TEST(policy_parse, RejectsWrongValueTypes) {
  EXPECT_EQ(parse_error("version = 1\n[[app]]\nname = \"a\"\nuid = \"1001\"\n"),
            "p.toml:4:7: app 'a': uid: expected an integer or an array of integers, got a string");
  EXPECT_EQ(parse_error("version = 1\n[[app]]\nname = \"a\"\nexe = 5\n"),
            "p.toml:4:7: app 'a': exe: expected a string, got an integer");
  EXPECT_EQ(parse_error("version = 1\n[[app]]\nname = 7\nuid = 1\n"),
            "p.toml:3:8: app 1: name: expected a string, got an integer");
  EXPECT_THAT(parse_error(with_app("[[rule]]\napp = \"*\"\nops = \"read\"\n")),
              StartsWith("p.toml:7:7: rule 1: ops: expected an array of operations"));
  EXPECT_EQ(parse_error(with_app("[[rule]]\napp = \"*\"\nops = [\"read\"]\neffect = true\n")),
            "p.toml:8:10: rule 1: effect: expected a string, got a boolean");
  EXPECT_THAT(
      parse_error(with_app("[[rule]]\napp = \"*\"\nops = [\"read\"]\nattributes = \"x\"\n")),
      StartsWith("p.toml:8:14: rule 1: attributes: expected a table"));
  EXPECT_EQ(parse_error(with_app("[[rule]]\napp = \"*\"\nops = [\"read\"]\ndevice = 3\n")),
            "p.toml:8:10: rule 1: device: expected a string, got an integer");
  EXPECT_EQ(parse_error(with_app("[[rule]]\napp = \"*\"\nops = [\"read\", 2]\n")),
            "p.toml:7:16: rule 1: ops: expected a string, got an integer");
  EXPECT_EQ(
      parse_error(with_app("[[rule]]\napp = \"*\"\nops = [\"read\"]\nattributes = { v = 1 }\n")),
      "p.toml:8:20: rule 1: attributes.v: expected a string, got an integer");
  EXPECT_EQ(parse_error(with_app("[[rule]]\napps = \"kiosk-ui\"\nops = [\"read\"]\n")),
            "p.toml:6:8: rule 1: apps: expected an array of app names, got a string");
}

TEST(policy_parse, RejectsDuplicateAppNames) {
  EXPECT_EQ(parse_error(with_app("\n[[app]]\nname = \"kiosk-ui\"\nuid = 1002\n")),
            "p.toml:7:8: app 'kiosk-ui': duplicate app name 'kiosk-ui' (first declared at line 2)");
}

TEST(policy_parse, RejectsAppWithoutIdentityFields) {
  EXPECT_THAT(parse_error("version = 1\n\n[[app]]\nname = \"ghost\"\n"),
              StartsWith("p.toml:3:1: app 'ghost': no identity fields (expected at least one of "
                         "uid, gid, exe, sha256, unit"));
}

TEST(policy_parse, RejectsAppWithoutName) {
  EXPECT_THAT(parse_error("version = 1\n[[app]]\nuid = 1\n"),
              StartsWith("p.toml:2:1: app 1: missing 'name'"));
}

TEST(policy_parse, RejectsInvalidAppName) {
  EXPECT_THAT(parse_error("version = 1\n[[app]]\nname = \"kiosk ui\"\nuid = 1\n"),
              StartsWith("p.toml:3:8: app 'kiosk ui': name 'kiosk ui' is not valid"));
  EXPECT_THAT(parse_error("version = 1\n[[app]]\nname = \"*\"\nuid = 1\n"),
              StartsWith("p.toml:3:8: app '*': name '*' is not valid"));
  EXPECT_THAT(parse_error("version = 1\n[[app]]\nname = \"\"\nuid = 1\n"),
              StartsWith("p.toml:3:8: app '': name '' is not valid"));
}

TEST(policy_parse, RejectsRelativeExe) {
  EXPECT_EQ(parse_error("version = 1\n[[app]]\nname = \"a\"\nexe = \"bin/kiosk\"\n"),
            "p.toml:4:7: app 'a': exe 'bin/kiosk' is not an absolute path (expected it to start "
            "with '/')");
  EXPECT_THAT(parse_error("version = 1\n[[app]]\nname = \"a\"\nexe = \"\"\n"),
              StartsWith("p.toml:4:7: app 'a': exe: must not be empty"));
}

TEST(policy_parse, RejectsBadSha256) {
  EXPECT_THAT(parse_error("version = 1\n[[app]]\nname = \"a\"\nsha256 = \"abc\"\n"),
              StartsWith("p.toml:4:10: app 'a': sha256 is not a SHA-256 digest (expected 64 "
                         "hexadecimal characters, got 3 characters)"));
  const std::string not_hex(64, 'g');
  EXPECT_THAT(parse_error("version = 1\n[[app]]\nname = \"a\"\nsha256 = \"" + not_hex + "\"\n"),
              StartsWith("p.toml:4:10: app 'a': sha256 is not a SHA-256 digest"));
}

TEST(policy_parse, RejectsNegativeUid) {
  EXPECT_EQ(parse_error("version = 1\n[[app]]\nname = \"a\"\nuid = -1\n"),
            "p.toml:4:7: app 'a': uid -1 is out of range (expected 0 to 4294967295)");
}

TEST(policy_parse, RejectsUidAbove32Bits) {
  EXPECT_EQ(parse_error("version = 1\n[[app]]\nname = \"a\"\nuid = 4294967296\n"),
            "p.toml:4:7: app 'a': uid 4294967296 is out of range (expected 0 to 4294967295)");
  EXPECT_TRUE(must_parse("version = 1\n[[app]]\nname = \"a\"\nuid = 4294967295\n"));
}

TEST(policy_parse, RejectsBadIdInsideArrays) {
  EXPECT_EQ(parse_error("version = 1\n[[app]]\nname = \"a\"\ngid = [10, -3]\n"),
            "p.toml:4:12: app 'a': gid -3 is out of range (expected 0 to 4294967295)");
  EXPECT_THAT(parse_error("version = 1\n[[app]]\nname = \"a\"\nuid = []\n"),
              StartsWith("p.toml:4:7: app 'a': uid: empty array"));
  EXPECT_THAT(parse_error("version = 1\n[[app]]\nname = \"a\"\nuid = [1, \"2\"]\n"),
              StartsWith("p.toml:4:11: app 'a': uid: expected an integer"));
}

TEST(policy_parse, RejectsRuleNamingUndeclaredApp) {
  EXPECT_EQ(parse_error(with_app("\n[[rule]]\napp = \"kiosk\"\nops = [\"read\"]\n")),
            "p.toml:7:7: rule 1: unknown app 'kiosk' (expected the name of an [[app]], or \"*\" "
            "for any caller)");
  EXPECT_THAT(
      parse_error(with_app("[[rule]]\napps = [\"kiosk-ui\", \"nope\"]\nops = [\"read\"]\n")),
      StartsWith("p.toml:6:21: rule 1: unknown app 'nope'"));
}

TEST(policy_parse, RejectsBothAppAndApps) {
  EXPECT_EQ(
      parse_error(with_app("[[rule]]\napp = \"*\"\napps = [\"kiosk-ui\"]\nops = [\"read\"]\n")),
      "p.toml:7:1: rule 1: both 'app' and 'apps' given (expected exactly one of them)");
}

TEST(policy_parse, RejectsNeitherAppNorApps) {
  EXPECT_THAT(parse_error(with_app("[[rule]]\nops = [\"read\"]\n\n[[rule]]\nops = [\"read\"]\n")),
              StartsWith("p.toml:5:1: rule 1: missing 'app'"));
  EXPECT_THAT(parse_error(with_app("[[rule]]\napp = \"*\"\nops = [\"read\"]\n\n[[rule]]\n"
                                   "ops = [\"read\"]\n")),
              StartsWith("p.toml:9:1: rule 2: missing 'app'"));
}

TEST(policy_parse, RejectsEmptyApps) {
  EXPECT_THAT(parse_error(with_app("[[rule]]\napps = []\nops = [\"read\"]\n")),
              StartsWith("p.toml:6:8: rule 1: apps: empty array"));
}

TEST(policy_parse, RejectsMissingOps) {
  EXPECT_THAT(parse_error(with_app("[[rule]]\napp = \"*\"\n")),
              StartsWith("p.toml:5:1: rule 1: missing 'ops'"));
}

TEST(policy_parse, RejectsEmptyOps) {
  EXPECT_EQ(parse_error(with_app("[[rule]]\napp = \"*\"\nops = []\n")),
            "p.toml:7:7: rule 1: ops: empty array (expected at least one of list, watch, read, "
            "claim, write, configure, transmit, pair, authorize, power, *)");
}

TEST(policy_parse, RejectsUnknownOperation) {
  // The example from the brief, to the column.
  const std::string text = with_app(R"(
[[rule]]
app = "*"
ops = ["list"]

[[rule]]
app = "kiosk-ui"
ops = [ "clame" ]
)");
  EXPECT_EQ(parse_error(text),
            "p.toml:12:9: rule 2: unknown operation 'clame' (expected one of list, watch, read, "
            "claim, write, configure, transmit, pair, authorize, power, *)");
}

TEST(policy_parse, RejectsBadEffect) {
  EXPECT_EQ(parse_error(with_app("[[rule]]\napp = \"*\"\nops = [\"read\"]\neffect = \"permit\"\n")),
            "p.toml:8:10: rule 1: unknown effect 'permit' (expected \"allow\" or \"deny\")");
}

TEST(policy_parse, RejectsEmptyGlobs) {
  EXPECT_THAT(parse_error(with_app("[[rule]]\napp = \"*\"\ndevice = \"\"\nops = [\"read\"]\n")),
              StartsWith("p.toml:7:10: rule 1: device: must not be empty"));
  EXPECT_THAT(parse_error(with_app("[[rule]]\napp = \"*\"\nclass = \"\"\nops = [\"read\"]\n")),
              StartsWith("p.toml:7:9: rule 1: class: must not be empty"));
  EXPECT_THAT(parse_error(with_app("[[rule]]\napp = \"*\"\nattributes = { vendor = \"\" }\n"
                                   "ops = [\"read\"]\n")),
              StartsWith("p.toml:7:25: rule 1: attributes.vendor: must not be empty"));
}

TEST(policy_parse, RejectsEmptyAttributeName) {
  EXPECT_THAT(parse_error(with_app("[[rule]]\napp = \"*\"\nattributes = { \"\" = \"x\" }\n"
                                   "ops = [\"read\"]\n")),
              StartsWith("p.toml:7:16: rule 1: attributes: an attribute name must be non-empty"));
}

TEST(policy_parse, RejectsNulInsideStrings) {
  EXPECT_THAT(parse_error(with_app("[[rule]]\napp = \"*\"\ndevice = \"scan\\u0000ner\"\n"
                                   "ops = [\"read\"]\n")),
              StartsWith("p.toml:7:10: rule 1: device: must not contain NUL characters"));
}

TEST(policy_parse, RejectsTextOver1MiB) {
  std::string text = "version = 1\n";
  while (text.size() <= 1024 * 1024) text += "# padding padding padding padding padding padding\n";
  EXPECT_THAT(parse_error(text), HasSubstr("over the limit of 1048576 bytes (1 MiB)"));
  // Just under the limit is fine.
  text.resize(1024 * 1024 - 1);
  text.back() = '\n';
  auto p = Policy::parse(text, "p.toml");
  EXPECT_TRUE(p.has_value()) << p.error().message();
}

TEST(policy_parse, AcceptsUidAndGidArraysAndUppercaseDigest) {
  const std::string upper(64, 'A');
  auto p = must_parse("version = 1\n[[app]]\nname = \"a\"\nuid = [1, 2]\ngid = [3]\nsha256 = \"" +
                      upper + "\"\n");
  ASSERT_TRUE(p);
  const std::string lower(64, 'a');
  EXPECT_EQ(p->app_name(caller_with(2, 3, lower)), "a");
  EXPECT_EQ(p->app_name(caller_with(2, 3, upper)), "");
  EXPECT_EQ(p->app_name(caller_with(4, 3, lower)), "");
}

TEST(policy_parse, AcceptsInlineArrayOfRuleTables) {
  auto p = must_parse(
      "version = 1\n"
      "rule = [ { app = \"kiosk-ui\", ops = [\"read\"] }, { app = \"*\", ops = [\"list\"] } ]\n"
      "[[app]]\nname = \"kiosk-ui\"\nuid = 1001\n");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->rule_count(), 2u);
}

// In TOML a key after [[app]] belongs to that app: the misplaced rules must be
// reported, not silently dropped.
TEST(policy_parse, RulesWrittenInsideAnAppTableAreReported) {
  EXPECT_THAT(parse_error(with_app("rule = [ { app = \"*\", ops = [\"read\"] } ]\n")),
              StartsWith("p.toml:5:1: app 'kiosk-ui': unknown key 'rule'"));
}

TEST(policy_parse, RulesMayNameAppsDeclaredLaterInTheFile) {
  auto p = must_parse(R"(version = 1
[[rule]]
app = "late"
ops = ["read"]
[[app]]
name = "late"
uid = 7
)");
  ASSERT_TRUE(p);
  EXPECT_TRUE(p->decide(caller_with(7), device_with("x"), Op::read).allow);
}

TEST(policy_parse, ErrorUsesTheGivenSourceName) {
  auto p = Policy::parse("version = 3\n", "/etc/portier/policy.toml");
  ASSERT_FALSE(p.has_value());
  EXPECT_EQ(p.error().where, "/etc/portier/policy.toml:1:11");
  EXPECT_EQ(p.error().what, "version");
  EXPECT_EQ(p.error().code, Errc::invalid_argument);
}

}  // namespace
}  // namespace portier::policy
