// Glob takes shortcuts for common pattern shapes; each must agree with
// fnmatch(3), which defines what a device glob means.
#include "policy/glob.h"

#include <fnmatch.h>
#include <gtest/gtest.h>

#include <random>
#include <string>

namespace portier::policy {
namespace {

bool fnmatch_says(const std::string& pattern, const std::string& subject) {
  return ::fnmatch(pattern.c_str(), subject.c_str(), 0) == 0;
}

TEST(policy_glob, CommonShapes) {
  EXPECT_TRUE(Glob("*").match(""));
  EXPECT_TRUE(Glob("*").match("anything/at.all"));
  EXPECT_TRUE(Glob("scanner0").match("scanner0"));
  EXPECT_FALSE(Glob("scanner0").match("scanner01"));
  EXPECT_TRUE(Glob("scanner*").match("scanner"));
  EXPECT_TRUE(Glob("scanner*").match("scanner-usb-1"));
  EXPECT_FALSE(Glob("scanner*").match("xscanner"));
  EXPECT_TRUE(Glob("*-usb").match("printer-usb"));
  EXPECT_FALSE(Glob("*-usb").match("printer-usb2"));
  EXPECT_TRUE(Glob("nfc?").match("nfc1"));
  EXPECT_FALSE(Glob("nfc?").match("nfc"));
  EXPECT_TRUE(Glob("a*b*c").match("a-x-b-y-c"));
  EXPECT_FALSE(Glob("a*b*c").match("a-x-c-y-b"));
  EXPECT_TRUE(Glob("nfc[0-9]").match("nfc7"));
  EXPECT_FALSE(Glob("nfc[!0-9]").match("nfc7"));
  EXPECT_TRUE(Glob("star\\*").match("star*"));
  EXPECT_FALSE(Glob("star\\*").match("starx"));
}

// A '*' in the subject was once compared as a literal before the pattern's
// '*' was considered, so "*-?" failed to match "**-.".
TEST(policy_glob, StarInSubjectDoesNotShadowStarInPattern) {
  EXPECT_TRUE(Glob("*-?").match("**-."));
  EXPECT_TRUE(Glob("a*?").match("a**"));
  EXPECT_TRUE(fnmatch_says("*-?", "**-."));
}

TEST(policy_glob, SubjectWithNulNeverMatches) {
  const std::string with_nul("scanner\0evil", 12);
  for (const char* p : {"*", "scanner*", "*evil", "s*r?evil", "scanner[\\0]*"}) {
    EXPECT_FALSE(Glob(p).match(with_nul)) << p;
  }
}

TEST(policy_glob, AgreesWithFnmatchOnRandomPatterns) {
  static const char* kPieces[] = {"a", "b", "ab", "*", "**", "?", "[ab]", "[!a]", "\\*", "-", "."};
  static const char kChars[] = {'a', 'b', '-', '.', '*'};
  std::mt19937 gen(5);
  std::uniform_int_distribution<std::size_t> piece(0, std::size(kPieces) - 1);
  std::uniform_int_distribution<std::size_t> ch(0, std::size(kChars) - 1);
  std::uniform_int_distribution<int> len(0, 7);
  int matched = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string pattern;
    for (int n = 1 + len(gen) % 5; n > 0; --n) pattern += kPieces[piece(gen)];
    std::string subject;
    for (int n = len(gen); n > 0; --n) subject += kChars[ch(gen)];
    const bool want = fnmatch_says(pattern, subject);
    ASSERT_EQ(Glob(pattern).match(subject), want) << "'" << pattern << "' on '" << subject << "'";
    matched += want ? 1 : 0;
  }
  EXPECT_GT(matched, 500);
}

}  // namespace
}  // namespace portier::policy
