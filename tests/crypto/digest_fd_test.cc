// Hashing a descriptor or a file: from offset 0, pipes, size limit,
// cancellation, and the errors the callers (caller identity, file integrity
// baseline) tell apart.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <string>
#include <thread>

#include "common/crypto/digest.h"
#include "crypto/crypto_test_util.h"

namespace portier::crypto {
namespace {

using test::hex;

class DigestFd : public ::testing::Test {
 protected:
  int with(const std::string& content) {
    char path[] = "/tmp/portier-digest-XXXXXX";
    int fd = mkstemp(path);
    EXPECT_GE(fd, 0);
    paths_.push_back(path);
    EXPECT_EQ(write(fd, content.data(), content.size()), static_cast<ssize_t>(content.size()));
    fds_.push_back(fd);
    return fd;
  }
  void TearDown() override {
    for (int fd : fds_) close(fd);
    for (const auto& p : paths_) unlink(p.c_str());
  }
  std::vector<int> fds_;
  std::vector<std::string> paths_;
};

TEST_F(DigestFd, WholeFileFromOffsetZero) {
  int fd = with(std::string(200000, 'a'));  // position at the end
  auto d = digest_fd(DigestAlgo::sha256, fd);
  ASSERT_TRUE(d) << d.error().message();
  EXPECT_EQ(hex(*d), "2287d207f24a941ff3b56c04c8a25ad56b63e3023207b3bb5b4ac0c9869d74be");
  auto sm3 = digest_file(DigestAlgo::sm3, paths_.back());
  ASSERT_TRUE(sm3);
  EXPECT_EQ(*sm3, *digest(DigestAlgo::sm3, std::string(200000, 'a')));
}

TEST_F(DigestFd, PipeIsReadFromItsPosition) {
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  std::thread writer([&] {
    std::string abc = "abc";
    EXPECT_EQ(write(p[1], abc.data(), abc.size()), 3);
    close(p[1]);
  });
  auto d = digest_fd(DigestAlgo::sm3, p[0]);
  writer.join();
  close(p[0]);
  ASSERT_TRUE(d) << d.error().message();
  EXPECT_EQ(hex(*d), "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0");
}

TEST_F(DigestFd, SizeLimitIsResourceExhausted) {
  int fd = with(std::string(3 << 20, 'x'));
  HashLimits limits;
  limits.max_bytes = 1 << 20;
  auto d = digest_fd(DigestAlgo::sha256, fd, limits);
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error().code, Errc::resource_exhausted);
  EXPECT_NE(d.error().why.find("larger than 1048576 bytes"), std::string::npos);
  limits.max_bytes = 3 << 20;  // exactly the size: allowed
  EXPECT_TRUE(digest_fd(DigestAlgo::sha256, fd, limits));
}

TEST_F(DigestFd, CancelAndDeadline) {
  int fd = with(std::string(3 << 20, 'x'));
  std::atomic<bool> cancel{true};
  HashLimits limits;
  limits.cancel = &cancel;
  auto d = digest_fd(DigestAlgo::sha256, fd, limits);
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error().code, Errc::unavailable);
  limits.cancel = nullptr;
  limits.timeout = std::chrono::milliseconds(0);
  // The deadline is checked every 1 MiB: a 3 MiB file crosses it.
  auto late = digest_fd(DigestAlgo::sha256, fd, limits);
  if (!late) {
    EXPECT_EQ(late.error().code, Errc::resource_exhausted);
    EXPECT_NE(late.error().why.find("not hashed within 0 ms"), std::string::npos);
  }  // (a clock that has not moved since the start lets it through)
}

TEST_F(DigestFd, Errors) {
  auto bad = digest_fd(DigestAlgo::sha256, -1);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, Errc::io);
  EXPECT_NE(bad.error().message().find("read"), std::string::npos);
  auto missing = digest_file(DigestAlgo::sha256, "/nonexistent/portier/file");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Errc::not_found);
  EXPECT_NE(missing.error().message().find("/nonexistent/portier/file"), std::string::npos);
  auto dir = digest_file(DigestAlgo::sha256, "/");
  ASSERT_FALSE(dir);
  EXPECT_EQ(dir.error().code, Errc::io);
  EXPECT_NE(dir.error().message().find("read"), std::string::npos) << dir.error().message();
}

}  // namespace
}  // namespace portier::crypto
