// Event fan-out from a real serial scanner (a pty) through the daemon: a
// stuck subscriber loses only its own events, counted and visible in the
// health report, while a subscriber that keeps up loses none.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "daemon_fixture.h"

namespace portier::test {
namespace {

class FanoutTest : public ::testing::Test {
 protected:
  void start(const std::string& queue = "16", const std::string& scanner_extra = "") {
    pty_ = std::make_unique<Pty>(dir_.file("ttyACM0"));
    DaemonOptions o;
    o.policy = "version = 1\n" + runner_app() + "[[app]]\nname = \"ctl\"\nuid = 0\nexe = \"" +
               bin("portierctl") + "\"\n" + runner_rule("*", "[\"*\"]") +
               "[[rule]]\napp = \"ctl\"\ndevice = \"scanner0\"\nops = [\"read\"]\n";
    o.subscriber_queue = queue;
    o.extra_config = "[[scanner]]\nid = \"scanner0\"\ntype = \"serial\"\npath = \"" + pty_->link() +
                     "\"\nsuffix = \"CR\"\naim = true\n" + scanner_extra;
    daemon_ = std::make_unique<Daemon>(dir_, o);
    ASSERT_TRUE(daemon_->start()) << daemon_->log();
    ASSERT_TRUE(wait_until([&] { return device_state() == v1::DEVICE_STATE_READY; }));
  }

  v1::DeviceState device_state() {
    auto h = daemon_->health();
    for (auto& d : h.devices()) {
      if (d.id() == "scanner0") return d.state();
    }
    return v1::DEVICE_STATE_UNSPECIFIED;
  }

  int subscribers() { return daemon_->health().subscribers_size(); }

  // Subscribes to scanner0 and waits until the daemon counts `expected` subscribers.
  std::unique_ptr<grpc::ClientReader<v1::PeripheralEvent>> subscribe(v1::Gateway::Stub& stub,
                                                                     grpc::ClientContext& ctx,
                                                                     int expected) {
    v1::SubscribeRequest req;
    req.set_device_id("scanner0");
    auto reader = stub.Subscribe(&ctx, req);
    EXPECT_TRUE(wait_until([&] { return subscribers() == expected; }));
    return reader;
  }

