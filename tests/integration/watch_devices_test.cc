// WatchDevices: existing devices first, then state changes and claims, each
// filtered by the caller's `watch` permission.
#include <gtest/gtest.h>

#include "daemon_fixture.h"

namespace portier::test {
namespace {

// REQ-18: device monitoring through the gateway, per-app.
TEST(WatchDevicesTest, ExistingThenChangesOnlyForWatchableDevices) {
  TempDir dir;
  Pty pty(dir.file("ttyACM0"));
  DaemonOptions o;
  o.policy = "version = 1\n" + runner_app() + runner_rule("scanner0", "[\"watch\", \"claim\"]") +
             runner_rule("terminal", "[\"read\"]");
  o.extra_config = "[[scanner]]\nid = \"scanner0\"\ntype = \"serial\"\npath = \"" + pty.link() +
                   "\"\nreopen_min_ms = 10\nreopen_max_ms = 50\n"
                   "[[scanner]]\nid = \"sim0\"\ntype = \"simulated\"\ninterval_ms = 1000\n";
  Daemon d(dir, o);
  ASSERT_TRUE(d.start()) << d.log();

  auto stub = d.connect();
  grpc::ClientContext ctx;
  v1::WatchDevicesRequest req;
  req.set_include_existing(true);
  auto reader = stub->WatchDevices(&ctx, req);
  v1::DeviceChange ch;
  ASSERT_TRUE(reader->Read(&ch));
  EXPECT_EQ(ch.kind(), v1::DeviceChange::EXISTING);
  EXPECT_EQ(ch.device().id(), "scanner0");  // sim0 and terminal are not watchable

  pty.close_master();
  ASSERT_TRUE(reader->Read(&ch));
  EXPECT_EQ(ch.kind(), v1::DeviceChange::STATE_CHANGED);
  EXPECT_EQ(ch.device().id(), "scanner0");
  EXPECT_EQ(ch.device().state(), v1::DEVICE_STATE_DISCONNECTED);
  EXPECT_FALSE(ch.device().state_reason().empty());

  pty.reopen();
  ASSERT_TRUE(reader->Read(&ch));
  EXPECT_EQ(ch.device().state(), v1::DEVICE_STATE_READY);

  auto other = d.connect();
  grpc::ClientContext cctx;
  v1::ClaimRequest cr;
  cr.set_device_id("scanner0");
  cr.set_seconds(30);
  v1::ClaimResponse resp;
  ASSERT_TRUE(other->Claim(&cctx, cr, &resp).ok());
  ASSERT_TRUE(reader->Read(&ch));
  EXPECT_EQ(ch.device().claimed_by(), "test-runner");
  ctx.TryCancel();
}

}  // namespace
}  // namespace portier::test
