// The terminal's half of the chain: payloads sealed, signed (each or per
// run) and committed to a real outbox file, sent over a link and deleted
// only when acknowledged; the fleet's verifier accepts every link in order,
// across a restart, a reconnect and a full disk.
#include "agent/management/uplink.h"

#include <gtest/gtest.h>
#include <sys/mount.h>

#include <filesystem>
#include <fstream>

#include "agent/management/fleet_takes_outbox.h"
#include "agent/management/outbox_link_fixture.h"
#include "portier/v1/fleet.pb.h"
#include "portier/v1/telemetry.pb.h"
#include "support/test_pki.h"
#include "tools/fleet/receiver.h"
#include "tools/fleet/sqlite_fleet_store.h"

namespace portier::management {
namespace {

using namespace std::chrono_literals;

class UplinkTest : public ::testing::TestWithParam<std::tuple<crypto::KeyType, Signing>>,
                   protected test::OutboxLinkFixture {
 protected:
  UplinkTest()
      : OutboxLinkFixture("portier-uplink", envelope::chain_digest(std::get<0>(GetParam()))) {}
  void SetUp() override { make_signer(std::get<0>(GetParam())); }
  void TearDown() override {
    close();
    if (mounted_) umount2(dir_.path().c_str(), MNT_DETACH);
  }
  // Opens the outbox and an uplink going on from its chain state, in a new
  // session (as portierd does at every start).
  void start_terminal(std::size_t max_bytes = 64u << 20) {
    open_box(max_bytes);
    start_uplink(
        UplinkOptions{
            .signing = std::get<1>(GetParam()), .max_run = 16, .retry_min = 5ms, .retry_max = 50ms},
        /*new_session=*/true);
  }
  void submit(int n, int from = 0) {
    for (int i = 0; i < n; ++i) {
      ASSERT_TRUE(uplink_->submit(v1::PAYLOAD_HEALTH, "payload " + std::to_string(from + i),
                                  outbox::Priority::telemetry));
    }
  }
  // What the fleet accepts of everything in the outbox, in order.
  std::vector<std::string> verified(envelope::ChainVerifier& v) {
    std::vector<std::string> out;
    auto records = box_->oldest(100000);
    EXPECT_TRUE(records);
    for (auto& r : *records) {
      v1::Envelope env;
      EXPECT_TRUE(env.ParseFromString(r.envelope));
      auto bodies = v.accept(env);
      EXPECT_TRUE(bodies) << bodies.error().message();
      if (!bodies) break;
      for (auto& b : *bodies) out.push_back(b.payload());
    }
    return out;
  }

  bool mounted_ = false;
};

TEST_P(UplinkTest, EverySubmittedPayloadIsCommittedInOrderAndVerifiesAcrossARestart_REQ29) {
  start_terminal();
  submit(100);
  ASSERT_TRUE(uplink_->flush(10s));
  EXPECT_EQ(uplink_->stats().sealed, 100u);
  // Restart: a new session goes on with the same chain.
  start_terminal();
  EXPECT_EQ(uplink_->session_epoch(), 2u);
  submit(30, 100);
  ASSERT_TRUE(uplink_->flush(10s));
  envelope::ChainVerifier v("T-1", signer_->public_key(), {});
  auto got = verified(v);
  ASSERT_EQ(got.size(), 130u);
  for (int i = 0; i < 130; ++i) EXPECT_EQ(got[i], "payload " + std::to_string(i));
  EXPECT_EQ(v.pending_count(), 0u) << "every run ends with a signed link";
}

TEST_P(UplinkTest, SentOldestFirstWithinTheWindowDeletedOnlyWhenAcknowledgedResentAfterAReconnect) {
  start_terminal();
  make_fleet_acks();
  // Runs of 4, at most 2 of them unacknowledged.
  start_sender(SenderOptions{.window = 2, .run_envelopes = 4, .idle_poll = 50ms});
  submit(20);
  ASSERT_TRUE(uplink_->flush(10s));
  // Nothing goes while the link is down.
  EXPECT_TRUE(link_.sent().empty());
  link_.connect();
  ASSERT_TRUE(link_.wait_sent(8));
  auto sent = link_.sent();
  ASSERT_EQ(sent.size(), 8u) << "the window holds at most 2 runs of 4 unacknowledged";
  EXPECT_EQ(link_.messages(), 2u);
  for (std::size_t i = 0; i < sent.size(); ++i) {
    EXPECT_EQ(sent[i].id, i + 1);
    EXPECT_EQ(sent[i].kind, "health");
  }
  for (std::uint64_t id = 1; id <= 4; ++id) link_.ack(id);
  ASSERT_TRUE(link_.wait_sent(12));
  wait_records(16, 10s);
  ASSERT_EQ(box_->stats()->records, 16u);
  // The connection drops with 5..12 unacknowledged: they go again.
  link_.disconnect();
  link_.connect();
  ASSERT_TRUE(link_.wait_sent(20));
  EXPECT_EQ(link_.sent()[12].id, 5u);
  // Acknowledge everything as it comes; the outbox empties.
  std::set<std::uint64_t> acked{1, 2, 3, 4};
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (acked.size() < 20 && std::chrono::steady_clock::now() < deadline) {
    for (auto& m : link_.sent()) {
      if (acked.insert(m.id).second) link_.ack(m.id);
    }
    link_.wait_sent(link_.sent().size() + 1, 20ms);
  }
  ASSERT_EQ(acked.size(), 20u);
  wait_records(0, 10s);
  EXPECT_EQ(box_->stats()->records, 0u);
  EXPECT_GE(sender_->stats().resent, 8u)
      << sender_->stats().sent << " sent in " << sender_->stats().messages << " messages; "
      << link_.sent().size() << " seen by the link";
  sender_->stop();
}

TEST_P(UplinkTest, AFullDiskKeepsThePayloadsQueuedReportsItAndLosesNothingOnceThereIsRoom_REQ29) {
  if (geteuid() != 0) GTEST_SKIP() << "mounting a small tmpfs needs root";
  ASSERT_EQ(mount("tmpfs", dir_.path().c_str(), "tmpfs", 0, "size=1m"), 0) << strerror(errno);
  mounted_ = true;
  start_terminal();
  std::vector<std::string> states;
  std::mutex mu;
  uplink_->on_state([&](const std::string& s) {
    std::lock_guard lock(mu);
    states.push_back(s);
  });
  // Fill the disk.
  {
    std::ofstream fill(dir_.file("filler"), std::ios::binary);
    std::string block(64 * 1024, 'x');
    while (fill.write(block.data(), block.size())) {
    }
  }
  submit(50);
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (uplink_->stats().failure.empty() && std::chrono::steady_clock::now() < deadline) {
    uplink_->flush(10ms);
  }
  auto st = uplink_->stats();
  ASSERT_FALSE(st.failure.empty()) << "the disk was full, yet every commit worked";
  EXPECT_NE(st.failure.find("disk is full"), std::string::npos) << st.failure;
  EXPECT_EQ(st.queued + st.sealed, 50u);
  // Room again: everything is committed, in order, nothing lost.
  std::filesystem::remove(dir_.file("filler"));
  ASSERT_TRUE(uplink_->flush(20s));
  EXPECT_TRUE(uplink_->stats().failure.empty());
  envelope::ChainVerifier v("T-1", signer_->public_key(), {});
  auto got = verified(v);
  ASSERT_EQ(got.size(), 50u);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(got[i], "payload " + std::to_string(i));
  std::lock_guard lock(mu);
  ASSERT_GE(states.size(), 2u);
  EXPECT_FALSE(states.front().empty());
  EXPECT_TRUE(states.back().empty());
}

// Whoever can publish on the terminal's down/ack topic (a hostile broker)
// sends acknowledgements of everything: unsigned, signed by a key of
// another CA, signed wrongly with the fleet's certificates, or genuinely
// signed by the fleet for another terminal. None deletes a record; each is
// counted. Then the fleet's own acknowledgement deletes them.
TEST_P(UplinkTest, ForgedAcknowledgementsDeleteNothingAndAreCounted_REQ29) {
  start_terminal();
  make_fleet_acks();
  std::filesystem::create_directories(dir_.file("other"));
  auto other_pki = portier::test::TestPki::create(dir_.file("other"));
  ASSERT_TRUE(other_pki);
  start_sender(SenderOptions{.idle_poll = 50ms});
  submit(10);
  ASSERT_TRUE(uplink_->flush(10s));
  link_.connect();
  ASSERT_TRUE(link_.wait_sent(10));
  // All ten, named as the fleet names them: by the last one's digest.
  const std::vector<link::AckedRange> all{{1, 10, link_.digest_of(10)}};
  const auto now = std::chrono::system_clock::now();
  link_.ack_raw("1,2,3,4,5,6,7,8,9,10");  // the old unsigned format
  auto genuine = link_.acker->sign("T-1", all, now);
  ASSERT_TRUE(genuine);
  v1::SignedAcknowledgement unsigned_ack;
  ASSERT_TRUE(unsigned_ack.ParseFromString(*genuine));
  unsigned_ack.clear_signature();
  link_.ack_raw(unsigned_ack.SerializeAsString());
  link_.ack_raw(*test::make_acker(*other_pki)->sign("T-1", all, now));  // untrusted chain
  auto wrong = unsigned_ack;  // the fleet's certificates, another key's signature
  auto other_key = crypto::PrivateKey::generate(crypto::KeyType::ecdsa_p256);
  auto sig = crypto::sign(*other_key, link::ack_signing_input(wrong.acknowledgement()));
  wrong.set_signature(std::string(sig->begin(), sig->end()));
  link_.ack_raw(wrong.SerializeAsString());
  link_.ack_raw(*link_.acker->sign("T-2", all, now));  // another terminal's
  wait_until([&] { return sender_->stats().acks_refused >= 5; }, 10s);
  auto st = sender_->stats();
  EXPECT_EQ(st.acks_refused, 5u) << st.last_ack_refusal;
  EXPECT_EQ(st.acks_verified, 0u);
  EXPECT_EQ(st.acknowledged, 0u);
  EXPECT_NE(st.last_ack_refusal.find("other terminal"), std::string::npos) << st.last_ack_refusal;
  EXPECT_EQ(box_->stats()->records, 10u) << "a forged acknowledgement deleted records";
  // The fleet's own.
  link_.ack_raw(*genuine);
  wait_records(0, 10s);
  EXPECT_EQ(box_->stats()->records, 0u);
  EXPECT_EQ(sender_->stats().acks_verified, 1u);
  sender_->stop();
}

// A run half acknowledged when the connection drops: after the reconnect
// only the rest goes again, and the half acknowledged is deleted once.
TEST_P(UplinkTest, ARunSplitAcrossAReconnectResendsOnlyWhatWasNotAcknowledged_REQ29) {
  start_terminal();
  make_fleet_acks();
  start_sender(SenderOptions{.window = 1, .run_envelopes = 6, .idle_poll = 50ms});
  submit(6);
  ASSERT_TRUE(uplink_->flush(10s));
  link_.connect();
  ASSERT_TRUE(link_.wait_sent(6));
  EXPECT_EQ(link_.messages(), 1u);
  for (std::uint64_t s = 1; s <= 3; ++s) link_.ack(s);
  wait_records(3, 10s);
  ASSERT_EQ(box_->stats()->records, 3u);
  link_.disconnect();
  link_.connect();
  ASSERT_TRUE(link_.wait_sent(9));
  auto sent = link_.sent();
  ASSERT_EQ(sent.size(), 9u);
  EXPECT_EQ(sent[6].id, 4u);
  EXPECT_EQ(sent[8].id, 6u);
  for (std::uint64_t s = 4; s <= 6; ++s) link_.ack(s);
  // The deletion is counted once it is committed.
  wait_until([&] { return box_->stats()->records == 0 && sender_->stats().acknowledged >= 6; },
             10s);
  EXPECT_EQ(box_->stats()->records, 0u);
  EXPECT_EQ(sender_->stats().acknowledged, 6u);
  EXPECT_EQ(link_.sent().size(), 9u) << "nothing acknowledged went again";
  sender_->stop();
}

// A key rotation (attacker review of issue 10, finding 1): the uplink holds
// at a committed run, the next sequence is the cutover the Renew names, the
// old key signs nothing from there on, and the uplink goes on with the new
// key from exactly there. The fleet, told the cutover, takes every envelope
// once and in order, with no incident; the old key at the cutover is
// refused.
TEST_P(UplinkTest, AKeyRotationsCutoverIsWhereTheNewKeySignsFromAndTheFleetTakesAllOnce_REQ33) {
  start_terminal();
  submit(20);
  ASSERT_TRUE(uplink_->flush(10s));
  submit(20, 20);
  auto held = uplink_->hold(10s);  // runs may be in flight: it waits for them
  ASSERT_TRUE(held) << held.error().message();
  const std::uint64_t cutover = held->next_sequence;
  submit(20, 40);  // queued while held: nothing is sealed
  auto before = box_->oldest(100000);
  ASSERT_TRUE(before);
  const std::uint64_t sealed_before = before->empty() ? 0 : before->back().sequence;
  EXPECT_EQ(sealed_before + 1, cutover);
  EXPECT_GT(cutover, 20u);
  EXPECT_FALSE(uplink_->flush(50ms));
  EXPECT_EQ(box_->oldest(100000)->size(), before->size());

  auto new_key = crypto::PrivateKey::generate(std::get<0>(GetParam()));
  ASSERT_TRUE(new_key);
  auto new_signer = crypto::KeySigner::from(*new_key);
  ASSERT_TRUE(new_signer);
  const auto new_kid = *envelope::key_id(*new_key->public_key());
  uplink_->release(std::make_shared<crypto::KeySigner>(std::move(*new_signer)), new_kid);
  submit(20, 60);
  ASSERT_TRUE(uplink_->flush(10s));

  auto records = box_->oldest(100000);
  ASSERT_TRUE(records);
  ASSERT_EQ(records->size(), 80u);
  for (auto& r : *records) {
    v1::Envelope env;
    ASSERT_TRUE(env.ParseFromString(r.envelope));
    if (!env.has_signature()) continue;
    EXPECT_EQ(env.signature().key_id(), r.sequence < cutover ? key_id_ : new_kid) << r.sequence;
  }

  // The fleet, as the enrolment service leaves it after the Renew.
  auto store = fleet::SqliteFleetStore::open(dir_.file("fleet.db"));
  ASSERT_TRUE(store);
  fleet::Terminal t;
  t.id = "T-1";
  t.public_key_pem = *signer_->public_key().to_pem();
  t.key_algorithm = std::string(crypto::name(signer_->type()));
  ASSERT_TRUE((*store)->add_terminal(t));
  ASSERT_TRUE((*store)->set_next_key("T-1", *new_key->public_key()->to_pem(), cutover));
  fleet::Receiver receiver(**store);
  const auto now = std::chrono::system_clock::now();
  std::vector<std::uint64_t> stored;
  for (auto& r : *records) {
    auto got = receiver.receive("T-1", "envelope", r.envelope, now);
    ASSERT_TRUE(got) << r.sequence << ": " << got.error().message();
    stored.insert(stored.end(), got->stored.begin(), got->stored.end());
  }
  ASSERT_EQ(stored.size(), 80u);
  for (std::size_t i = 0; i < stored.size(); ++i) EXPECT_EQ(stored[i], i + 1);
  auto incidents = (*store)->incidents("T-1", 100);
  ASSERT_TRUE(incidents);
  // (The test's payloads are no HealthReports: "malformed", stored as signed.)
  for (auto& i : *incidents) EXPECT_EQ(i.kind, "malformed") << i.sequence << ": " << i.detail;
  EXPECT_EQ((*store)->terminal("T-1")->public_key_pem, *new_key->public_key()->to_pem());
  auto rows = (*store)->envelopes("T-1", 0, 1000);
  ASSERT_TRUE(rows);
  for (std::size_t i = 0; i < rows->size(); ++i) {
    v1::Envelope env;
    v1::EnvelopeBody body;
    ASSERT_TRUE(env.ParseFromString((*rows)[i].envelope) && body.ParseFromString(env.body()));
    EXPECT_EQ(body.payload(), "payload " + std::to_string(i));
  }

  // Whoever kept the old key signs the next link: refused as retired.
  envelope::EnvelopeSealer thief("T-1", signer_->type(), *box_->chain_state());
  auto forged = thief.seal(v1::PAYLOAD_HEALTH, "thief", now);
  ASSERT_TRUE(forged);
  ASSERT_TRUE(envelope::sign_envelope(forged->envelope, *signer_, key_id_));
  auto refused = receiver.receive("T-1", "envelope", forged->envelope.SerializeAsString(), now);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message().find("retired key"), std::string::npos)
      << refused.error().message();
}

// Review finding M4: a hold takes everything submitted before it (sealed
// with the key of before, below the cutover), and while held a payload
// signed inside by that key (an audit checkpoint) is refused rather than
// queued to be sealed past the cutover under the next key, where the fleet
// would check it with the wrong key.
TEST_P(UplinkTest, AHoldTakesWhatCameBeforeItAndRefusesKeyBoundPayloadsAfter_REQ33) {
  start_terminal();
  submit(50);  // queued: the writer may not have taken them yet
  auto held = uplink_->hold(10s);
  ASSERT_TRUE(held) << held.error().message();
  EXPECT_TRUE(uplink_->held());
  EXPECT_EQ(held->next_sequence, 51u) << "all fifty below the cutover";
  EXPECT_FALSE(uplink_->submit_unless_held(v1::PAYLOAD_AUDIT_CHECKPOINT, "checkpoint",
                                           outbox::Priority::security));
  submit(5, 50);  // plain payloads wait for the release
  EXPECT_EQ(uplink_->stats().queued, 5u);
  uplink_->release();
  EXPECT_FALSE(uplink_->held());
  EXPECT_TRUE(uplink_->submit_unless_held(v1::PAYLOAD_AUDIT_CHECKPOINT, "checkpoint",
                                          outbox::Priority::security));
  ASSERT_TRUE(uplink_->flush(10s));
  auto records = box_->oldest(100000);
  ASSERT_TRUE(records);
  EXPECT_EQ(records->size(), 56u);
}

INSTANTIATE_TEST_SUITE_P(KeysAndSigning, UplinkTest,
                         ::testing::Combine(::testing::Values(crypto::KeyType::ecdsa_p256,
                                                              crypto::KeyType::ed25519,
                                                              crypto::KeyType::sm2),
                                            ::testing::Values(Signing::each, Signing::batch)),
                         [](const auto& info) { return test::key_and_signing_name(info.param); });

}  // namespace
}  // namespace portier::management

