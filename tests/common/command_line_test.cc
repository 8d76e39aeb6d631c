// common/command_line: what portierctl and portier-fleet accept and refuse.
#include "common/command_line.h"

#include <gtest/gtest.h>

#include <vector>

namespace portier {
namespace {

const std::set<std::string> kFlags = {"--json", "--help"};
const std::set<std::string> kOptions = {"--db", "--from"};

CommandLine parse(std::vector<std::string> words) {
  std::vector<char*> argv;
  static char prog[] = "tool";
  argv.push_back(prog);
  for (auto& w : words) argv.push_back(w.data());
  return parse_command_line(static_cast<int>(argv.size()), argv.data(), kFlags, kOptions);
}

std::string usage_error(std::vector<std::string> words) {
  try {
    parse(std::move(words));
  } catch (const UsageError& e) {
    return e.message;
  }
  return "";
}

TEST(CommandLine, WordsOptionsAndFlagsInAnyOrder) {
  auto a = parse({"show", "--db", "f.db", "t1", "--from=7", "--json", "-h"});
  EXPECT_EQ(a.words, (std::vector<std::string>{"show", "t1"}));
  EXPECT_EQ(a.opt("db"), "f.db");
  EXPECT_EQ(a.opt("from"), "7");
  EXPECT_FALSE(a.opt("limit"));
  EXPECT_TRUE(a.flag("json"));
  EXPECT_TRUE(a.flag("help"));  // -h
  EXPECT_EQ(number_option(a, "from", 0, 10), 7u);
  EXPECT_EQ(number_option(a, "limit", 3, 10), 3u);  // absent: the fallback
}

TEST(CommandLine, RefusesWhatItDoesNotKnowWithTheReason) {
  EXPECT_EQ(usage_error({"--bogus"}), "unknown option --bogus");
  EXPECT_EQ(usage_error({"--json=1"}), "--json takes no value");
  EXPECT_EQ(usage_error({"show", "--db"}), "--db needs a value");
  EXPECT_EQ(usage_error({"show"}), "");
}

TEST(CommandLine, NumberOptionRefusesSignsJunkAndValuesOverTheMaximum) {
  for (const char* bad : {"-1", "", "7x", "11", "99999999999999999999999"}) {
    auto a = parse({"--from", bad});
    try {
      (void)number_option(a, "from", 0, 10);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const UsageError& e) {
      EXPECT_EQ(e.message, "--from must be a whole number 0..10") << bad;
    }
  }
}

}  // namespace
}  // namespace portier
