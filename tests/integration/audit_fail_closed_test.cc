// The audit trail fails closed (issue "Close the trust holes", attack 4):
// with the audit file's disk full, an operation that must be audited is
// refused (UNAVAILABLE, with the reason), health goes DEGRADED and says why,
// the daemon keeps serving, and all recovers by itself once there is room.
// A small tmpfs stands in for the full disk; mounting it needs root.
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "daemon_fixture.h"

namespace portier::test {
namespace {

class AuditFailClosedTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to mount a small tmpfs";
    state_ = dir_.file("state");
    std::filesystem::create_directories(state_);
    if (mount("tmpfs", state_.c_str(), "tmpfs", 0, "size=1m,mode=0750") != 0) {
      GTEST_SKIP() << "cannot mount a tmpfs here: " << std::strerror(errno);
    }
    mounted_ = true;
  }
  void TearDown() override {
    daemon_.reset();
    if (mounted_) umount2(state_.c_str(), MNT_DETACH);
  }

  // Fills the tmpfs to the last byte.
  void fill() {
    std::ofstream f(state_ + "/filler", std::ios::binary);
    std::string block(4096, '\0');
    while (f.write(block.data(), block.size())) f.flush();
    std::ofstream g(state_ + "/filler2", std::ios::binary);
    while (g.put('\0')) g.flush();
  }

  TempDir dir_;
  std::string state_;
  bool mounted_ = false;
  std::unique_ptr<Daemon> daemon_;
};

// REQ-28, REQ-29.
TEST_F(AuditFailClosedTest, FullDiskRefusesAuditedOperationsUntilThereIsRoom) {
  DaemonOptions o;
  o.policy = "version = 1\n" + runner_app() + runner_rule("*", "[\"*\"]");
  o.extra_config = "[[scanner]]\nid = \"sim0\"\ntype = \"simulated\"\ninterval_ms = 100\n";
  daemon_ = std::make_unique<Daemon>(dir_, o);
  ASSERT_TRUE(daemon_->start()) << daemon_->log();
  auto stub = daemon_->connect();
  auto claim = [&](grpc::Status* st) {
    grpc::ClientContext ctx;
    v1::ClaimRequest r;
    r.set_device_id("sim0");
    r.set_seconds(5);
    v1::ClaimResponse resp;
    *st = stub->Claim(&ctx, r, &resp);
    if (st->ok()) {
      grpc::ClientContext c2;
      v1::ReleaseRequest rel;
      rel.set_lease_id(resp.lease().lease_id());
      v1::ReleaseResponse rr;
      stub->Release(&c2, rel, &rr);
    }
  };
  grpc::Status st;
  claim(&st);
  ASSERT_TRUE(st.ok()) << st.error_message();

  fill();
  // The next claim's record cannot be written: refused, and the reason said.
  ASSERT_TRUE(wait_until([&] {
    claim(&st);
    return st.error_code() == grpc::StatusCode::UNAVAILABLE;
  })) << st.error_message();
  EXPECT_NE(st.error_message().find("audit record cannot be written"), std::string::npos)
      << st.error_message();
  ASSERT_TRUE(wait_until([&] { return daemon_->health().state() == v1::Health::DEGRADED; }));
  bool said = false;
  const auto health = daemon_->health();
  for (auto& r : health.reasons()) {
    said |= r.find("audit trail cannot be written") != std::string::npos;
  }
  EXPECT_TRUE(said);
  // Calls that need no record still work: the daemon keeps serving.
  grpc::ClientContext ctx;
  v1::ListDevicesResponse devices;
  EXPECT_TRUE(stub->ListDevices(&ctx, {}, &devices).ok());

  std::filesystem::remove(state_ + "/filler");
  std::filesystem::remove(state_ + "/filler2");
  ASSERT_TRUE(wait_until([&] {
    claim(&st);
    return st.ok();
  })) << st.error_message();
  ASSERT_TRUE(wait_until([&] { return daemon_->health().state() == v1::Health::OK; }));
  EXPECT_TRUE(daemon_->audit_has("audit_failed"));
  // The refused claim's allow reached the file after all, followed by its revocation.
  EXPECT_TRUE(daemon_->audit_has("\"event\":\"allow_revoked\""));
  EXPECT_TRUE(daemon_->audit_has("audit_recovered"));
  EXPECT_TRUE(daemon_->alive());
}

}  // namespace
}  // namespace portier::test
