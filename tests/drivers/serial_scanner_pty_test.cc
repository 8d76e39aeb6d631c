// SerialScanner against real pseudo-terminals. The driver opens a symlink in
// a per-test temp dir that points to the pty slave; closing the master and
// re-pointing the symlink to a new pty simulates unplug and replug.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "drivers/recording_sink.h"
#include "serial_scanner/serial_scanner.h"

namespace portier::drivers {
namespace {

using namespace std::string_literals;
using testing::Recorded;
using testing::RecordingSink;
namespace fs = std::filesystem;

constexpr auto kIoDeadline = std::chrono::seconds(10);

// The "scanner" end of a pty pair: the test writes scanner output to the
// master; the driver reads it from the slave.
class Pty {
 public:
  Pty() {
    master_ = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master_ < 0) return;
    char name[128];
    if (::grantpt(master_) != 0 || ::unlockpt(master_) != 0 ||
        ::ptsname_r(master_, name, sizeof name) != 0) {
      close_master();
      return;
    }
    slave_path_ = name;
    // Non-blocking so that writes and reads below are bounded by deadlines.
    ::fcntl(master_, F_SETFL, ::fcntl(master_, F_GETFL) | O_NONBLOCK);
  }
  ~Pty() { close_master(); }
  Pty(const Pty&) = delete;
  Pty& operator=(const Pty&) = delete;

  bool ok() const { return master_ >= 0; }
  const std::string& slave_path() const { return slave_path_; }
  void close_master() {
    if (master_ >= 0) ::close(master_);
    master_ = -1;
  }

  // Writes everything or fails after the deadline.
  ::testing::AssertionResult write_all(std::string_view data) {
    const auto deadline = std::chrono::steady_clock::now() + kIoDeadline;
    while (!data.empty()) {
      const ssize_t n = ::write(master_, data.data(), data.size());
      if (n > 0) {
        data.remove_prefix(static_cast<std::size_t>(n));
        continue;
      }
      if (n < 0 && errno != EAGAIN && errno != EINTR) {
        return ::testing::AssertionFailure() << "write to pty master: " << std::strerror(errno);
      }
      if (std::chrono::steady_clock::now() > deadline) {
        return ::testing::AssertionFailure() << "pty master write timed out";
      }
      pollfd p{master_, POLLOUT, 0};
      ::poll(&p, 1, 100);
    }
    return ::testing::AssertionSuccess();
  }

  // Reads until `n` bytes arrived or the deadline passed.
  std::string read_n(std::size_t n) {
    std::string out;
    const auto deadline = std::chrono::steady_clock::now() + kIoDeadline;
    while (out.size() < n && std::chrono::steady_clock::now() < deadline) {
      pollfd p{master_, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      char buf[256];
      const ssize_t r = ::read(master_, buf, sizeof buf);
      if (r > 0) out.append(buf, static_cast<std::size_t>(r));
    }
    return out;
  }

 private:
  int master_ = -1;
  std::string slave_path_;
};

class SerialScannerPty : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "portier-drivers-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr) << std::strerror(errno);
    dir_ = tmpl;
    link_ = dir_ / "scanner";
    config_.id = "scanner0";
    config_.path = link_.string();
    config_.baud = 115200;
    config_.reopen_min_ms = 10;
    config_.reopen_max_ms = 100;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // Atomically points the device symlink at `pty`'s slave.
  void plug(const Pty& pty) {
    ASSERT_TRUE(pty.ok());
    const fs::path tmp = dir_ / "scanner.new";
    fs::remove(tmp);
    fs::create_symlink(pty.slave_path(), tmp);
    fs::rename(tmp, link_);
  }

  static bool last_state_is(const Recorded& r, DeviceState s) {
    return !r.states.empty() && r.states.back().state == s;
  }

