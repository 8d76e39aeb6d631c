#include "simulated/simulated_scanner.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "drivers/recording_sink.h"

namespace portier::drivers {
namespace {

using testing::Recorded;
using testing::RecordingSink;

// REQ-22: the demo device goes through the real decoder, GB 18030 included.
TEST(SimulatedScanner, EmitsDecodedSampleScans) {
  RecordingSink sink;
  SimulatedScanner driver(SimulatedScannerConfig{"sim0", 5});
  ASSERT_TRUE(driver.start(sink).has_value());
  Recorded r = sink.snapshot();
  ASSERT_EQ(r.added.size(), 1u);
  EXPECT_EQ(r.added[0].driver, "simulated_scanner");
  EXPECT_EQ(r.added[0].device_class, "scanner");
  ASSERT_EQ(r.states.size(), 1u);
  EXPECT_EQ(r.states[0].state, DeviceState::ready);

  ASSERT_TRUE(sink.wait_scans(4));
  r = sink.snapshot();
  EXPECT_EQ(r.scans[0].symbology, "EAN/UPC");
  EXPECT_EQ(r.scans[0].aim_id, "]E0");
  EXPECT_EQ(r.scans[0].text, "4006381333931");
  EXPECT_EQ(r.scans[1].symbology, "QR Code");
  EXPECT_EQ(r.scans[1].text.rfind("https://", 0), 0u);
  EXPECT_EQ(r.scans[2].symbology, "Code 128");
  EXPECT_EQ(r.scans[3].symbology, "QR Code");
  EXPECT_EQ(r.scans[3].encoding, "gb18030");
  EXPECT_EQ(r.scans[3].text, "中文支付码（测试）");
  for (const ScanData& s : r.scans) EXPECT_FALSE(s.decode_error);

  EXPECT_EQ(driver.write("sim0", "cmd").value_or(0), 3u);
  EXPECT_EQ(driver.write("other", "cmd").error().code, Errc::not_found);
  driver.stop();
  EXPECT_EQ(sink.snapshot().removed.size(), 1u);
}

TEST(SimulatedScanner, StopReturnsPromptlyDuringLongInterval) {
  RecordingSink sink;
  SimulatedScanner driver(SimulatedScannerConfig{"sim0", 600000});
  ASSERT_TRUE(driver.start(sink).has_value());
  const auto t0 = std::chrono::steady_clock::now();
  driver.stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(500));
  EXPECT_TRUE(sink.snapshot().scans.empty());
}

TEST(SimulatedScanner, InvalidConfigFailsStart) {
  RecordingSink sink;
  SimulatedScanner no_id(SimulatedScannerConfig{"", 100});
  EXPECT_EQ(no_id.start(sink).error().code, Errc::invalid_argument);
  SimulatedScanner bad_interval(SimulatedScannerConfig{"sim0", 0});
  EXPECT_EQ(bad_interval.start(sink).error().code, Errc::invalid_argument);
}

}  // namespace
}  // namespace portier::drivers