namespace portier::management {
namespace {

// Records the outbox had to drop are told to the fleet in a signed
// DropNotice, and the fleet's real receiver follows the chain across the
// gap: everything kept is stored in order, the drop is an incident it can
// name, nothing is refused.
TEST(UplinkDropsTest, TheFleetFollowsTheChainAcrossWhatTheOutboxDropped_REQ29) {
  const portier::test_support::TempDir dir("portier-drops");
  auto signer = test::device_signer(crypto::KeyType::sm2);
  ASSERT_TRUE(signer);
  const auto kid = *envelope::key_id(signer->public_key());
  {
    auto box = test::open_outbox(dir.file("outbox.db"), 16000);
    ASSERT_TRUE(box);
    UplinkOptions o;
    o.signing = Signing::batch;
    o.max_run = 8;
    Uplink up(**box, envelope::EnvelopeSealer("T-1", signer->type(), {}), *signer, kid, o);
    up.start();
    for (int i = 0; i < 60; ++i) {
      v1::HealthReport h;
      h.mutable_health()->add_reasons(std::string(200, static_cast<char>('a' + i % 26)));
      ASSERT_TRUE(
          up.submit(v1::PAYLOAD_HEALTH, h.SerializeAsString(), outbox::Priority::telemetry));
      if (i % 8 == 7) {
        ASSERT_TRUE(up.flush(std::chrono::seconds(10)));
      }
    }
    ASSERT_TRUE(up.flush(std::chrono::seconds(10)));
    up.stop();
    auto left = (*box)->drops(10);
    ASSERT_TRUE(left);
    EXPECT_TRUE(left->empty()) << "every drop was reported";

    int notices = 0;
    test::expect_fleet_takes_outbox(**box, signer->public_key(), dir.file("fleet.db"), &notices);
    EXPECT_GT(notices, 0);
  }
}

}  // namespace
}  // namespace portier::management
