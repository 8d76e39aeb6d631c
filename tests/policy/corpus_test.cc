// Every file in tests/data/policy/good must load; every file in bad/ must
// fail with the message its first line announces ("# expect: ...").
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "policy/policy.h"

namespace portier::policy {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

const fs::path kCorpus = fs::path(PORTIER_TEST_DATA) / "policy";

std::vector<fs::path> files_in(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.is_regular_file() && e.path().extension() == ".toml") out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// The repository's checkout mode of these files depends on the umask, so the
// corpus goes through parse(); load_file's own checks have their own tests.
TEST(policy_corpus, GoodFilesParse) {
  const auto files = files_in(kCorpus / "good");
  ASSERT_GE(files.size(), 8u) << "corpus missing at " << kCorpus;
  for (const auto& f : files) {
    SCOPED_TRACE(f.string());
    auto p = Policy::parse(slurp(f), f.filename().string());
    EXPECT_TRUE(p.has_value()) << p.error().message();
  }
}

TEST(policy_corpus, BadFilesFailWithTheExpectedMessage) {
  const auto files = files_in(kCorpus / "bad");
  ASSERT_GE(files.size(), 25u) << "corpus missing at " << kCorpus;
  constexpr std::string_view kPrefix = "# expect: ";
  for (const auto& f : files) {
    SCOPED_TRACE(f.string());
    const std::string text = slurp(f);
    const std::string first_line = text.substr(0, text.find('\n'));
    ASSERT_TRUE(first_line.starts_with(kPrefix)) << "first line must be '# expect: ...'";
    const std::string expected = first_line.substr(kPrefix.size());
    ASSERT_FALSE(expected.empty());
    auto p = Policy::parse(text, f.filename().string());
    ASSERT_FALSE(p.has_value()) << "parsed but should not";
    EXPECT_EQ(p.error().code, Errc::invalid_argument);
    EXPECT_THAT(p.error().message(), HasSubstr(expected));
  }
}

}  // namespace
}  // namespace portier::policy
