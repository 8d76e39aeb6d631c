// REQ-35: portierd loads a policy only when nobody but root and its own user
// could have written it: the file's owner, and the owner and write bits of
// every directory above it (as given and through symlinks). Ownership needs
// root to set up, so these tests skip without it.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "gateway/policy_store.h"
#include "policy/temp_dir.h"

namespace portier::gateway {
namespace {

using policy::testing::TempDir;
using ::testing::HasSubstr;

constexpr uid_t kStranger = 1000;
constexpr gid_t kStrangerGroup = 1000;
constexpr uid_t kDaemonUser = 64020;

constexpr const char* kGood = "version = 1\n[[app]]\nname = \"kiosk\"\nuid = 1001\n";

class PolicyFileOwnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to give files to other owners";
    ::chmod(dir_.path().c_str(), 0755);
  }

  // The refusal message, or "" when the file loads.
  static std::string refusal(const std::string& path) {
    auto p = load_policy_file(path);
    return p ? std::string() : p.error().message();
  }

  TempDir dir_;
};

TEST_F(PolicyFileOwnerTest, LoadsARootOwnedFileInARootOwnedDirectory) {
  for (mode_t mode : {0644, 0600, 0444}) {
    auto path = dir_.write("policy.toml", kGood, mode);
    EXPECT_EQ(refusal(path), "") << std::oct << mode;
  }
}

TEST_F(PolicyFileOwnerTest, RefusesAFileOwnedByAnotherUid) {
  auto path = dir_.write("policy.toml", kGood, 0644);
  ASSERT_EQ(::chown(path.c_str(), kStranger, 0), 0);
  auto p = load_policy_file(path);
  ASSERT_FALSE(p);
  EXPECT_EQ(p.error().code, Errc::permission_denied);
  EXPECT_THAT(p.error().message(),
              HasSubstr("policy " + path +
                        ": owned by uid 1000 (must be root or portierd's user 0); refused"));
  EXPECT_THAT(p.error().message(), HasSubstr("chown root " + path));
}

// The file's own mode is checked where it is read (policy::Policy::load_file);
// load_policy_file gives that refusal too.
TEST_F(PolicyFileOwnerTest, RefusesAWorldWritableFile) {
  auto path = dir_.write("policy.toml", kGood, 0666);
  EXPECT_THAT(refusal(path), HasSubstr("writable by group or others (mode 0666)"));
}

TEST_F(PolicyFileOwnerTest, RefusesAWorldWritableDirectory) {
  auto path = dir_.write("policy.toml", kGood, 0644);
  ASSERT_EQ(::chmod(dir_.path().c_str(), 0777), 0);
  EXPECT_THAT(refusal(path), HasSubstr("policy " + path + ": directory " + dir_.path() +
                                       " is writable by others (mode 0777)"));
}

// /tmp is 1777: only an entry's owner may rename or remove it, but anyone may
// create the policy's name (or a link by that name) while it is absent. A
// private directory inside it is fine (every other test here is one).
TEST_F(PolicyFileOwnerTest, RefusesAFileDirectlyInAStickyWorldWritableDirectory) {
  ASSERT_EQ(::chmod(dir_.path().c_str(), 01777), 0);
  auto path = dir_.write("policy.toml", kGood, 0644);
  EXPECT_THAT(refusal(path), HasSubstr("directory " + dir_.path() +
                                       " is writable by others (mode 1777; the sticky bit"));

  struct stat tmp {};
  ASSERT_EQ(::stat("/tmp", &tmp), 0);
  if ((tmp.st_mode & 01777) != 01777) GTEST_SKIP() << "/tmp is not 1777 here";
  std::string in_tmp = "/tmp/portier-policy-XXXXXX.toml";
  int fd = ::mkstemps(in_tmp.data(), 5);
  ASSERT_GE(fd, 0);
  ::close(fd);
  ::chmod(in_tmp.c_str(), 0644);
  EXPECT_THAT(refusal(in_tmp), HasSubstr("directory /tmp is writable by others (mode 1777"));
  ::unlink(in_tmp.c_str());
}

