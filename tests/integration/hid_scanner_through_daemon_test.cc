// A HID POS scanner configured in portierd: recorded reports fed through a
// FIFO (no USB stack here; the driver's own tests cover hidraw details)
// reach an app as the same Scan events a serial scanner gives.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon_fixture.h"
#include "drivers/hid_scanner/hex_fixture.h"

namespace portier::test {
namespace {

// REQ-18: HID scanners are managed through the gateway like serial ones.
TEST(HidScannerThroughDaemonTest, ReportsArriveAsScans) {
  TempDir dir;
  const std::string fifo = dir.file("hidraw0");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  DaemonOptions o;
  o.policy = "version = 1\n" + runner_app() + runner_rule("*", "[\"*\"]");
  o.extra_config = "[[scanner]]\nid = \"scanner1\"\ntype = \"hid\"\nmode = \"hidpos\"\npath = \"" +
                   fifo + "\"\nreopen_min_ms = 10\nreopen_max_ms = 100\n";
  Daemon d(dir, o);
  ASSERT_TRUE(d.start()) << d.log();

  auto stub = d.connect();
  grpc::ClientContext ctx;
  v1::SubscribeRequest req;
  req.set_device_id("scanner1");
  auto reader = stub->Subscribe(&ctx, req);
  ASSERT_TRUE(wait_until([&] { return d.health().subscribers_size() == 1; }));

  // The driver holds the FIFO open for reading once it is "plugged in".
  int w = -1;
  ASSERT_TRUE(wait_until([&] {
    w = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    return w >= 0;
  }));
  auto reports = drivers::testing::load_hex_reports("ean13.hex");
  auto gb = drivers::testing::load_hex_reports("gb18030.hex");
  reports.insert(reports.end(), gb.begin(), gb.end());
  for (auto& r : reports) ASSERT_EQ(::write(w, r.data(), r.size()), static_cast<ssize_t>(r.size()));

  v1::PeripheralEvent ev;
  ASSERT_TRUE(reader->Read(&ev));
  EXPECT_EQ(ev.scan().text(), "4006381333931");
  EXPECT_EQ(ev.scan().symbology(), "EAN/UPC");
  ASSERT_TRUE(reader->Read(&ev));
  EXPECT_EQ(ev.scan().encoding(), "gb18030");
  EXPECT_FALSE(ev.scan().text().empty());
  ::close(w);
  ctx.TryCancel();
}

}  // namespace
}  // namespace portier::test
