// The fleet's genuine acknowledgements in the hands of a hostile broker,
// which replays them at will: a real outbox file and uplink, the real
// sender and AckVerifier, certificates from a throwaway PKI. A replay that
// names nothing still held costs no signature check; an older one after a
// newer one deletes nothing; forgeries naming held records are checked at
// a bounded rate; nothing is ever deleted without a verified signature.
// A genuine one for the same sequences on another chain deletes nothing; an
// old one kept across the terminal's restart is refused as old; a flood of
// one forgery costs one signature check.
#include <gtest/gtest.h>

#include <filesystem>

#include "agent/management/outbox_link_fixture.h"
#include "common/crypto/sign.h"
#include "portier/v1/fleet.pb.h"
#include "support/test_pki.h"
#include "tools/fleet/fleet_ack.h"
#include "tools/fleet/receiver.h"
#include "tools/fleet/sqlite_fleet_store.h"

namespace portier::management {
namespace {

using namespace std::chrono_literals;

class AckReplayTest : public ::testing::Test, protected test::OutboxLinkFixture {
 protected:
  AckReplayTest() : OutboxLinkFixture("portier-ackreplay") {}
  void SetUp() override {
    make_signer();
    open_box();
    start_uplink(UplinkOptions{.retry_min = 5ms});
    make_fleet_acks();
  }
  // `n` records committed and sent (none acknowledged yet).
  void send_records(int n, SenderOptions options = SenderOptions{.idle_poll = 50ms}) {
    start_sender(options);
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
    return wait_until([&] { return dealt_with(sender_->stats()) >= n; }, timeout);
  }
  // The fleet's acknowledgement of `ranges`, each named by the digest of
  // its last envelope as the terminal sent it.
  std::string ack(std::vector<link::SequenceRange> ranges,
                  std::chrono::system_clock::time_point at = std::chrono::system_clock::now()) {
    auto a = link_.acker->sign(
        "T-1",
        link::with_digests(ranges, [&](std::uint64_t last) { return link_.digest_of(last); }), at);
    EXPECT_TRUE(a) << a.error().message();
    return *a;
  }
  // Another outbox file `name` in dir_, with `n` records ("<text> 0"...)
  // sealed on its own chain by the same terminal and key.
  std::unique_ptr<outbox::Outbox> other_chain(const std::string& name, const std::string& text,
                                              int n) {
    auto box = test::open_outbox(dir_.file(name));
    EXPECT_TRUE(box) << box.error().message();
    if (!box) return nullptr;
    auto up = test::make_uplink(**box, *signer_, key_id_, UplinkOptions{}, *(*box)->chain_state());
    up->start();
    for (int i = 0; i < n; ++i) {
      EXPECT_TRUE(up->submit(v1::PAYLOAD_HEALTH, text + " " + std::to_string(i),
                             outbox::Priority::telemetry));
    }
    EXPECT_TRUE(up->flush(10s));
    return std::move(*box);
  }
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
  auto other_key = crypto::PrivateKey::generate(crypto::KeyType::ecdsa_p256);
  ASSERT_TRUE(other_key);
  // Each distinct (its own time): a copy of one would be refused unchecked.
  std::vector<std::string> forgeries;
  const auto now = std::chrono::system_clock::now();
  for (int i = 0; i < 5000; ++i) {
    v1::SignedAcknowledgement forged;
    ASSERT_TRUE(forged.ParseFromString(ack({{1, 10}}, now + std::chrono::microseconds(i))));
    auto sig = crypto::sign(*other_key, link::ack_signing_input(forged.acknowledgement()));
    ASSERT_TRUE(sig);
    forged.set_signature(std::string(sig->begin(), sig->end()));
    forgeries.push_back(forged.SerializeAsString());
  }
  const auto start = std::chrono::steady_clock::now();
  for (const auto& f : forgeries) link_.ack_raw(f);
  ASSERT_TRUE(wait_dealt_with(5000, 60s));
  const auto elapsed = std::chrono::steady_clock::now() - start;
  auto st = sender_->stats();
  const auto intervals = static_cast<std::uint64_t>(elapsed / options.ack_check_interval) + 1;
  EXPECT_LE(st.ack_signature_checks, options.ack_checks * intervals)
      << "in " << intervals << " intervals";
  EXPECT_EQ(st.acks_refused, st.ack_signature_checks) << "each check refused one";
  EXPECT_EQ(st.ack_repeats_refused, 0u);
  EXPECT_EQ(st.acks_refused + st.acks_dropped, 5000u);
  EXPECT_GT(st.acks_deferred, 0u) << "the flood never reached the bound";
  EXPECT_EQ(st.acks_verified, 0u);
  EXPECT_EQ(box_->stats()->records, 10u) << "a forgery deleted records";
  link_.ack_raw(ack({{1, 10}}));
  ASSERT_TRUE(wait_records(0));
  EXPECT_EQ(sender_->stats().acks_verified, 1u);
}

// The same flood, of one forgery's bytes: its signature is checked once;
// every copy after is refused unchecked and takes none of the checks'
// budget, so the fleet's own acknowledgement behind them is not delayed.
TEST_F(AckReplayTest, TenThousandIdenticalForgeriesCostOneSignatureCheck_REQ29) {
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
  std::uint64_t delivered = 0;
  for (int chunk = 0; chunk < 20; ++chunk) {
    for (int i = 0; i < 500; ++i, ++delivered) link_.ack_raw(bytes);
    ASSERT_TRUE(wait_dealt_with(delivered)) << dealt_with(sender_->stats()) << " of " << delivered;
  }
  auto st = sender_->stats();
  EXPECT_EQ(st.ack_signature_checks, 1u);
  EXPECT_EQ(st.acks_refused, 10000u);
  EXPECT_EQ(st.ack_repeats_refused, 9999u);
  EXPECT_EQ(st.acks_deferred, 0u) << "copies took signature checks' budget";
  EXPECT_EQ(st.acks_dropped, 0u);
  EXPECT_EQ(st.acks_verified, 0u);
  EXPECT_EQ(box_->stats()->records, 10u) << "a forgery deleted records";
  link_.ack_raw(ack({{1, 10}}));
  ASSERT_TRUE(wait_records(0));
  EXPECT_EQ(sender_->stats().ack_signature_checks, 2u);
}

// The fleet's genuine acknowledgement of 1..10, but of another chain: the
// envelopes another outbox sealed under the same sequences (the terminal's
// outbox before it was restored from a backup, a fork). Verified, and it
// deletes nothing; in one acknowledgement a range of this chain deletes its
// records and a range of the other does not.
TEST_F(AckReplayTest, AGenuineAcknowledgementOfTheSameSequencesOnAnotherChainDeletesNothing_REQ29) {
  // The other chain: the same terminal and key, other payloads.
  auto fork_box = other_chain("fork.db", "fork", 10);
  ASSERT_TRUE(fork_box);
  auto fork_records = fork_box->oldest(100);
  ASSERT_TRUE(fork_records);
  ASSERT_EQ(fork_records->size(), 10u);
  auto fork_digest = [&](std::uint64_t seq) { return (*fork_records)[seq - 1].digest; };

  send_records(10);
  ASSERT_NE(fork_digest(10), link_.digest_of(10)) << "the chains differ";
  auto signed_ack = [&](std::vector<link::AckedRange> ranges) {
    auto a = link_.acker->sign("T-1", ranges, std::chrono::system_clock::now());
    EXPECT_TRUE(a) << a.error().message();
    return *a;
  };
  link_.ack_raw(signed_ack({{1, 10, fork_digest(10)}}));
  ASSERT_TRUE(wait_dealt_with(1));
  auto st = sender_->stats();
  EXPECT_EQ(st.acks_verified, 1u) << st.last_ack_refusal;
  EXPECT_EQ(st.ack_ranges_other_chain, 1u);
  EXPECT_NE(st.last_ack_refusal.find("another digest"), std::string::npos) << st.last_ack_refusal;
  // Several ranges, each of the other chain.
  link_.ack_raw(signed_ack({{1, 1, fork_digest(1)}, {3, 4, fork_digest(4)}}));
  ASSERT_TRUE(wait_dealt_with(2));
  EXPECT_EQ(sender_->stats().ack_ranges_other_chain, 3u);
  // One naming no envelope by digest at all: malformed, unchecked.
  link_.ack_raw(signed_ack({{1, 10, ""}}));
  ASSERT_TRUE(wait_dealt_with(3));
  EXPECT_EQ(sender_->stats().acks_refused, 1u) << sender_->stats().last_ack_refusal;
  EXPECT_EQ(sender_->stats().ack_signature_checks, 2u);
  EXPECT_EQ(box_->stats()->records, 10u) << "another chain's acknowledgement deleted records";
  // Mixed: 1..5 of this chain, 6..10 of the other.
  link_.ack_raw(signed_ack({{1, 5, link_.digest_of(5)}, {6, 10, fork_digest(10)}}));
  ASSERT_TRUE(wait_records(5)) << box_->stats()->records;
  auto held = box_->oldest(100);
  ASSERT_TRUE(held);
  ASSERT_EQ(held->size(), 5u);
  EXPECT_EQ(held->front().sequence, 6u);
  st = sender_->stats();
  EXPECT_EQ(st.acks_verified, 3u);
  EXPECT_EQ(st.ack_ranges_other_chain, 4u);
  // This chain's own for 6..10.
  link_.ack_raw(ack({{6, 10}}));
  ASSERT_TRUE(wait_records(0));
}

// A broker keeps a genuine acknowledgement (of records the terminal still
// holds) and the terminal restarts: portierd's new sender reads the newest
// verified time from its file, and the kept one, signed a minute before it,
// is refused as old, unverified. Without the file it would be checked.
TEST_F(AckReplayTest, AnOldGenuineAcknowledgementReplayedAfterARestartIsRefusedAsOld_REQ29) {
  const auto newest_file = dir_.file("ack-newest");
  start_sender(SenderOptions{.idle_poll = 50ms}, newest_file);
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(uplink_->submit(v1::PAYLOAD_HEALTH, "payload " + std::to_string(i),
                                outbox::Priority::telemetry));
  }
  ASSERT_TRUE(uplink_->flush(10s));
  link_.connect();
  ASSERT_TRUE(link_.wait_sent(10));
  const auto now = std::chrono::system_clock::now();
  const auto kept = ack({{6, 10}}, now - 1min);
  link_.ack_raw(ack({{1, 5}}, now));
  ASSERT_TRUE(wait_records(5));
  // The restart: a new sender on the same outbox and file.
  sender_->stop();
  link_.disconnect();
  sender_.reset();
  ASSERT_TRUE(std::filesystem::exists(newest_file));
  start_sender(SenderOptions{.idle_poll = 50ms}, newest_file);
  link_.connect();
  ASSERT_TRUE(link_.wait_sent(15)) << "6..10 sent again";
  link_.ack_raw(kept);
  ASSERT_TRUE(wait_dealt_with(1));
  auto st = sender_->stats();
  EXPECT_EQ(st.acks_old, 1u) << st.last_ack_refusal;
  EXPECT_EQ(st.ack_signature_checks, 0u);
  EXPECT_EQ(box_->stats()->records, 5u) << "an old acknowledgement deleted records";
  // The fleet's next one is taken.
  link_.ack_raw(ack({{6, 10}}));
  ASSERT_TRUE(wait_records(0));
  EXPECT_EQ(sender_->stats().ack_signature_checks, 1u);
}

// A fleet store with the terminal "T-1" (the fixture's key) registered, and
// its receiver.
struct Fleet {
  std::unique_ptr<fleet::SqliteFleetStore> store;
  std::unique_ptr<fleet::Receiver> receiver;
};
Fleet open_fleet(const std::string& db, const crypto::PublicKey& key) {
  Fleet f;
  auto store = fleet::SqliteFleetStore::open(db);
  EXPECT_TRUE(store) << store.error().message();
  if (!store) return f;
  fleet::Terminal term;
  term.id = "T-1";
  term.public_key_pem = *key.to_pem();
  term.key_algorithm = std::string(crypto::name(key.type()));
  EXPECT_TRUE((*store)->add_terminal(term));
  f.store = std::move(*store);
  f.receiver = std::make_unique<fleet::Receiver>(*f.store);
  return f;
}

// The real fleet's receiver and acknowledgement (tools/fleet: the
// receiver stores a run, sign_stored names each range by the digest the
// store holds). The fleet stored the terminal's chain before its outbox was
// restored from an older backup (or from another fork): the terminal now
// holds other envelopes under the same sequences. The fleet's genuine
// acknowledgement of what it stored, kept and replayed by a broker,
// deletes nothing of them; the fleet's acknowledgement of what the
// terminal now sends deletes them all.
TEST_F(AckReplayTest, TheFleetsAcknowledgementOfAnotherChainDeletesNothingItsOwnDeletesAll_REQ29) {
  // The chain the fleet stored: sealed by an outbox since lost.
  auto before = other_chain("before.db", "lost", 10);
  ASSERT_TRUE(before);
  auto lost = before->oldest(100);
  ASSERT_TRUE(lost);
  v1::EnvelopeRun lost_run;
  for (auto& r : *lost) lost_run.add_envelopes(r.envelope);
  auto fleet = open_fleet(dir_.file("fleet.db"), signer_->public_key());
  ASSERT_TRUE(fleet.receiver);
  const auto now = std::chrono::system_clock::now();
  auto in = fleet.receiver->receive_message("T-1", "run", lost_run.SerializeAsString(), now);
  ASSERT_TRUE(in.refused.empty()) << in.refused.front().message();
  ASSERT_EQ(in.acknowledge.size(), 10u);
  auto kept = fleet::sign_stored(*link_.acker, *fleet.receiver, "T-1", in.acknowledge, now);
  ASSERT_TRUE(kept && *kept);

  // The terminal as restored: other envelopes 1..10.
  send_records(10);
  link_.ack_raw(**kept);
  ASSERT_TRUE(wait_dealt_with(1));
  auto st = sender_->stats();
  EXPECT_EQ(st.acks_verified, 1u) << st.last_ack_refusal;
  EXPECT_EQ(st.ack_ranges_other_chain, 1u);
  EXPECT_EQ(box_->stats()->records, 10u) << "another chain's acknowledgement deleted records";

  // What the terminal sends now, to a fleet that takes it (a store of its
  // own: the first one refuses this chain as tampered), acknowledged as
  // portier-fleet does.
  v1::EnvelopeRun run;
  for (const auto& e : link_.sent()) run.add_envelopes(e.bytes);
  auto fresh = open_fleet(dir_.file("fleet2.db"), signer_->public_key());
  ASSERT_TRUE(fresh.receiver);
  in = fresh.receiver->receive_message("T-1", "run", run.SerializeAsString(), now);
  ASSERT_TRUE(in.refused.empty()) << in.refused.front().message();
  auto own = fleet::sign_stored(*link_.acker, *fresh.receiver, "T-1", in.acknowledge,
                                std::chrono::system_clock::now());
  ASSERT_TRUE(own && *own);
  link_.ack_raw(**own);
  ASSERT_TRUE(wait_records(0));
  EXPECT_EQ(sender_->stats().ack_ranges_other_chain, 1u);
}

}  // namespace
}  // namespace portier::management
