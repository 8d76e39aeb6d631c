// The fleet's genuine acknowledgements in the hands of a hostile broker,
// which replays them at will: a real outbox file and uplink, the real
// sender and AckVerifier, certificates from a throwaway PKI. A replay that
// names nothing still held costs no signature check; an older one after a
// newer one deletes nothing; forgeries naming held records are checked at
// a bounded rate; nothing is ever deleted without a verified signature.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>

#include "agent/management/fake_link.h"
#include "agent/management/outbox_sender.h"
#include "agent/management/uplink.h"
#include "common/crypto/sign.h"
#include "portier/v1/fleet.pb.h"
#include "support/test_pki.h"

namespace portier::management {
namespace {

using namespace std::chrono_literals;

class AckReplayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char t[] = "/tmp/portier-ackreplay-XXXXXX";
    dir_ = mkdtemp(t);
    auto key = crypto::PrivateKey::generate(crypto::KeyType::ecdsa_p256);
    ASSERT_TRUE(key);
    auto s = crypto::KeySigner::from(*key);
    ASSERT_TRUE(s);
    signer_ = std::make_unique<crypto::KeySigner>(std::move(*s));
    auto b = outbox::Outbox::open({dir_ + "/outbox.db", 64u << 20, 24h});
    ASSERT_TRUE(b) << b.error().message();
    box_ = std::move(*b);
    UplinkOptions o;
    o.retry_min = 5ms;
    uplink_ = std::make_unique<Uplink>(
        *box_, envelope::EnvelopeSealer("T-1", signer_->type(), *box_->chain_state()), *signer_,
        *envelope::key_id(signer_->public_key()), o);
    uplink_->start();
    auto pki = portier::test::TestPki::create(dir_);
    ASSERT_TRUE(pki) << pki.error().message();
    pki_ = std::make_unique<portier::test::TestPki>(std::move(*pki));
    link_.acker = test::make_acker(*pki_);
    ASSERT_TRUE(link_.acker);
  }
  void TearDown() override {
    if (sender_) sender_->stop();
    sender_.reset();
    uplink_.reset();
    box_.reset();
    std::filesystem::remove_all(dir_);
  }
  // `n` records committed and sent (none acknowledged yet).
  void send_records(int n, SenderOptions options = SenderOptions{.idle_poll = 50ms}) {
    sender_ = std::make_unique<OutboxSender>(
        *box_, link_,
        link::AckVerifierOptions{.terminal_id = "T-1", .trust_anchors = {pki_->root()}}, nullptr,
        options);
    ASSERT_TRUE(link_.start(*sender_));
    uplink_->on_stored([this] { sender_->wake(); });
    sender_->start();
    for (int i = 0; i < n; ++i) {
      ASSERT_TRUE(uplink_->submit(v1::PAYLOAD_HEALTH, "payload " + std::to_string(i),
                                  outbox::Priority::telemetry));
    }
    ASSERT_TRUE(uplink_->flush(10s));
    link_.connect();
    ASSERT_TRUE(link_.wait_sent(static_cast<std::size_t>(n)));
  }
  // Every acknowledgement delivered so far has been dealt with somehow.
  static std::uint64_t dealt_with(const SenderStats& s) {
    return s.acks_verified + s.acks_refused + s.acks_stale + s.acks_old + s.acks_dropped;
  }
  bool wait_dealt_with(std::uint64_t n, std::chrono::milliseconds timeout = 20s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (dealt_with(sender_->stats()) < n && std::chrono::steady_clock::now() < deadline) {
      link_.wait_sent(1000000, 5ms);  // a bounded wait for the sender's thread
    }
    return dealt_with(sender_->stats()) >= n;
  }
  bool wait_records(std::uint64_t n, std::chrono::milliseconds timeout = 20s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (box_->stats()->records != n && std::chrono::steady_clock::now() < deadline) {
      link_.wait_sent(1000000, 5ms);
    }
    return box_->stats()->records == n;
  }
  std::string ack(std::vector<link::SequenceRange> ranges,
                  std::chrono::system_clock::time_point at = std::chrono::system_clock::now()) {
    auto a = link_.acker->sign("T-1", ranges, at);
    EXPECT_TRUE(a) << a.error().message();
    return *a;
  }

  std::string dir_;
  std::unique_ptr<crypto::KeySigner> signer_;
  std::unique_ptr<outbox::Outbox> box_;
  std::unique_ptr<Uplink> uplink_;
  std::unique_ptr<portier::test::TestPki> pki_;
  test::FakeLink link_;
  std::unique_ptr<OutboxSender> sender_;
};

