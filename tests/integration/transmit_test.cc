// APDU exchange and device actions through the gateway, against the
// simulated contactless reader (the PC/SC driver has its own tests against
// pcscd): policy op `transmit`, the lease, timeouts that never block other
// callers, size limits, card events, self-tests, and no APDU bytes in logs.
#include <gtest/gtest.h>

#include <future>

#include "daemon_fixture.h"

namespace portier::test {
namespace {

const std::string kSelect("\x00\xA4\x04\x00\x07\xA0\x00\x00\x00\x03\x10\x10", 12);

class TransmitTest : public ::testing::Test {
 protected:
  void start(const std::string& nfc_ops = "[\"*\"]") {
    DaemonOptions o;
    o.policy = "version = 1\n" + runner_app() + runner_rule("nfc0", nfc_ops) +
               runner_rule("terminal", "[\"read\"]");
    o.extra_config = "[[reader]]\nid = \"nfc0\"\ntype = \"simulated\"\n";
    daemon_ = std::make_unique<Daemon>(dir_, o);
    ASSERT_TRUE(daemon_->start()) << daemon_->log();
  }

  static grpc::Status claim(v1::Gateway::Stub& s) {
    grpc::ClientContext ctx;
    v1::ClaimRequest r;
    r.set_device_id("nfc0");
    r.set_seconds(30);
    v1::ClaimResponse resp;
    return s.Claim(&ctx, r, &resp);
  }

  static grpc::Status transmit(v1::Gateway::Stub& s, const std::string& apdu,
                               std::string* response = nullptr, std::uint32_t timeout_ms = 0) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 20s);
    v1::TransmitRequest r;
    r.set_device_id("nfc0");
    r.set_apdu(apdu);
    r.set_timeout_ms(timeout_ms);
    v1::TransmitResponse resp;
    auto st = s.Transmit(&ctx, r, &resp);
    if (response) *response = resp.response();
    return st;
  }

  TempDir dir_;
  std::unique_ptr<Daemon> daemon_;
};

