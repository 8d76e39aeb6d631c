// Claims with leases: exclusive, answered at once, taken back on expiry,
// release and disconnect; a claimed device's events reach only the claimant.
#include <gtest/gtest.h>

#include <thread>

#include "daemon_fixture.h"

namespace portier::test {
namespace {

class LeaseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    DaemonOptions o;
    o.policy = "version = 1\n" + runner_app() + runner_rule("*", "[\"*\"]");
    o.max_lease_seconds = "60";
    o.extra_config = "[[scanner]]\nid = \"sim0\"\ntype = \"simulated\"\ninterval_ms = 20\n";
    daemon_ = std::make_unique<Daemon>(dir_, o);
    ASSERT_TRUE(daemon_->start()) << daemon_->log();
  }

  grpc::Status claim(v1::Gateway::Stub& s, std::uint32_t seconds, v1::Lease* lease = nullptr) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 5s);
    v1::ClaimRequest req;
    req.set_device_id("sim0");
    req.set_seconds(seconds);
    v1::ClaimResponse resp;
    auto st = s.Claim(&ctx, req, &resp);
    if (lease) *lease = resp.lease();
    return st;
  }

  std::string claimed_by() {
    auto h = daemon_->health();
    for (auto& d : h.devices()) {
      if (d.id() == "sim0") return d.claimed_by();
    }
    return "?";
  }

  TempDir dir_;
  std::unique_ptr<Daemon> daemon_;
};

TEST_F(LeaseTest, SecondClaimIsAnsweredAtOnceNamingTheHolder) {
  auto a = daemon_->connect();
  auto b = daemon_->connect();
  ASSERT_TRUE(claim(*a, 30).ok());
  auto t0 = std::chrono::steady_clock::now();
  auto st = claim(*b, 30);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_NE(st.error_message().find("claimed by app 'test-runner'"), std::string::npos)
      << st.error_message();
  // Answered, not queued: far below the 30 s the lease still runs.
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  EXPECT_TRUE(daemon_->audit_has("\"event\":\"claim\""));
}

TEST_F(LeaseTest, LeaseExpiresAndTheDeviceIsFreeAgain) {
  auto a = daemon_->connect();
  auto b = daemon_->connect();
  ASSERT_TRUE(claim(*a, 1).ok());
  EXPECT_EQ(claimed_by(), "test-runner");
  EXPECT_TRUE(wait_until([&] { return claimed_by().empty(); }, 10s));
  EXPECT_TRUE(claim(*b, 5).ok());
  EXPECT_TRUE(daemon_->audit_has("\"event\":\"lease_expired\""));
}

TEST_F(LeaseTest, DisconnectReleasesTheLease) {
  auto b = daemon_->connect();
  {
    auto a = daemon_->connect();
    ASSERT_TRUE(claim(*a, 60).ok());
    ASSERT_EQ(claim(*b, 60).error_code(), grpc::StatusCode::ALREADY_EXISTS);
  }  // a's channel and connection go away
  EXPECT_TRUE(wait_until([&] { return claim(*b, 60).ok(); }, 10s));
  EXPECT_TRUE(daemon_->audit_has("holder disconnected"));
}

TEST_F(LeaseTest, RenewAndReleaseOnlyByTheHolder) {
  auto a = daemon_->connect();
  auto b = daemon_->connect();
  v1::Lease lease;
  ASSERT_TRUE(claim(*a, 5, &lease).ok());
  {
    grpc::ClientContext ctx;
    v1::RenewRequest r;
    r.set_lease_id(lease.lease_id());
    r.set_seconds(30);
    v1::ClaimResponse resp;
    EXPECT_EQ(b->Renew(&ctx, r, &resp).error_code(), grpc::StatusCode::NOT_FOUND);
  }
  {
    grpc::ClientContext ctx;
    v1::RenewRequest r;
    r.set_lease_id(lease.lease_id());
    r.set_seconds(30);
    v1::ClaimResponse resp;
    ASSERT_TRUE(a->Renew(&ctx, r, &resp).ok());
    EXPECT_EQ(resp.lease().seconds(), 30u);
  }
  {
    grpc::ClientContext ctx;
    v1::ReleaseRequest r;
    r.set_lease_id(lease.lease_id());
    v1::ReleaseResponse resp;
    EXPECT_EQ(b->Release(&ctx, r, &resp).error_code(), grpc::StatusCode::NOT_FOUND);
  }
  {
    grpc::ClientContext ctx;
    v1::ReleaseRequest r;
    r.set_lease_id(lease.lease_id());
    v1::ReleaseResponse resp;
    EXPECT_TRUE(a->Release(&ctx, r, &resp).ok());
  }
  EXPECT_TRUE(claim(*b, 5).ok());
}

TEST_F(LeaseTest, BadLeaseLengthsAreRefused) {
  auto a = daemon_->connect();
  EXPECT_EQ(claim(*a, 0).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  auto st = claim(*a, 61);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("1..60"), std::string::npos);
}

// REQ-18: exclusive use of a peripheral through the gateway; events only to the claimant.
TEST_F(LeaseTest, ClaimedDeviceEventsGoOnlyToTheClaimant) {
  auto holder = daemon_->connect();
  auto other = daemon_->connect();
  grpc::ClientContext hctx, octx;
  v1::SubscribeRequest req;
  req.set_device_id("sim0");
  auto hread = holder->Subscribe(&hctx, req);
  auto oread = other->Subscribe(&octx, req);
  v1::PeripheralEvent ev;
  // Both see events while the device is free.
  ASSERT_TRUE(hread->Read(&ev));
  ASSERT_TRUE(oread->Read(&ev));
  ASSERT_TRUE(claim(*holder, 30).ok());
  // Drain what the other got before the claim took effect; then, while the
  // holder receives more events, the other receives nothing.
  std::uint64_t holder_seq = 0;
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(hread->Read(&ev));
    holder_seq = ev.sequence();
  }
  std::atomic<std::uint64_t> other_max{0};
  std::thread t([&] {
    v1::PeripheralEvent e;
    while (oread->Read(&e)) other_max = e.sequence();
  });
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(hread->Read(&ev));
  octx.TryCancel();
  t.join();
  EXPECT_LT(other_max.load(), holder_seq) << "non-claimant saw an event sent during the claim";
  hctx.TryCancel();
}

TEST_F(LeaseTest, SendNeedsAClaim) {
  auto a = daemon_->connect();
  v1::SendRequest req;
  req.set_device_id("sim0");
  req.set_data("\x16M\r");
  {
    grpc::ClientContext ctx;
    v1::SendResponse resp;
    EXPECT_EQ(a->Send(&ctx, req, &resp).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  }
  ASSERT_TRUE(claim(*a, 5).ok());
  {
    grpc::ClientContext ctx;
    v1::SendResponse resp;
    ASSERT_TRUE(a->Send(&ctx, req, &resp).ok());
    EXPECT_EQ(resp.bytes_written(), 3u);
  }
}

}  // namespace
}  // namespace portier::test
