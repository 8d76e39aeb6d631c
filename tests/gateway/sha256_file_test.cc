// The caller's executable digest (app identity by sha256 in the policy).
#include "gateway/sha256_file.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

namespace portier::gateway {
namespace {

class Sha256FileTest : public ::testing::Test {
 protected:
  int with(const std::string& content) {
    char path[] = "/tmp/portier-sha256-XXXXXX";
    int fd = mkstemp(path);
    EXPECT_GE(fd, 0);
    unlink(path);
    EXPECT_EQ(write(fd, content.data(), content.size()), static_cast<ssize_t>(content.size()));
    fds_.push_back(fd);
    return fd;
  }
  void TearDown() override {
    for (int fd : fds_) close(fd);
  }
  std::vector<int> fds_;
};

TEST_F(Sha256FileTest, KnownVectors) {
  EXPECT_EQ(*sha256_of_fd(with("")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(*sha256_of_fd(with("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

// Files larger than the read buffer are hashed whole, from offset 0 whatever
// the descriptor's position.
TEST_F(Sha256FileTest, LargeFileFromOffsetZero) {
  std::string big(200000, 'a');
  int fd = with(big);  // position is now at the end
  // sha256 of 200,000 'a' characters
  EXPECT_EQ(*sha256_of_fd(fd), "2287d207f24a941ff3b56c04c8a25ad56b63e3023207b3bb5b4ac0c9869d74be");
}

TEST_F(Sha256FileTest, UnreadableDescriptorIsAnError) {
  auto r = sha256_of_fd(-1);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("read"), std::string::npos);
}

}  // namespace
}  // namespace portier::gateway
