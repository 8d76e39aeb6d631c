// WatchDevices: existing devices first, then state changes and claims, each
// filtered by the caller's `watch` permission.
#include <gtest/gtest.h>

#include <memory>
#include <vector>

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

// Each open stream holds a server thread: one connection may open at most
// 16, so a client cannot starve other apps' calls of threads. Ending one
// frees its place; other connections are not affected.
TEST(WatchDevicesTest, StreamsPerConnectionAreCapped) {
  TempDir dir;
  DaemonOptions o;
  o.policy = "version = 1\n" + runner_app() + runner_rule("sim0", "[\"watch\", \"read\"]") +
             runner_rule("terminal", "[\"read\"]");
  o.extra_config = "[[scanner]]\nid = \"sim0\"\ntype = \"simulated\"\ninterval_ms = 60000\n";
  Daemon d(dir, o);
  ASSERT_TRUE(d.start()) << d.log();
  auto stub = d.connect();  // one connection for all the streams below
  struct Open {
    grpc::ClientContext ctx;
    std::unique_ptr<grpc::ClientReader<v1::DeviceChange>> reader;
  };
  std::vector<std::unique_ptr<Open>> open;
  v1::WatchDevicesRequest req;
  req.set_include_existing(true);
  for (int i = 0; i < 16; ++i) {
    auto s = std::make_unique<Open>();
    s->reader = stub->WatchDevices(&s->ctx, req);
    v1::DeviceChange ch;
    ASSERT_TRUE(s->reader->Read(&ch)) << "stream " << i;  // EXISTING sim0: it is open
    open.push_back(std::move(s));
  }
  {
    grpc::ClientContext ctx;
    auto reader = stub->WatchDevices(&ctx, req);
    v1::DeviceChange ch;
    EXPECT_FALSE(reader->Read(&ch));
    auto st = reader->Finish();
    EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
    EXPECT_NE(st.error_message().find("16 open streams"), std::string::npos) << st.error_message();
  }
  // Unary calls and other connections still work.
  EXPECT_EQ(d.health().devices_size() > 0, true);
  {
    auto other = d.connect();
    grpc::ClientContext ctx;
    auto reader = other->WatchDevices(&ctx, req);
    v1::DeviceChange ch;
    EXPECT_TRUE(reader->Read(&ch));
    ctx.TryCancel();
    reader->Finish();
  }
  // Ending one stream frees its place on this connection.
  open.back()->ctx.TryCancel();
  open.back()->reader->Finish();
  open.pop_back();
  EXPECT_TRUE(wait_until([&] {
    grpc::ClientContext ctx;
    auto reader = stub->WatchDevices(&ctx, req);
    v1::DeviceChange ch;
    const bool ok = reader->Read(&ch);
    ctx.TryCancel();
    reader->Finish();
    return ok;
  }));
  for (auto& s : open) s->ctx.TryCancel();
  for (auto& s : open) s->reader->Finish();
}

}  // namespace
}  // namespace portier::test