TEST_F(PolicyFileOwnerTest, RefusesADirectoryOwnedByAnotherUid) {
  auto path = dir_.write("policy.toml", kGood, 0644);
  ASSERT_EQ(::chown(dir_.path().c_str(), kStranger, 0), 0);
  EXPECT_THAT(refusal(path), HasSubstr("directory " + dir_.path() + " is owned by uid 1000"));
}

// Apps join portierd's group to reach its socket, so only root's group is
// trusted with write access to the policy's directory.
TEST_F(PolicyFileOwnerTest, GroupWritableDirectoryOnlyForRootsGroup) {
  auto path = dir_.write("policy.toml", kGood, 0644);
  ASSERT_EQ(::chmod(dir_.path().c_str(), 0775), 0);
  EXPECT_EQ(refusal(path), "");
  ASSERT_EQ(::chown(dir_.path().c_str(), 0, kStrangerGroup), 0);
  ASSERT_EQ(::chmod(dir_.path().c_str(), 0775), 0);
  EXPECT_THAT(refusal(path),
              HasSubstr("directory " + dir_.path() + " is writable by group 1000 (mode 0775)"));
}

TEST_F(PolicyFileOwnerTest, AnAncestorMayBeSharedOnlyWithTheStickyBit) {
  std::filesystem::create_directories(dir_.path() + "/etc/portier");
  ::chmod((dir_.path() + "/etc").c_str(), 0755);
  ::chmod((dir_.path() + "/etc/portier").c_str(), 0755);
  auto path = dir_.write("etc/portier/policy.toml", kGood, 0644);
  ASSERT_EQ(::chmod((dir_.path() + "/etc").c_str(), 0777), 0);
  EXPECT_THAT(refusal(path), HasSubstr("directory " + dir_.path() + "/etc is writable by others"));
  ASSERT_EQ(::chmod((dir_.path() + "/etc").c_str(), 01777), 0);
  EXPECT_EQ(refusal(path), "");
}

// A symlink in a safe place does not make a file in an unsafe one safe.
TEST_F(PolicyFileOwnerTest, FollowsSymlinksToTheFilesOwnDirectory) {
  std::filesystem::create_directories(dir_.path() + "/shared");
  auto target = dir_.write("shared/policy.toml", kGood, 0644);
  auto link = dir_.path() + "/policy.toml";
  std::filesystem::create_symlink(target, link);
  EXPECT_EQ(refusal(link), "");
  ASSERT_EQ(::chmod((dir_.path() + "/shared").c_str(), 0777), 0);
  EXPECT_THAT(refusal(link), HasSubstr("policy " + link + ": directory " + dir_.path() +
                                       "/shared is writable by others"));
}

// Under systemd portierd runs as user portier: a file (and directory) of its
// own is accepted, and the message names that uid.
TEST_F(PolicyFileOwnerTest, TheDaemonsOwnUserIsTrusted) {
  auto path = dir_.write("policy.toml", kGood, 0644);
  ASSERT_EQ(::chown(path.c_str(), kDaemonUser, 0), 0);
  ASSERT_EQ(::chown(dir_.path().c_str(), kDaemonUser, 0), 0);
  EXPECT_THAT(refusal(path), HasSubstr("owned by uid 64020 (must be root or portierd's user 0)"));

  auto stranger = dir_.write("stranger.toml", kGood, 0644);
  ASSERT_EQ(::chown(stranger.c_str(), kStranger, 0), 0);
  pid_t child = fork();
  if (child == 0) {  // no gtest assertions here: report through the exit code
    if (::seteuid(kDaemonUser) != 0) _exit(2);
    if (!check_policy_file_owner(path)) _exit(3);
    auto other = check_policy_file_owner(stranger);
    if (other || other.error().message().find("owned by uid 1000 (must be root or portierd's "
                                              "user 64020)") == std::string::npos) {
      _exit(4);
    }
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

}  // namespace
}  // namespace portier::gateway