// REQ-18: NFC reader access through the gateway, only for the claimant.
TEST_F(TransmitTest, ClaimantExchangesApdus) {
  start();
  auto a = daemon_->connect();
  auto b = daemon_->connect();
  EXPECT_EQ(transmit(*a, kSelect).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  ASSERT_TRUE(claim(*a).ok());
  std::string resp;
  ASSERT_TRUE(transmit(*a, kSelect, &resp).ok());
  EXPECT_EQ(resp, std::string("\x90\x00", 2));
  ASSERT_TRUE(transmit(*a, std::string("\x00\x84\x00\x00\x08", 5), &resp).ok());
  EXPECT_EQ(resp.size(), 10u);
  // Another connection of the same app does not hold the lease.
  EXPECT_EQ(transmit(*b, kSelect).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
}

// REQ-10: transmit is its own operation in the policy.
TEST_F(TransmitTest, TransmitNeedsItsOwnPermission) {
  start("[\"list\", \"read\", \"claim\"]");
  auto a = daemon_->connect();
  ASSERT_TRUE(claim(*a).ok());
  auto st = transmit(*a, kSelect);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(st.error_message().find("may not transmit 'nfc0'"), std::string::npos)
      << st.error_message();
  EXPECT_TRUE(daemon_->audit_has("\"op\":\"transmit\",\"decision\":\"deny\""));
}

TEST_F(TransmitTest, StuckCardTimesOutWithoutBlockingOthers) {
  start();
  auto a = daemon_->connect();
  ASSERT_TRUE(claim(*a).ok());
  auto stuck = std::async(std::launch::async, [&] {
    auto t0 = std::chrono::steady_clock::now();
    auto st = transmit(*a, std::string("\x00\xEE\x00\x00", 4), nullptr, 2000);
    return std::make_pair(st, std::chrono::steady_clock::now() - t0);
  });
  // While the card hangs, the daemon answers everyone else: a call on
  // another connection returns before the stuck exchange does.
  auto other = daemon_->connect();
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 1s);
  v1::Health h;
  EXPECT_TRUE(other->GetHealth(&ctx, {}, &h).ok());
  EXPECT_EQ(stuck.wait_for(0s), std::future_status::timeout) << "the stuck call ended early";
  auto [st, took] = stuck.get();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(st.error_message().find("did not answer within 2000 ms"), std::string::npos);
  EXPECT_LT(took, 10s);
  EXPECT_TRUE(daemon_->audit_has("\"event\":\"action_failed\""));
}

TEST_F(TransmitTest, OversizeAndMalformedApdusAreRefused) {
  start();
  auto a = daemon_->connect();
  ASSERT_TRUE(claim(*a).ok());
  auto big = transmit(*a, std::string(65545, '\x00'));
  EXPECT_EQ(big.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(big.error_message().find("at most 65544"), std::string::npos);
  EXPECT_EQ(transmit(*a, std::string("\x00\xA4", 2)).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(transmit(*a, kSelect, nullptr, 60001).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  grpc::ClientContext ctx;
  v1::ActRequest r;
  r.set_device_id("nfc0");
  r.set_action("self_destruct");
  v1::ActResponse resp;
  auto st = a->Act(&ctx, r, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("it offers: transmit, remove_card, insert_card"),
            std::string::npos)
      << st.error_message();
}

// REQ-18: card insertion and removal reach subscribers with the ATR.
TEST_F(TransmitTest, CardEventsReachSubscribers) {
  start();
  auto a = daemon_->connect();
  grpc::ClientContext sctx;
  v1::SubscribeRequest sr;
  sr.set_device_id("nfc0");
  auto reader = a->Subscribe(&sctx, sr);
  ASSERT_TRUE(wait_until([&] { return daemon_->health().subscribers_size() == 1; }));
  ASSERT_TRUE(claim(*a).ok());
  for (const char* action : {"remove_card", "insert_card"}) {
    grpc::ClientContext ctx;
    v1::ActRequest r;
    r.set_device_id("nfc0");
    r.set_action(action);
    v1::ActResponse resp;
    ASSERT_TRUE(a->Act(&ctx, r, &resp).ok()) << action;
  }
  v1::PeripheralEvent ev;
  ASSERT_TRUE(reader->Read(&ev));
  EXPECT_EQ(ev.card().kind(), v1::Card::REMOVED);
  ASSERT_TRUE(reader->Read(&ev));
  EXPECT_EQ(ev.card().kind(), v1::Card::INSERTED);
  EXPECT_EQ(ev.card().atr().substr(0, 2), std::string("\x3b\x8f", 2));
  EXPECT_EQ(ev.card().uid().size(), 7u);
  sctx.TryCancel();
}

// REQ-12: peripherals are self-tested before the daemon reports ready.
TEST_F(TransmitTest, SelfTestIsReportedAndAudited) {
  start();
  auto h = daemon_->health();
  ASSERT_EQ(h.self_tests_size(), 1);
  EXPECT_EQ(h.self_tests(0).device_id(), "nfc0");
  EXPECT_TRUE(h.self_tests(0).passed());
  EXPECT_TRUE(daemon_->audit_has("\"event\":\"self_test\",\"device\":\"nfc0\""));
  auto log = daemon_->log();
  EXPECT_LT(log.find("self-test nfc0: passed"), log.find("ready in"));
}

// REQ-21: APDUs and responses never reach the log or the audit trail.
TEST_F(TransmitTest, ApduBytesNeverReachTheLogs) {
  start();
  auto a = daemon_->connect();
  ASSERT_TRUE(claim(*a).ok());
  const std::string pan_apdu("\x00\xA4\x04\x00\x08\x62\x22\x02\x12\x34\x56\x78\x90", 13);
  ASSERT_TRUE(transmit(*a, pan_apdu).ok());
  EXPECT_EQ(daemon_->stop(), 0);
  for (const auto& text : {daemon_->log(), daemon_->audit()}) {
    EXPECT_EQ(text.find(pan_apdu.substr(5)), std::string::npos);
    EXPECT_EQ(text.find("6222021234567890"), std::string::npos);
    EXPECT_EQ(text.find("62 22 02"), std::string::npos);
  }
}

}  // namespace
}  // namespace portier::test