  TempDir dir_;
  std::unique_ptr<Pty> pty_;
  std::unique_ptr<Daemon> daemon_;
};

// REQ-18: a slow subscriber never delays the others and loses only its own events.
TEST_F(FanoutTest, StuckSubscriberLosesOnlyItsOwnEvents) {
  start("16");
  Child stuck({bin("portierctl"), "--socket", daemon_->socket(), "watch", "--device", "scanner0"});
  ASSERT_TRUE(wait_until([&] { return subscribers() == 1; })) << daemon_->log();
  stuck.signal(SIGSTOP);  // it stops reading its socket

  auto stub = daemon_->connect();
  grpc::ClientContext ctx;
  v1::SubscribeRequest req;
  req.set_device_id("scanner0");
  auto reader = stub->Subscribe(&ctx, req);
  ASSERT_TRUE(wait_until([&] { return subscribers() == 2; }));

  constexpr int kScans = 5000, kBatch = 8;  // a batch fits the fast subscriber's queue
  std::vector<std::uint64_t> seqs;
  std::atomic<std::size_t> received{0};
  std::uint64_t max_dropped = 0;
  std::thread fast([&] {
    v1::PeripheralEvent ev;
    while (seqs.size() < kScans && reader->Read(&ev)) {
      seqs.push_back(ev.sequence());
      max_dropped = std::max(max_dropped, ev.dropped());
      EXPECT_EQ(ev.scan().text(), "PAY-" + std::to_string(seqs.size()));
      received = seqs.size();
    }
  });
  // The fast subscriber keeps up: each batch is read before the next is
  // written. The stuck one reads nothing and must overflow.
  for (int i = 1; i <= kScans; i += kBatch) {
    std::string batch;
    for (int j = i; j < i + kBatch && j <= kScans; ++j)
      batch += "]Q1PAY-" + std::to_string(j) + "\r";
    pty_->write(batch);
    std::size_t want = static_cast<std::size_t>(std::min(i + kBatch - 1, kScans));
    ASSERT_TRUE(wait_until([&] { return received >= want; }))
        << "fast subscriber stalled at " << received;
  }
  fast.join();
  ctx.TryCancel();

  ASSERT_EQ(seqs.size(), static_cast<std::size_t>(kScans));
  for (int i = 0; i < kScans; ++i) ASSERT_EQ(seqs[i], static_cast<std::uint64_t>(i + 1));
  EXPECT_EQ(max_dropped, 0u);

  bool seen = false;
  auto h = daemon_->health();
  for (auto& s : h.subscribers()) {
    if (s.pid() == static_cast<std::uint32_t>(stuck.pid())) {
      seen = true;
      EXPECT_GT(s.dropped(), 0u) << "the stuck subscriber should have lost events";
      EXPECT_LE(s.queued(), 16u);
    }
  }
  EXPECT_TRUE(seen);
}

// REQ-22: GB 18030 text from a domestic scanner arrives as raw bytes and UTF-8 text.
TEST_F(FanoutTest, Gb18030ScanArrivesDecoded) {
  start();
  auto stub = daemon_->connect();
  grpc::ClientContext ctx;
  auto reader = subscribe(*stub, ctx, 1);
  const std::string gb = "\xd6\xd0\xce\xc4\xd6\xa7\xb8\xb6";  // 中文支付 in GB 18030
  pty_->write("]Q1" + gb + "\r]E04006381333931\r");
  v1::PeripheralEvent ev;
  ASSERT_TRUE(reader->Read(&ev));
  EXPECT_EQ(ev.scan().raw(), gb);
  EXPECT_EQ(ev.scan().text(), "中文支付");
  EXPECT_EQ(ev.scan().encoding(), "gb18030");
  EXPECT_EQ(ev.scan().symbology(), "QR Code");
  EXPECT_EQ(ev.scan().aim_id(), "]Q1");
  ASSERT_TRUE(reader->Read(&ev));
  EXPECT_EQ(ev.scan().text(), "4006381333931");
  EXPECT_EQ(ev.scan().symbology(), "EAN/UPC");
  ctx.TryCancel();
}

// REQ-22: garbage, over-long frames and undecodable bytes do not stop the
// scanner or the daemon; the next good frame arrives.
TEST_F(FanoutTest, MalformedScannerBytesAreSurvived) {
  start("256", "max_frame = 64\nencoding = \"utf-8\"\n");
  auto stub = daemon_->connect();
  grpc::ClientContext ctx;
  auto reader = subscribe(*stub, ctx, 1);

  std::string garbage;
  std::uint32_t x = 12345;
  for (int i = 0; i < 20000; ++i) {
    x = x * 1103515245u + 12345u;
    char c = static_cast<char>(x >> 16);
    garbage += c == '\r' ? 'x' : c;  // no frame ends inside: one over-long frame
  }
  pty_->write(garbage + "\r");
  pty_->write(std::string("]Q1\xff\xfe\x00zz", 8) + "\r");  // invalid UTF-8 with a NUL
  pty_->write("]C1GOOD-123\r");

  v1::PeripheralEvent ev;
  bool fault = false, binary = false, good = false;
  while (!good && reader->Read(&ev)) {
    if (ev.has_fault() && ev.fault().code() == "frame_too_long") fault = true;
    if (ev.has_scan() && ev.scan().decode_error()) {
      binary = true;
      EXPECT_EQ(ev.scan().raw(), std::string("\xff\xfe\x00zz", 5));
      EXPECT_EQ(ev.scan().encoding(), "binary");
    }
    if (ev.has_scan() && ev.scan().text() == "GOOD-123") good = true;
  }
  EXPECT_TRUE(fault);
  EXPECT_TRUE(binary);
  EXPECT_TRUE(good);
  EXPECT_TRUE(daemon_->alive());
  ctx.TryCancel();
}

// The scanner is unplugged and plugged in again: state follows, scans resume.
TEST_F(FanoutTest, ScannerComesBackAfterUnplug) {
  start("256", "reopen_min_ms = 10\nreopen_max_ms = 100\n");
  pty_->close_master();
  ASSERT_TRUE(wait_until([&] { return device_state() == v1::DEVICE_STATE_DISCONNECTED; }));
  auto h = daemon_->health();
  EXPECT_EQ(h.state(), v1::Health::DEGRADED);
  pty_->reopen();
  ASSERT_TRUE(wait_until([&] { return device_state() == v1::DEVICE_STATE_READY; }));

  auto stub = daemon_->connect();
  grpc::ClientContext ctx;
  auto reader = subscribe(*stub, ctx, 1);
  pty_->write("]E04006381333931\r");
  v1::PeripheralEvent ev;
  ASSERT_TRUE(reader->Read(&ev));
  EXPECT_EQ(ev.scan().text(), "4006381333931");
  ctx.TryCancel();
}

// REQ-21: scanned payloads never reach the daemon's log or the audit log,
// even at debug level.
TEST_F(FanoutTest, PayloadsNeverReachTheLogs) {
  pty_ = nullptr;
  start();
  auto stub = daemon_->connect();
  grpc::ClientContext ctx;
  auto reader = subscribe(*stub, ctx, 1);
  const std::string pan = "6222021234567890123";  // card-number-like payment code
  pty_->write("]Q1" + pan + "\r");
  v1::PeripheralEvent ev;
  ASSERT_TRUE(reader->Read(&ev));
  ASSERT_EQ(ev.scan().text(), pan);
  // A claim and a denial produce log and audit lines around the scan.
  grpc::ClientContext c2;
  v1::ClaimRequest cr;
  cr.set_device_id("scanner0");
  cr.set_seconds(1);
  v1::ClaimResponse resp;
  ASSERT_TRUE(stub->Claim(&c2, cr, &resp).ok());
  ASSERT_TRUE(daemon_->audit_has("\"op\":\"claim\""));
  ctx.TryCancel();
  EXPECT_EQ(daemon_->stop(), 0);
  EXPECT_EQ(daemon_->log().find(pan), std::string::npos);
  EXPECT_EQ(daemon_->audit().find(pan), std::string::npos);
  EXPECT_EQ(daemon_->log().find("62220212"), std::string::npos);
}

}  // namespace
}  // namespace portier::test