// The broker replays the fleet's acknowledgement of 1..5 10,000 times: it
// deletes 1..5 once, at the cost of one signature check; every replay names
// nothing still held and is counted stale, unverified. 6..10 stay until the
// fleet acknowledges them.
TEST_F(AckReplayTest, TenThousandReplaysOfAGenuineAcknowledgementCostOneSignatureCheck_REQ29) {
  send_records(10);
  const auto genuine = ack({{1, 5}});
  std::uint64_t delivered = 0;
  for (int chunk = 0; chunk < 20; ++chunk) {
    // In chunks the sender's queue holds (kMaxQueuedAcks): none dropped,
    // every one looked at.
    for (int i = 0; i < 500; ++i, ++delivered) link_.ack_raw(genuine);
    ASSERT_TRUE(wait_dealt_with(delivered)) << dealt_with(sender_->stats()) << " of " << delivered;
  }
  ASSERT_TRUE(wait_records(5));
  auto st = sender_->stats();
  EXPECT_EQ(st.ack_signature_checks, 1u);
  EXPECT_EQ(st.acks_verified, 1u);
  EXPECT_EQ(st.acks_stale, 9999u);
  EXPECT_EQ(st.acks_dropped, 0u);
  EXPECT_EQ(st.acks_refused, 0u);
  auto held = box_->oldest(100);
  ASSERT_TRUE(held);
  ASSERT_EQ(held->size(), 5u);
  EXPECT_EQ(held->front().sequence, 6u) << "a replay deleted what the fleet never acknowledged";
  // The fleet's next acknowledgement still works.
  link_.ack_raw(ack({{6, 10}}));
  ASSERT_TRUE(wait_records(0));
  EXPECT_EQ(sender_->stats().ack_signature_checks, 2u);
}

// The broker withholds the fleet's acknowledgement of 1..5, delivers the
// newer one of 6..10, then the withheld one (and replays it): refused as
// old, unverified, counted; 1..5 stay until a fresh acknowledgement.
TEST_F(AckReplayTest, AnOlderGenuineAcknowledgementAfterANewerOneDeletesNothingAndIsCounted_REQ29) {
  send_records(10);
  const auto now = std::chrono::system_clock::now();
  const auto withheld = ack({{1, 5}}, now - 1min);
  link_.ack_raw(ack({{6, 10}}, now));
  ASSERT_TRUE(wait_records(5));
  for (int i = 0; i < 100; ++i) link_.ack_raw(withheld);
  ASSERT_TRUE(wait_dealt_with(101));
  auto st = sender_->stats();
  EXPECT_EQ(st.acks_old, 100u);
  EXPECT_EQ(st.acks_verified, 1u);
  EXPECT_EQ(st.ack_signature_checks, 1u);
  EXPECT_NE(st.last_ack_refusal.find("old"), std::string::npos) << st.last_ack_refusal;
  EXPECT_EQ(box_->stats()->records, 5u) << "an old acknowledgement deleted records";
  link_.ack_raw(ack({{1, 5}}));
  ASSERT_TRUE(wait_records(0));
}

// Forgeries naming records the terminal holds (the fleet's certificates,
// another key's signature) cannot be told from genuine ones without their
// signature: the broker sends 5,000, and the sender checks at most
// `ack_checks` signatures per interval (the rest wait, or are dropped past
// the queue's bound). None deletes anything; the fleet's own, behind them,
// still does.
TEST_F(AckReplayTest, AFloodOfForgeriesNamingHeldRecordsIsCheckedAtABoundedRate_REQ29) {
  const SenderOptions options{.idle_poll = 50ms, .ack_checks = 100, .ack_check_interval = 100ms};
  send_records(10, options);
  v1::SignedAcknowledgement forged;
  ASSERT_TRUE(forged.ParseFromString(ack({{1, 10}})));
  auto other_key = crypto::PrivateKey::generate(crypto::KeyType::ecdsa_p256);
  ASSERT_TRUE(other_key);
  auto sig = crypto::sign(*other_key, link::ack_signing_input(forged.acknowledgement()));
  ASSERT_TRUE(sig);
  forged.set_signature(std::string(sig->begin(), sig->end()));
  const auto bytes = forged.SerializeAsString();
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 5000; ++i) link_.ack_raw(bytes);
  ASSERT_TRUE(wait_dealt_with(5000, 60s));
  const auto elapsed = std::chrono::steady_clock::now() - start;
  auto st = sender_->stats();
  const auto intervals = static_cast<std::uint64_t>(elapsed / options.ack_check_interval) + 1;
  EXPECT_LE(st.ack_signature_checks, options.ack_checks * intervals)
      << "in " << intervals << " intervals";
  EXPECT_EQ(st.acks_refused, st.ack_signature_checks) << "each check refused one";
  EXPECT_EQ(st.acks_refused + st.acks_dropped, 5000u);
  EXPECT_GT(st.acks_deferred, 0u) << "the flood never reached the bound";
  EXPECT_EQ(st.acks_verified, 0u);
  EXPECT_EQ(box_->stats()->records, 10u) << "a forgery deleted records";
  link_.ack_raw(ack({{1, 10}}));
  ASSERT_TRUE(wait_records(0));
  EXPECT_EQ(sender_->stats().acks_verified, 1u);
}

}  // namespace
}  // namespace portier::management