  fs::path dir_;
  fs::path link_;
  SerialScannerConfig config_;
  RecordingSink sink_;
};

TEST_F(SerialScannerPty, ReportsDeviceAndScansWithSymbologyAndText) {
  Pty pty;
  plug(pty);
  SerialScanner driver(config_);
  ASSERT_TRUE(driver.start(sink_).has_value());
  Recorded r = sink_.snapshot();
  ASSERT_EQ(r.added.size(), 1u);
  EXPECT_EQ(r.added[0].id, "scanner0");
  EXPECT_EQ(r.added[0].device_class, "scanner");
  EXPECT_EQ(r.added[0].driver, "serial_scanner");
  EXPECT_EQ(r.added[0].capabilities, (std::vector<std::string>{"events", "write"}));
  EXPECT_EQ(r.added[0].attributes.at("path"), config_.path);
  EXPECT_EQ(r.added[0].attributes.at("baud"), "115200");
  EXPECT_EQ(r.added[0].attributes.at("suffix"), "CR");  // spelled as in the config
  EXPECT_EQ(r.added[0].attributes.at("encoding"), "auto");
  ASSERT_EQ(r.states.size(), 1u);
  EXPECT_EQ(r.states[0].state, DeviceState::ready);

  ASSERT_TRUE(
      pty.write_all("]Q1hello world\r]E04006381333931\r"
                    "]Q1\xd6\xd0\xce\xc4\xd6\xa7\xb8\xb6\xc2\xeb\r"));
  ASSERT_TRUE(sink_.wait_scans(3));
  r = sink_.snapshot();
  EXPECT_EQ(r.scans[0].symbology, "QR Code");
  EXPECT_EQ(r.scans[0].aim_id, "]Q1");
  EXPECT_EQ(r.scans[0].text, "hello world");
  EXPECT_EQ(r.scans[1].symbology, "EAN/UPC");
  EXPECT_EQ(r.scans[1].text, "4006381333931");
  EXPECT_EQ(r.scans[2].text, "中文支付码");
  EXPECT_EQ(r.scans[2].encoding, "gb18030");
  driver.stop();
  EXPECT_EQ(sink_.snapshot().removed, (std::vector<std::string>{"scanner0"}));
}

// The slave is put into raw mode: CR and LF reach the driver untranslated
// (with ICRNL on, "\r" would arrive as "\n" and no CR-framed scan would end).
TEST_F(SerialScannerPty, TtyIsRawSoCrAndLfArriveUntranslated) {
  Pty pty;
  plug(pty);
  config_.suffix = FrameSuffix::crlf;
  SerialScanner driver(config_);
  ASSERT_TRUE(driver.start(sink_).has_value());
  ASSERT_TRUE(pty.write_all("]C1a\rb\nc\r\n]C1\x03\x7f\x1a\x11\x13\r\n"s));
  ASSERT_TRUE(sink_.wait_scans(2));
  Recorded r = sink_.snapshot();
  EXPECT_EQ(r.scans[0].raw, "a\rb\nc");
  // ^C, DEL, ^Z, XON, XOFF: no signals, no erase, no flow control.
  EXPECT_EQ(r.scans[1].raw, "\x03\x7f\x1a\x11\x13"s);
}

TEST_F(SerialScannerPty, BurstOf2000FramesArrivesInOrder) {
  Pty pty;
  plug(pty);
  SerialScanner driver(config_);
  ASSERT_TRUE(driver.start(sink_).has_value());
  std::string burst;
  for (int i = 0; i < 2000; ++i) burst += "]C1ITEM-" + std::to_string(i) + "\r";
  ASSERT_TRUE(pty.write_all(burst));
  ASSERT_TRUE(sink_.wait_scans(2000));
  Recorded r = sink_.snapshot();
  ASSERT_EQ(r.scans.size(), 2000u);
  for (int i = 0; i < 2000; ++i) {
    ASSERT_EQ(r.scans[i].text, "ITEM-" + std::to_string(i));
  }
  EXPECT_TRUE(r.faults.empty());
}

TEST_F(SerialScannerPty, UnplugThenReplugResumesScans) {
  auto pty = std::make_unique<Pty>();
  plug(*pty);
  SerialScanner driver(config_);
  ASSERT_TRUE(driver.start(sink_).has_value());
  ASSERT_TRUE(pty->write_all("]Q1before\r"));
  ASSERT_TRUE(sink_.wait_scans(1));

  pty->close_master();  // unplug: the slave hangs up
  ASSERT_TRUE(
      sink_.wait([](const Recorded& r) { return last_state_is(r, DeviceState::disconnected); }));

  auto replugged = std::make_unique<Pty>();
  plug(*replugged);
  ASSERT_TRUE(sink_.wait([](const Recorded& r) { return last_state_is(r, DeviceState::ready); }));
  ASSERT_TRUE(replugged->write_all("]Q1after\r"));
  ASSERT_TRUE(sink_.wait_scans(2));

  Recorded r = sink_.snapshot();
  EXPECT_EQ(r.scans[1].text, "after");
  // Exactly one disconnected report, despite the slave signalling POLLHUP
  // and failed reopen attempts before the replug.
  ASSERT_EQ(r.states.size(), 3u);
  EXPECT_EQ(r.states[0].state, DeviceState::ready);
  EXPECT_EQ(r.states[1].state, DeviceState::disconnected);
  EXPECT_FALSE(r.states[1].reason.empty());
  EXPECT_EQ(r.states[2].state, DeviceState::ready);
}

TEST_F(SerialScannerPty, StartsDisconnectedWhenPathMissingThenBecomesReady) {
  SerialScanner driver(config_);
  ASSERT_TRUE(driver.start(sink_).has_value());
  Recorded r = sink_.snapshot();
  ASSERT_EQ(r.added.size(), 1u);
  ASSERT_EQ(r.states.size(), 1u);
  EXPECT_EQ(r.states[0].state, DeviceState::disconnected);
  EXPECT_NE(r.states[0].reason.find("No such file"), std::string::npos) << r.states[0].reason;
  auto w = driver.write("scanner0", "x");
  ASSERT_FALSE(w.has_value());
  EXPECT_EQ(w.error().code, Errc::unavailable);

  Pty pty;
  plug(pty);
  ASSERT_TRUE(sink_.wait([](const Recorded& r) { return last_state_is(r, DeviceState::ready); }));
  ASSERT_TRUE(pty.write_all("]d2late\r"));
  ASSERT_TRUE(sink_.wait_scans(1));
  EXPECT_EQ(sink_.snapshot().scans[0].symbology, "Data Matrix");
}

// REQ-22: garbage on the line never stalls the driver; the next frame is read.
TEST_F(SerialScannerPty, GarbageThenValidFrame) {
  Pty pty;
  plug(pty);
  config_.max_frame = 128;
  SerialScanner driver(config_);
  ASSERT_TRUE(driver.start(sink_).has_value());
  std::mt19937 rng(99);
  std::uniform_int_distribution<int> byte(0, 255);
  std::string garbage;
  for (int i = 0; i < 20000; ++i) garbage.push_back(static_cast<char>(byte(rng)));
  garbage += std::string(1000, 'G');  // over-long without a suffix
  ASSERT_TRUE(pty.write_all(garbage));
  ASSERT_TRUE(pty.write_all("\r]Q1valid\r"));
  ASSERT_TRUE(sink_.wait(
      [](const Recorded& r) { return !r.scans.empty() && r.scans.back().text == "valid"; }));
  Recorded r = sink_.snapshot();
  ASSERT_FALSE(r.faults.empty());
  for (const FaultData& f : r.faults) {
    EXPECT_EQ(f.code, "frame_too_long");
    EXPECT_EQ(f.message.find("GGG"), std::string::npos);
  }
  for (const ScanData& s : r.scans) EXPECT_LE(s.raw.size(), 128u);
}

TEST_F(SerialScannerPty, WriteReachesDevice) {
  Pty pty;
  plug(pty);
  SerialScanner driver(config_);
  ASSERT_TRUE(driver.start(sink_).has_value());
  const std::string command = "\x16M\rDEFALT.\n\0"s;
  auto n = driver.write("scanner0", command);
  ASSERT_TRUE(n.has_value()) << n.error().message();
  EXPECT_EQ(*n, command.size());
  EXPECT_EQ(pty.read_n(command.size()), command);  // raw output: no CR/LF mapping

  auto unknown = driver.write("scanner9", "x");
  ASSERT_FALSE(unknown.has_value());
  EXPECT_EQ(unknown.error().code, Errc::not_found);
}

TEST_F(SerialScannerPty, WriteFailsWhileDisconnected) {
  auto pty = std::make_unique<Pty>();
  plug(*pty);
  SerialScanner driver(config_);
  ASSERT_TRUE(driver.start(sink_).has_value());
  pty->close_master();
  ASSERT_TRUE(
      sink_.wait([](const Recorded& r) { return last_state_is(r, DeviceState::disconnected); }));
  auto w = driver.write("scanner0", "x");
  ASSERT_FALSE(w.has_value());
  EXPECT_EQ(w.error().code, Errc::unavailable);
}

TEST_F(SerialScannerPty, StopInterruptsBackoffAtOnce) {
  config_.reopen_min_ms = 60000;
  config_.reopen_max_ms = 60000;
  SerialScanner driver(config_);
  ASSERT_TRUE(driver.start(sink_).has_value());
  const auto t0 = std::chrono::steady_clock::now();
  driver.stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
  EXPECT_EQ(sink_.snapshot().removed.size(), 1u);
  driver.stop();  // idempotent
  EXPECT_EQ(sink_.snapshot().removed.size(), 1u);
}

TEST_F(SerialScannerPty, NotATerminalIsAnErrorState) {
  { std::ofstream(link_.string()) << "not a tty"; }
  SerialScanner driver(config_);
  ASSERT_TRUE(driver.start(sink_).has_value());
  Recorded r = sink_.snapshot();
  ASSERT_EQ(r.states.size(), 1u);
  EXPECT_EQ(r.states[0].state, DeviceState::error);
}

TEST(SerialScannerConfig, InvalidConfigFailsStart) {
  RecordingSink sink;
  SerialScannerConfig base;
  base.id = "scanner0";
  base.path = "/nonexistent/tty";
  auto expect_invalid = [&](SerialScannerConfig c) {
    SerialScanner driver(c);
    auto r = driver.start(sink);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code, Errc::invalid_argument);
  };
  SerialScannerConfig c = base;
  c.baud = 12345;
  expect_invalid(c);
  c = base;
  c.id = "";
  expect_invalid(c);
  c = base;
  c.path = "";
  expect_invalid(c);
  c = base;
  c.max_frame = 0;
  expect_invalid(c);
  c = base;
  c.reopen_min_ms = 500;
  c.reopen_max_ms = 100;
  expect_invalid(c);
  EXPECT_TRUE(sink.snapshot().added.empty());
  EXPECT_TRUE(SerialScanner::validate(base).has_value());
}

TEST(SerialScannerConfig, StartTwiceFails) {
  RecordingSink sink;
  SerialScannerConfig c;
  c.id = "scanner0";
  c.path = "/nonexistent/tty";
  SerialScanner driver(c);
  ASSERT_TRUE(driver.start(sink).has_value());
  auto again = driver.start(sink);
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code, Errc::failed_precondition);
}

}  // namespace
}  // namespace portier::drivers
