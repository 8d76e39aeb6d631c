// load_file refuses files that others could have changed, and reports I/O
// failures with the path and the system's reason.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "policy/policy.h"
#include "policy_under_test.h"
#include "temp_dir.h"

namespace portier::policy {
namespace {

using testing::caller_with;
using testing::device_with;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using testing::TempDir;

constexpr std::string_view kGood = R"(version = 1
[[app]]
name = "kiosk-ui"
uid = 1001
[[rule]]
app = "kiosk-ui"
ops = ["read"]
)";

TEST(policy_load_file, LoadsAnOwnerOnlyWritableFile) {
  TempDir dir;
  for (mode_t mode : {0644, 0600, 0400, 0444}) {
    const std::string path =
        dir.write("policy-" + std::to_string(mode) + ".toml", std::string(kGood), mode);
    auto p = Policy::load_file(path);
    ASSERT_TRUE(p.has_value()) << p.error().message();
    EXPECT_EQ((*p)->source(), path);
    EXPECT_EQ((*p)->rule_count(), 1u);
    const auto d = (*p)->decide(caller_with(1001), device_with("scanner0"), Op::read);
    EXPECT_TRUE(d.allow);
    EXPECT_EQ(d.source, path);
  }
}

// REQ-10
TEST(policy_load_file, RefusesGroupWritableFile) {
  TempDir dir;
  const std::string path = dir.write("policy.toml", std::string(kGood), 0664);
  auto p = Policy::load_file(path);
  ASSERT_FALSE(p.has_value());
  EXPECT_EQ(p.error().code, Errc::permission_denied);
  EXPECT_EQ(p.error().where, path);
  EXPECT_THAT(p.error().message(), HasSubstr("writable by group or others (mode 0664)"));
  EXPECT_THAT(p.error().message(), HasSubstr("chmod go-w " + path));
}

// REQ-10
TEST(policy_load_file, RefusesWorldWritableFile) {
  TempDir dir;
  const std::string path = dir.write("policy.toml", std::string(kGood), 0602);
  auto p = Policy::load_file(path);
  ASSERT_FALSE(p.has_value());
  EXPECT_EQ(p.error().code, Errc::permission_denied);
  EXPECT_THAT(p.error().message(), HasSubstr("chmod go-w"));
}

TEST(policy_load_file, MissingFileIsAnIoErrorWithTheReason) {
  TempDir dir;
  const std::string path = dir.path() + "/absent.toml";
  auto p = Policy::load_file(path);
  ASSERT_FALSE(p.has_value());
  EXPECT_EQ(p.error().code, Errc::io);
  EXPECT_EQ(p.error().where, path);
  EXPECT_THAT(p.error().message(), HasSubstr(std::strerror(ENOENT)));
}

TEST(policy_load_file, RefusesADirectory) {
  TempDir dir;
  auto p = Policy::load_file(dir.path());
  ASSERT_FALSE(p.has_value());
  EXPECT_THAT(p.error().message(), HasSubstr("not a regular file"));
}

TEST(policy_load_file, RefusesAFifoWithoutBlocking) {
  TempDir dir;
  const std::string path = dir.path() + "/policy.toml";
  ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0) << std::strerror(errno);
  auto p = Policy::load_file(path);
  ASSERT_FALSE(p.has_value());
  EXPECT_THAT(p.error().message(), HasSubstr("not a regular file"));
}

TEST(policy_load_file, RefusesAFileOver1MiB) {
  TempDir dir;
  std::string text(kGood);
  text += std::string(1024 * 1024, '#');
  const std::string path = dir.write("big.toml", text, 0644);
  auto p = Policy::load_file(path);
  ASSERT_FALSE(p.has_value());
  EXPECT_EQ(p.error().code, Errc::invalid_argument);
  EXPECT_THAT(p.error().message(), HasSubstr("over the limit of 1048576 bytes"));
}

TEST(policy_load_file, ValidationErrorsNameThePath) {
  TempDir dir;
  const std::string path =
      dir.write("policy.toml", "version = 1\n[[rule]]\napp = \"*\"\nops = [\"rread\"]\n", 0644);
  auto p = Policy::load_file(path);
  ASSERT_FALSE(p.has_value());
  EXPECT_EQ(p.error().code, Errc::invalid_argument);
  EXPECT_THAT(p.error().message(), StartsWith(path + ":4:8: rule 1: unknown operation 'rread'"));
}

}  // namespace
}  // namespace portier::policy
