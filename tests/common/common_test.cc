// The common library: the error type's helpers and small-file reading.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cerrno>
#include <filesystem>
#include <fstream>

#include "common/file_read.h"
#include "common/hex.h"
#include "common/result.h"

namespace portier {
namespace {

TEST(Hex, PrintableShowsControlBytesAndStopsAtTheLimit) {
  EXPECT_EQ(printable(std::string("a\nb\x7f\x01", 5)), "a\\x0ab\\x7f\\x01");
  EXPECT_EQ(printable("abcdef", 3), "abc");
  EXPECT_EQ(printable("中文"), "中文");  // UTF-8 passes
}

TEST(Hex, FromHexIsToHexsInverseAndRefusesWhatIsNotHex) {
  EXPECT_EQ(from_hex(to_hex(std::string("\x00\xff\x10", 3))), std::string("\x00\xff\x10", 3));
  EXPECT_EQ(from_hex("ABcd"), std::string("\xab\xcd"));
  EXPECT_FALSE(from_hex("abc"));
  EXPECT_FALSE(from_hex("zz"));
}

TEST(Result, WithContextPutsTheOuterPlaceInFrontAndKeepsTheRest) {
  Result<int> r = fail(Errc::invalid_argument, "3:7", "baud", "must be one of 9600, 115200");
  auto wrapped = with_context(r, "/etc/portier/portierd.toml");
  ASSERT_FALSE(wrapped);
  EXPECT_EQ(wrapped.error().code, Errc::invalid_argument);
  EXPECT_EQ(wrapped.error().message(),
            "/etc/portier/portierd.toml: 3:7: baud: must be one of 9600, 115200");
  Result<int> ok = 5;
  EXPECT_EQ(*with_context(ok, "x"), 5);
  Error bare{Errc::io, "", "", "why"};
  EXPECT_EQ(bare.with_context("here").message(), "here: why");
}

TEST(Result, FailErrnoSaysWhatTheSystemSaid) {
  auto e = fail_errno(Errc::io, "socket", "/run/x.sock", ENOENT).error();
  EXPECT_EQ(e.message(), "socket: /run/x.sock: No such file or directory");
  EXPECT_EQ(fail_msg(Errc::not_found, "no device 'x'").error().message(), "no device 'x'");
}

TEST(Result, EveryErrorCodeHasItsGrpcStatus) {
  // grpc::StatusCode values, fixed by the gRPC spec.
  EXPECT_EQ(grpc_status_code(Errc::invalid_argument), 3);
  EXPECT_EQ(grpc_status_code(Errc::not_found), 5);
  EXPECT_EQ(grpc_status_code(Errc::already_exists), 6);
  EXPECT_EQ(grpc_status_code(Errc::permission_denied), 7);
  EXPECT_EQ(grpc_status_code(Errc::resource_exhausted), 8);
  EXPECT_EQ(grpc_status_code(Errc::failed_precondition), 9);
  EXPECT_EQ(grpc_status_code(Errc::aborted), 10);
  EXPECT_EQ(grpc_status_code(Errc::internal), 13);
  EXPECT_EQ(grpc_status_code(Errc::unavailable), 14);
  EXPECT_EQ(grpc_status_code(Errc::io), 14);
}

class FileReadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char t[] = "/tmp/portier-common-XXXXXX";
    dir_ = mkdtemp(t);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(FileReadTest, ReadsAWholeFileAndRefusesOneOverTheLimit) {
  std::ofstream(dir_ + "/f") << "0123456789";
  auto r = read_small_file(dir_ + "/f");
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(*r, "0123456789");
  std::string out = "stale";
  EXPECT_EQ(read_small_file(dir_ + "/f", out, {9, true}), EFBIG);
  EXPECT_EQ(out, "");  // never a part
  EXPECT_EQ(read_small_file(dir_ + "/f", out, {10, true}), 0);
  auto missing = read_small_file(dir_ + "/none");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().message(), dir_ + "/none: cannot read: No such file or directory");
}

TEST_F(FileReadTest, ProcFilesOfSizeZeroAreReadToTheirEnd) {
  auto r = read_small_file("/proc/self/status");
  ASSERT_TRUE(r);
  EXPECT_NE(r->find("Pid:"), std::string::npos);
}

TEST_F(FileReadTest, NoFollowRefusesASymlink) {
  std::ofstream(dir_ + "/f") << "x";
  std::filesystem::create_symlink(dir_ + "/f", dir_ + "/link");
  std::string out;
  EXPECT_EQ(read_small_file(dir_ + "/link", out, {16, false}), ELOOP);
  EXPECT_EQ(read_small_file(dir_ + "/link", out, {16, true}), 0);
}

}  // namespace
}  // namespace portier
