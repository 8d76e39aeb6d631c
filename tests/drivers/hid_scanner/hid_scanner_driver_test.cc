// HidScannerDriver reading a FIFO in a per-test temp dir the way it reads
// /dev/hidrawN or /dev/input/eventN: the test writes recorded reports (or
// input_event records) into the FIFO. Closing the writer is an unplug;
// removing and re-creating the FIFO is a device that goes and comes back.
#include "hid_scanner/hid_scanner_driver.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/input.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "drivers/hid_scanner/hex_fixture.h"
#include "drivers/recording_sink.h"

namespace portier::drivers {
namespace {

using testing::concat;
using testing::load_hex_reports;
using testing::Recorded;
using testing::RecordingSink;
namespace fs = std::filesystem;

constexpr auto kIoDeadline = std::chrono::seconds(10);

// The scanner's end of the FIFO.
class FifoWriter {
 public:
  // Opens without blocking; fails (ENXIO) when no reader has the FIFO open.
  explicit FifoWriter(const fs::path& path)
      : fd_(::open(path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC)), errno_(errno) {}
  ~FifoWriter() { close(); }
  FifoWriter(const FifoWriter&) = delete;
  FifoWriter& operator=(const FifoWriter&) = delete;

  bool ok() const { return fd_ >= 0; }
  int open_errno() const { return errno_; }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  ::testing::AssertionResult write_all(std::string_view data) {
    const auto deadline = std::chrono::steady_clock::now() + kIoDeadline;
    while (!data.empty()) {
      const ssize_t n = ::write(fd_, data.data(), data.size());
      if (n > 0) {
        data.remove_prefix(static_cast<std::size_t>(n));
        continue;
      }
      if (n < 0 && errno != EAGAIN && errno != EINTR) {
        return ::testing::AssertionFailure() << "write to FIFO: " << std::strerror(errno);
      }
      if (std::chrono::steady_clock::now() > deadline) {
        return ::testing::AssertionFailure() << "FIFO write timed out";
      }
      pollfd p{fd_, POLLOUT, 0};
      ::poll(&p, 1, 100);
    }
    return ::testing::AssertionSuccess();
  }

