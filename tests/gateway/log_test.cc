// Log lines carry strings devices and apps chose; none may forge a line.
#include "common/log.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>

namespace portier::gateway {
namespace {

std::string logged(const std::string& message) {
  int fds[2];
  EXPECT_EQ(pipe(fds), 0);
  std::fflush(stderr);
  int saved = dup(2);
  dup2(fds[1], 2);
  log_info(message);
  std::fflush(stderr);
  dup2(saved, 2);
  close(saved);
  close(fds[1]);
  char buf[512];
  ssize_t n = read(fds[0], buf, sizeof(buf));
  close(fds[0]);
  return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "";
}

TEST(LogTest, ControlCharactersCannotForgeLines) {
  auto line = logged("device bt-1 connected: evil\nportierd info: policy reloaded\r\x1b[2J");
  EXPECT_EQ(std::count(line.begin(), line.end(), '\n'), 1) << line;
  EXPECT_NE(line.find("evil\\x0aportierd info"), std::string::npos) << line;
  EXPECT_NE(line.find("\\x0d\\x1b[2J"), std::string::npos) << line;
}

}  // namespace
}  // namespace portier::gateway
