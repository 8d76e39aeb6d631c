// parse() on garbage and on mutated good policies: never a crash, always a
// policy or an error that names the source.
#include <gtest/gtest.h>

#include <random>
#include <string>

#include "policy/policy.h"

namespace portier::policy {
namespace {

constexpr std::string_view kSeed = R"(version = 1

[[app]]
name = "kiosk-ui"
uid = [1001, 1002]
gid = 1001
exe = "/opt/kiosk/bin/kiosk-ui"
sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
unit = "kiosk-ui.service"

[[app]]
name = "maint"
unit = "maint.service"

[[rule]]
app = "kiosk-ui"
device = "scanner*"
class = "scanner"
attributes = { vendor = "0c2e*", model = "1500?" }
ops = ["list", "watch", "read"]

[[rule]]
apps = ["maint", "kiosk-ui"]
device = "nfc[0-9]"
ops = ["*"]
effect = "deny"
)";

// Whatever parse() returns must be usable.
void check(const std::string& text) {
  auto p = Policy::parse(text, "fuzz.toml");
  if (!p) {
    ASSERT_EQ(p.error().code, Errc::invalid_argument);
    ASSERT_TRUE(p.error().message().starts_with("fuzz.toml")) << p.error().message();
    ASSERT_FALSE(p.error().why.empty());
    return;
  }
  Caller c;
  c.uid = 1001;
  c.gid = 1001;
  c.exe = "/opt/kiosk/bin/kiosk-ui";
  c.unit = "maint.service";
  const DeviceRef d{
      .id = "scanner0", .device_class = "scanner", .attributes = {{"vendor", "0c2e"}}};
  const BitSet cr = (*p)->rules_for_caller(c);
  const BitSet dr = (*p)->rules_for_device(d);
  for (int o = 0; o < kOpCount; ++o) {
    const auto a = (*p)->decide(cr, dr, static_cast<Op>(o));
    const auto b = (*p)->decide(c, d, static_cast<Op>(o));
    ASSERT_EQ(a.rule, b.rule);
    ASSERT_LE(a.rule, static_cast<int>((*p)->rule_count()));
  }
}

TEST(policy_malformed, RandomBytesNeverCrash) {
  std::mt19937 gen(7);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<int> len(0, 400);
  for (int i = 0; i < 3000; ++i) {
    std::string text(static_cast<std::size_t>(len(gen)), '\0');
    for (auto& ch : text) ch = static_cast<char>(byte(gen));
    ASSERT_NO_FATAL_FAILURE(check(text));
  }
}

TEST(policy_malformed, RandomTomlTokensNeverCrash) {
  static const char* kTokens[] = {"[[app]]",
                                  "[[rule]]",
                                  "[app]",
                                  "[rule.x]",
                                  "\n",
                                  "=",
                                  " ",
                                  "version",
                                  "1",
                                  "-1",
                                  "name",
                                  "uid",
                                  "ops",
                                  "\"*\"",
                                  "\"read\"",
                                  "[",
                                  "]",
                                  "{",
                                  "}",
                                  ",",
                                  "\"",
                                  "'",
                                  "app",
                                  "apps",
                                  "device",
                                  "effect",
                                  "\"deny\"",
                                  "#",
                                  "\"\"\"",
                                  "1e400",
                                  "0x10",
                                  "true",
                                  "attributes",
                                  "a.b",
                                  "\\",
                                  "\"kiosk\"",
                                  "9999999999999999999999",
                                  "1979-05-27"};
  std::mt19937 gen(11);
  std::uniform_int_distribution<std::size_t> tok(0, std::size(kTokens) - 1);
  std::uniform_int_distribution<int> len(0, 80);
  for (int i = 0; i < 3000; ++i) {
    std::string text = i % 2 ? "version = 1\n" : "";
    for (int n = len(gen); n > 0; --n) text += kTokens[tok(gen)];
    ASSERT_NO_FATAL_FAILURE(check(text));
  }
}

TEST(policy_malformed, MutatedGoodPolicyNeverCrashes) {
  ASSERT_TRUE(Policy::parse(kSeed, "fuzz.toml").has_value());
  std::mt19937 gen(13);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<int> kind(0, 4);
  int parsed = 0;
  for (int i = 0; i < 4000; ++i) {
    std::string text(kSeed);
    for (int m = 1 + i % 4; m > 0 && !text.empty(); --m) {
      std::uniform_int_distribution<std::size_t> pos(0, text.size() - 1);
      const std::size_t at = pos(gen);
      switch (kind(gen)) {
        case 0:  // flip a byte
          text[at] = static_cast<char>(byte(gen));
          break;
        case 1:  // delete a run
          text.erase(at, 1 + at % 7);
          break;
        case 2:  // insert a printable byte
          text.insert(at, 1, static_cast<char>(32 + byte(gen) % 95));
          break;
        case 3:  // duplicate a run
          text.insert(at, text.substr(at, 1 + at % 40));
          break;
        default:  // truncate
          text.resize(at);
          break;
      }
    }
    ASSERT_NO_FATAL_FAILURE(check(text));
    parsed += Policy::parse(text, "fuzz.toml").has_value() ? 1 : 0;
  }
  // Some mutations (inside comments, strings) leave a valid policy: both paths ran.
  EXPECT_GT(parsed, 0);
}

TEST(policy_malformed, DeepNestingIsAnErrorNotAStackOverflow) {
  ASSERT_NO_FATAL_FAILURE(check("version = 1\nx = " + std::string(100000, '[')));
  ASSERT_NO_FATAL_FAILURE(check("version = 1\nx = " + std::string(100000, '{')));
  std::string dotted = "version = 1\n";
  for (int i = 0; i < 5000; ++i) dotted += "a.";
  ASSERT_NO_FATAL_FAILURE(check(dotted + "b = 1\n"));
}

}  // namespace
}  // namespace portier::policy