 private:
  int fd_;
  int errno_;
};

// Key events as the evdev node delivers them: struct input_event records.
class KeyStream {
 public:
  void event(std::uint16_t type, std::uint16_t code, std::int32_t value) {
    input_event ev{};
    ev.type = type;
    ev.code = code;
    ev.value = value;
    bytes.append(reinterpret_cast<const char*>(&ev), sizeof ev);
  }
  void tap(std::uint16_t code) {
    event(EV_KEY, code, 1);
    event(EV_SYN, SYN_REPORT, 0);
    event(EV_KEY, code, 0);
    event(EV_SYN, SYN_REPORT, 0);
  }
  void with(std::uint16_t modifier, std::uint16_t code) {
    event(EV_KEY, modifier, 1);
    tap(code);
    event(EV_KEY, modifier, 0);
  }
  std::string bytes;
};

class HidScannerFifo : public ::testing::Test {
 protected:
  void SetUp() override {
    ::signal(SIGPIPE, SIG_IGN);  // a write after the driver closed must not kill the test
    std::string tmpl = (fs::temp_directory_path() / "portier-hid-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr) << std::strerror(errno);
    dir_ = tmpl;
    fifo_ = dir_ / "hidraw";
    config_.id = "scanner1";
    config_.path = fifo_.string();
    config_.reopen_min_ms = 10;
    config_.reopen_max_ms = 100;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  void make_fifo() { ASSERT_EQ(::mkfifo(fifo_.c_str(), 0600), 0) << std::strerror(errno); }

  static bool last_state_is(const Recorded& r, DeviceState s) {
    return !r.states.empty() && r.states.back().state == s;
  }

  fs::path dir_;
  fs::path fifo_;
  HidScannerConfig config_;
  RecordingSink sink_;
};

// Recorded HID POS reports become ScanData with symbology
// and GB 18030 text, a malformed report becomes a fault, nothing stalls.
// REQ-18 REQ-22
TEST_F(HidScannerFifo, HidPosReportsBecomeScansWithSymbology) {
  make_fifo();
  HidScannerDriver driver(config_);
  ASSERT_TRUE(driver.start(sink_).has_value());
  Recorded r = sink_.snapshot();
  ASSERT_EQ(r.added.size(), 1u);
  EXPECT_EQ(r.added[0].id, "scanner1");
  EXPECT_EQ(r.added[0].device_class, "scanner");
  EXPECT_EQ(r.added[0].driver, "hid_scanner");
  EXPECT_EQ(r.added[0].capabilities, (std::vector<std::string>{"events"}));
  EXPECT_EQ(r.added[0].attributes.at("mode"), "hidpos");
  EXPECT_EQ(r.added[0].attributes.at("path"), config_.path);
  ASSERT_EQ(r.states.size(), 1u);
  EXPECT_EQ(r.states[0].state, DeviceState::ready);

  FifoWriter w(fifo_);
  ASSERT_TRUE(w.ok()) << std::strerror(w.open_errno());
  // Cut at odd offsets: the driver reassembles 64-byte reports from a stream.
  const std::string session = concat(load_hex_reports("session.hex"));
  for (std::size_t at = 0; at < session.size(); at += 37) {
    ASSERT_TRUE(w.write_all(std::string_view(session).substr(at, 37)));
  }
  ASSERT_TRUE(
      sink_.wait([](const Recorded& r) { return r.scans.size() >= 4 && !r.faults.empty(); }));
  r = sink_.snapshot();
  ASSERT_EQ(r.scans.size(), 4u);
  EXPECT_EQ(r.scans[0].symbology, "QR Code");
  EXPECT_EQ(r.scans[0].aim_id, "]Q1");
  EXPECT_EQ(r.scans[0].text, "PORTIER-QR-0001");
  EXPECT_EQ(r.scans[0].encoding, "utf-8");
  EXPECT_EQ(r.scans[1].text.size(), 130u);
  EXPECT_EQ(r.scans[2].symbology, "EAN/UPC");
  EXPECT_EQ(r.scans[2].text, "4006381333931");
  EXPECT_EQ(r.scans[3].text, "中文支付码");
  EXPECT_EQ(r.scans[3].encoding, "gb18030");
  ASSERT_EQ(r.faults.size(), 1u);
  EXPECT_EQ(r.faults[0].code, "malformed_report");
  EXPECT_EQ(r.faults[0].message.find("XXXX"), std::string::npos);

  driver.stop();
  EXPECT_EQ(sink_.snapshot().removed, (std::vector<std::string>{"scanner1"}));
}

// The grab is what keeps a keyboard-wedge scanner's digits from reaching
// other apps as keystrokes: where it cannot be taken, nothing is read.
// REQ-18
TEST_F(HidScannerFifo, KeyboardModeWithGrabOnFifoIsCannotGrabError) {
  make_fifo();
  config_.mode = "keyboard";
  config_.grab = true;
  config_.reopen_min_ms = 60000;  // no retry during the test
  config_.reopen_max_ms = 60000;
  HidScannerDriver driver(config_);
  ASSERT_TRUE(driver.start(sink_).has_value());
  Recorded r = sink_.snapshot();
  ASSERT_EQ(r.states.size(), 1u);
  EXPECT_EQ(r.states[0].state, DeviceState::error);
  EXPECT_NE(r.states[0].reason.find("cannot grab"), std::string::npos) << r.states[0].reason;
  EXPECT_EQ(r.added.at(0).attributes.at("grab"), "true");
  // The driver did not keep the FIFO open: no reader, so no keystroke can be
  // consumed (a writer cannot even connect).
  FifoWriter w(fifo_);
  EXPECT_FALSE(w.ok());
  EXPECT_EQ(w.open_errno(), ENXIO);
}

// With grab = false (test FIFO only) key events flow as scans.
// REQ-18
TEST_F(HidScannerFifo, KeyboardModeWithoutGrabOnFifoScansFlow) {
  make_fifo();
  config_.mode = "keyboard";
  config_.grab = false;
  config_.layout = "de";
  HidScannerDriver driver(config_);
  ASSERT_TRUE(driver.start(sink_).has_value());
  ASSERT_TRUE(sink_.wait([](const Recorded& r) { return last_state_is(r, DeviceState::ready); }));
  EXPECT_EQ(sink_.snapshot().added.at(0).attributes.at("layout"), "de");

  KeyStream keys;
  keys.with(KEY_RIGHTALT, KEY_9);  // ] on QWERTZ
  keys.with(KEY_LEFTSHIFT, KEY_E);
  for (auto code : {KEY_0, KEY_4, KEY_0, KEY_0, KEY_6, KEY_3, KEY_8, KEY_1, KEY_3, KEY_3, KEY_3,
                    KEY_9, KEY_3, KEY_1}) {
    keys.tap(static_cast<std::uint16_t>(code));
  }
  keys.tap(KEY_ENTER);
  keys.tap(KEY_Y);  // z on QWERTZ
  keys.tap(KEY_F5);
  keys.tap(KEY_ENTER);
  keys.tap(KEY_Z);  // y on QWERTZ
  keys.tap(KEY_LEFTBRACE);
  keys.tap(KEY_ENTER);

  FifoWriter w(fifo_);
  ASSERT_TRUE(w.ok()) << std::strerror(w.open_errno());
  for (std::size_t at = 0; at < keys.bytes.size(); at += 50) {
    ASSERT_TRUE(w.write_all(std::string_view(keys.bytes).substr(at, 50)));
  }
  ASSERT_TRUE(sink_.wait_scans(2));
  Recorded r = sink_.snapshot();
  ASSERT_EQ(r.scans.size(), 2u);
  EXPECT_EQ(r.scans[0].symbology, "EAN/UPC");
  EXPECT_EQ(r.scans[0].aim_id, "]E0");
  EXPECT_EQ(r.scans[0].text, "4006381333931");
  EXPECT_EQ(r.scans[0].encoding, "utf-8");
  EXPECT_EQ(r.scans[1].text, "yü");
  EXPECT_EQ(r.scans[1].symbology, "");
  ASSERT_EQ(r.faults.size(), 1u);
  EXPECT_EQ(r.faults[0].code, "unknown_key");
}

// Unplug: the writer closes (EOF) -> disconnected once; the node comes back
// -> ready; a scan cut by the unplug is not delivered as a scan.
// REQ-18
TEST_F(HidScannerFifo, UnplugThenReplugResumesScans) {
  make_fifo();
  HidScannerDriver driver(config_);
  ASSERT_TRUE(driver.start(sink_).has_value());
  auto w = std::make_unique<FifoWriter>(fifo_);
  ASSERT_TRUE(w->ok());
  ASSERT_TRUE(w->write_all(concat(load_hex_reports("qr_single.hex"))));
  ASSERT_TRUE(sink_.wait_scans(1));
  // The first report of a multi-report scan, then the device vanishes.
  ASSERT_TRUE(w->write_all(load_hex_reports("multi_report.hex").at(0)));
  ASSERT_EQ(::unlink(fifo_.c_str()), 0);
  w->close();
  ASSERT_TRUE(
      sink_.wait([](const Recorded& r) { return last_state_is(r, DeviceState::disconnected); }));

  make_fifo();
  ASSERT_TRUE(sink_.wait([](const Recorded& r) { return last_state_is(r, DeviceState::ready); }));
  w = std::make_unique<FifoWriter>(fifo_);
  ASSERT_TRUE(w->ok()) << std::strerror(w->open_errno());
  ASSERT_TRUE(w->write_all(concat(load_hex_reports("ean13.hex"))));
  ASSERT_TRUE(sink_.wait_scans(2));

  Recorded r = sink_.snapshot();
  ASSERT_EQ(r.scans.size(), 2u);
  EXPECT_EQ(r.scans[1].text, "4006381333931");  // nothing of the cut scan
  EXPECT_TRUE(r.faults.empty());
  // Exactly one disconnected report despite failed reopen attempts.
  ASSERT_EQ(r.states.size(), 3u);
  EXPECT_EQ(r.states[0].state, DeviceState::ready);
  EXPECT_EQ(r.states[1].state, DeviceState::disconnected);
  EXPECT_FALSE(r.states[1].reason.empty());
  EXPECT_EQ(r.states[2].state, DeviceState::ready);
}

// The writer closing while the node stays is an unplug too; the driver
// reopens the node and scans flow again.
// REQ-18
TEST_F(HidScannerFifo, WriterClosesThenReconnects) {
  make_fifo();
  HidScannerDriver driver(config_);
  ASSERT_TRUE(driver.start(sink_).has_value());
  {
    FifoWriter w(fifo_);
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE(w.write_all(concat(load_hex_reports("qr_single.hex"))));
    ASSERT_TRUE(sink_.wait_scans(1));
  }
  ASSERT_TRUE(sink_.wait([](const Recorded& r) {
    return r.states.size() >= 3 && r.states[1].state == DeviceState::disconnected &&
           r.states[2].state == DeviceState::ready;
  }));
  FifoWriter w(fifo_);
  ASSERT_TRUE(w.ok()) << std::strerror(w.open_errno());
  ASSERT_TRUE(w.write_all(concat(load_hex_reports("gb18030.hex"))));
  ASSERT_TRUE(sink_.wait_scans(2));
  EXPECT_EQ(sink_.snapshot().scans[1].text, "中文支付码");
}

// REQ-18
TEST_F(HidScannerFifo, StartsDisconnectedWhenPathMissingThenBecomesReady) {
  HidScannerDriver driver(config_);
  ASSERT_TRUE(driver.start(sink_).has_value());
  Recorded r = sink_.snapshot();
  ASSERT_EQ(r.states.size(), 1u);
  EXPECT_EQ(r.states[0].state, DeviceState::disconnected);
  EXPECT_NE(r.states[0].reason.find("No such file"), std::string::npos) << r.states[0].reason;
  make_fifo();
  ASSERT_TRUE(sink_.wait([](const Recorded& r) { return last_state_is(r, DeviceState::ready); }));
  FifoWriter w(fifo_);
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE(w.write_all(concat(load_hex_reports("exact_112.hex"))));
  ASSERT_TRUE(sink_.wait_scans(1));
  EXPECT_EQ(sink_.snapshot().scans[0].symbology, "Data Matrix");
}

TEST_F(HidScannerFifo, NotAFifoFileOrDeviceIsAnErrorState) {
  fs::create_directory(fifo_);
  HidScannerDriver driver(config_);
  ASSERT_TRUE(driver.start(sink_).has_value());
  Recorded r = sink_.snapshot();
  ASSERT_EQ(r.states.size(), 1u);
  EXPECT_EQ(r.states[0].state, DeviceState::error);
}

// A pinned identity that cannot be verified is never read from.
// REQ-4
TEST_F(HidScannerFifo, PinnedIdentityOnAFifoIsAnErrorState) {
  make_fifo();
  config_.vendor = 0x0c2e;
  config_.product = 0x0b8f;
  HidScannerDriver driver(config_);
  ASSERT_TRUE(driver.start(sink_).has_value());
  Recorded r = sink_.snapshot();
  ASSERT_EQ(r.states.size(), 1u);
  EXPECT_EQ(r.states[0].state, DeviceState::error);
  EXPECT_NE(r.states[0].reason.find("pinned identity"), std::string::npos);
  EXPECT_EQ(r.added.at(0).attributes.at("vendor"), "0c2e");
  EXPECT_EQ(r.added.at(0).attributes.at("product"), "0b8f");
}

// REQ-12
TEST_F(HidScannerFifo, SelfTest) {
  make_fifo();
  {
    HidScannerDriver driver(config_);
    const auto t0 = std::chrono::steady_clock::now();
    auto results = driver.self_test();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
    ASSERT_EQ(results.size(), 1u);
    EXPECT_EQ(results[0].device_id, "scanner1");
    EXPECT_TRUE(results[0].present);
    EXPECT_TRUE(results[0].responding);
    EXPECT_TRUE(results[0].identity_ok);
    EXPECT_TRUE(results[0].passed()) << results[0].detail;
  }
  {
    // While the driver runs, self_test opens its own descriptor.
    HidScannerDriver driver(config_);
    ASSERT_TRUE(driver.start(sink_).has_value());
    EXPECT_TRUE(driver.self_test().at(0).passed());
  }
  {
    HidScannerConfig pinned = config_;
    pinned.vendor = 0x0c2e;
    auto results = HidScannerDriver(pinned).self_test();
    ASSERT_EQ(results.size(), 1u);
    EXPECT_TRUE(results[0].present);
    EXPECT_FALSE(results[0].identity_ok);
    EXPECT_FALSE(results[0].passed());
    EXPECT_FALSE(results[0].detail.empty());
  }
  {
    HidScannerConfig missing = config_;
    missing.path = (dir_ / "absent").string();
    auto results = HidScannerDriver(missing).self_test();
    ASSERT_EQ(results.size(), 1u);
    EXPECT_FALSE(results[0].present);
    EXPECT_FALSE(results[0].passed());
    EXPECT_NE(results[0].detail.find("No such file"), std::string::npos) << results[0].detail;
  }
}

TEST_F(HidScannerFifo, StopInterruptsBackoffAtOnce) {
  config_.reopen_min_ms = 60000;
  config_.reopen_max_ms = 60000;
  HidScannerDriver driver(config_);
  ASSERT_TRUE(driver.start(sink_).has_value());
  const auto t0 = std::chrono::steady_clock::now();
  driver.stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
  EXPECT_EQ(sink_.snapshot().removed.size(), 1u);
  driver.stop();  // idempotent
  EXPECT_EQ(sink_.snapshot().removed.size(), 1u);
}

TEST_F(HidScannerFifo, StopWhileReadingIsPrompt) {
  make_fifo();
  HidScannerDriver driver(config_);
  ASSERT_TRUE(driver.start(sink_).has_value());
  FifoWriter w(fifo_);
  ASSERT_TRUE(w.ok());
  const auto t0 = std::chrono::steady_clock::now();
  driver.stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
}

TEST(HidScannerConfigTest, InvalidConfigFailsStart) {
  RecordingSink sink;
  HidScannerConfig base;
  base.id = "scanner1";
  base.path = "/nonexistent/hidraw";
  auto expect_invalid = [&](HidScannerConfig c) {
    HidScannerDriver driver(c);
    auto r = driver.start(sink);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code, Errc::invalid_argument);
  };
  HidScannerConfig c = base;
  c.mode = "serial";
  expect_invalid(c);
  c = base;
  c.layout = "uk";
  expect_invalid(c);
  c = base;
  c.encoding = "latin1";
  expect_invalid(c);
  c = base;
  c.mode = "keyboard";
  c.encoding = "gb18030";
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
  c = base;
  c.product = 0x1234;
  expect_invalid(c);
  EXPECT_TRUE(sink.snapshot().added.empty());
  EXPECT_TRUE(HidScannerDriver::validate(base).has_value());
}

TEST(HidScannerConfigTest, StartTwiceFailsAndWriteIsRefused) {
  RecordingSink sink;
  HidScannerConfig c;
  c.id = "scanner1";
  c.path = "/nonexistent/hidraw";
  HidScannerDriver driver(c);
  ASSERT_TRUE(driver.start(sink).has_value());
  auto again = driver.start(sink);
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code, Errc::failed_precondition);
  auto w = driver.write("scanner1", "x");
  ASSERT_FALSE(w.has_value());
  EXPECT_EQ(w.error().code, Errc::failed_precondition);
  auto unknown = driver.write("scanner9", "x");
  ASSERT_FALSE(unknown.has_value());
  EXPECT_EQ(unknown.error().code, Errc::not_found);
}

}  // namespace
}  // namespace portier::drivers
