// The fleet's receiver against real envelopes of each key type: what an
// honest terminal sends is stored exactly once, in order, with its payloads;
// what a hostile broker or another terminal does to the stream (tamper,
// drop, reorder, insert, replay, re-sign, misname) is refused, recorded as
// an incident, stores nothing, and the honest stream goes on afterwards.
#include "tools/fleet/receiver.h"

#include <gtest/gtest.h>

#include <functional>

#include "common/crypto/sign.h"
#include "fleet_test_support.h"
#include "tools/fleet/stored_chain_check.h"

namespace portier::fleet {
namespace {

using crypto::KeyType;
using testing::bytes;
using testing::incident_kinds;
using testing::kT0;
using testing::seqs;
using testing::SimTerminal;
using testing::stored_sequences;
using Sealed = envelope::EnvelopeSealer::Sealed;

class ReceiverTest : public ::testing::TestWithParam<KeyType> {
 protected:
  void SetUp() override {
    auto s = SqliteFleetStore::open(dir.path() + "/fleet.db");
    ASSERT_TRUE(s) << s.error().message();
    store = std::move(*s);
    testing::register_terminal(*store, term);
    rx = std::make_unique<Receiver>(*store);
  }
  Result<Receipt> send(const Sealed& s) { return rx->receive(term.id, "envelope", bytes(s), kT0); }
  Result<Receipt> send_batch(const std::string& b) { return rx->receive(term.id, "batch", b, kT0); }
  std::vector<std::uint64_t> stored() { return stored_sequences(*store, term.id); }
  std::vector<std::string> incidents() { return incident_kinds(*store, term.id); }
  // A body of the envelope changed after it was signed.
  static Sealed altered(Sealed s, const std::string& payload) {
    v1::EnvelopeBody b;
    EXPECT_TRUE(b.ParseFromString(s.envelope.body()));
    b.set_payload(payload);
    b.SerializeToString(s.envelope.mutable_body());
    return s;
  }
  void expect_chain_verifies() {
    auto report = check_stored_chain(*store, term.id);
    ASSERT_TRUE(report) << report.error().message();
    EXPECT_TRUE(report->ok) << report->problem << " at " << report->first_bad;
  }

  testing::TempDir dir;
  std::unique_ptr<SqliteFleetStore> store;
  SimTerminal term{"ATM-0001", GetParam()};
  std::unique_ptr<Receiver> rx;
};

TEST_P(ReceiverTest, EveryEnvelopeIsStoredOnceInOrderWithItsPayloads_REQ19) {
  v1::Birth birth;
  birth.set_portierd_version("1.0.0");
  birth.set_session_epoch(0);
  v1::Inventory inv;
  inv.add_devices()->set_id("scanner0");
  v1::DecisionSummary sum;
  auto* count = sum.add_counts();
  count->set_app("atm-ui");
  count->set_count(7);
  v1::CommandResult result;
  result.set_command_id("cmd-1");
  result.set_status(v1::CommandResult::OK);
  std::vector<Sealed> sent = {
      term.seal(v1::PAYLOAD_BIRTH, birth.SerializeAsString()),
      term.health(1),
      term.seal(v1::PAYLOAD_INVENTORY, inv.SerializeAsString()),
      term.seal(v1::PAYLOAD_DECISION_SUMMARY, sum.SerializeAsString()),
      term.audit(1, {R"({"n":1})", R"({"n":2})"}),
      term.seal(v1::PAYLOAD_COMMAND_RESULT, result.SerializeAsString()),
  };
  for (auto& s : sent) {
    auto r = send(s);
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(r->outcome, Receipt::Outcome::stored);
    EXPECT_EQ(r->stored, std::vector<std::uint64_t>{s.sequence});
  }
  EXPECT_EQ(stored(), seqs(1, 6));
  // Every stored body names the terminal the transport authenticated.
  auto rows = store->envelopes(term.id, 0, 100);
  ASSERT_TRUE(rows);
  for (auto& row : *rows) {
    v1::Envelope e;
    v1::EnvelopeBody b;
    ASSERT_TRUE(e.ParseFromString(row.envelope) && b.ParseFromString(e.body()));
    EXPECT_EQ(b.terminal_id(), term.id);
    EXPECT_EQ(row.digest, std::string(sent[row.sequence - 1].digest.begin(),
                                      sent[row.sequence - 1].digest.end()));
  }
  auto t = store->terminal(term.id);
  EXPECT_TRUE(t->online);
  EXPECT_NE(t->last_birth.find("1.0.0"), std::string::npos);
  auto health = store->latest(term.id, v1::PAYLOAD_HEALTH);
  ASSERT_TRUE(health && *health);
  EXPECT_EQ((*health)->sequence, 2u);
  auto audit = store->audit(term.id, 0, 100);
  ASSERT_EQ(audit->size(), 2u);
  EXPECT_EQ((*audit)[1].record, 2u);
  EXPECT_EQ((*audit)[1].line, R"({"n":2})");
  auto results = store->results(term.id, 10);
  ASSERT_EQ(results->size(), 1u);
  EXPECT_EQ((*results)[0].command_id, "cmd-1");
  EXPECT_TRUE(incidents().empty());
  expect_chain_verifies();
}

// Regression (review of the management link): the transports acknowledged
// an envelope the fleet only held, so a broker that forged an unsigned one
// at sequence S made the terminal delete its genuine record S. Only what
// the store holds is acknowledgeable.
TEST_P(ReceiverTest, AForgedUnsignedEnvelopeIsHeldButNeverAcknowledged) {
  SimTerminal forger{term.id, GetParam()};  // its own key: the broker's forgery
  auto forged = send(forger.health(1, /*sign=*/false));
  ASSERT_TRUE(forged) << forged.error().message();
  EXPECT_EQ(forged->outcome, Receipt::Outcome::held);
  EXPECT_TRUE(acknowledgeable(*forged, 1, rx->holds(term.id, 1)).empty());
  // Resent by the broker: a duplicate of what is only held, still no ack.
  auto again = send(forger.health(1, false));
  if (again) {
    EXPECT_TRUE(acknowledgeable(*again, 1, rx->holds(term.id, 1)).empty());
  }
  // The terminal's own, signed: stored and acknowledged, once.
  auto genuine = send(term.health(1));
  ASSERT_TRUE(genuine) << genuine.error().message();
  EXPECT_EQ(acknowledgeable(*genuine, 1, rx->holds(term.id, 1)), (std::vector<std::uint64_t>{1}));
  auto resent = send(term.health(1));
  (void)resent;
  EXPECT_TRUE(rx->holds(term.id, 1));
}

TEST_P(ReceiverTest, AResendAfterALostAckIsAcknowledgedAndNotStoredAgain_REQ23) {
  auto a = term.audit(1, {"one"});
  auto b = term.audit(2, {"two"});
  ASSERT_TRUE(send(a));
  ASSERT_TRUE(send(b));
  for (auto* s : {&a, &b, &a}) {
    auto again = send(*s);
    ASSERT_TRUE(again) << again.error().message();
    EXPECT_EQ(again->outcome, Receipt::Outcome::duplicate);
    EXPECT_TRUE(again->stored.empty());
  }
  EXPECT_EQ(stored(), seqs(1, 2));
  EXPECT_EQ(store->audit(term.id, 0, 10)->size(), 2u);
  EXPECT_TRUE(incidents().empty());
}

TEST_P(ReceiverTest, AReplayWithTheSameSequenceButAnotherBodyIsAnIncident_REQ23) {
  auto one = term.health(1);
  ASSERT_TRUE(send(one));
  auto r = send(altered(one, "replayed and altered"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::failed_precondition);
  EXPECT_EQ(incidents(), std::vector<std::string>{"duplicate conflicting"});
  EXPECT_EQ(stored(), seqs(1, 1));
}

TEST_P(ReceiverTest, ATamperedBodyIsRejectedAndTheHonestStreamContinues_REQ29) {
  auto one = term.health(1), two = term.health(2), three = term.health(3);
  ASSERT_TRUE(send(one));
  auto r = send(altered(two, "tampered in flight"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::permission_denied);
  EXPECT_EQ(incidents(), std::vector<std::string>{"tampered"});
  EXPECT_EQ(stored(), seqs(1, 1));
  ASSERT_TRUE(send(two));
  ASSERT_TRUE(send(three));
  EXPECT_EQ(stored(), seqs(1, 3));
  expect_chain_verifies();
}

TEST_P(ReceiverTest, ADroppedEnvelopeIsAGapAndIsStoredInOrderOnceItArrives_REQ29) {
  auto one = term.health(1), two = term.health(2), three = term.health(3);
  ASSERT_TRUE(send(one));
  auto gap = send(three);
  ASSERT_FALSE(gap);
  EXPECT_EQ(gap.error().code, Errc::failed_precondition);
  EXPECT_NE(gap.error().message().find("expected 2"), std::string::npos) << gap.error().message();
  EXPECT_EQ(incidents(), std::vector<std::string>{"gap"});
  EXPECT_EQ(stored(), seqs(1, 1));  // nothing past the gap is stored
  auto r = send(two);               // the terminal sends it again
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->stored, seqs(2, 3));
  EXPECT_EQ(stored(), seqs(1, 3));
  auto again = send(three);  // and its resend of 3 is no news
  ASSERT_TRUE(again);
  EXPECT_EQ(again->outcome, Receipt::Outcome::duplicate);
  EXPECT_EQ(stored(), seqs(1, 3));
  expect_chain_verifies();
}

TEST_P(ReceiverTest, AForgedEnvelopePastAGapIsRefusedAtOnceNotHeld_REQ29) {
  auto one = term.health(1), two = term.health(2), three = term.health(3);
  SimTerminal stranger(term.id, GetParam());
  auto forged = three;
  ASSERT_TRUE(envelope::sign_envelope(forged.envelope, stranger.key));
  auto r = send(forged);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::permission_denied);
  EXPECT_TRUE(store->chain(term.id)->parked.empty());
  EXPECT_EQ(incidents(), std::vector<std::string>{"bad signature"});
  for (auto* s : {&one, &two, &three}) ASSERT_TRUE(send(*s));
  EXPECT_EQ(stored(), seqs(1, 3));
}

TEST_P(ReceiverTest, ReorderedEnvelopesAreStoredInSequenceOrderExactlyOnce_REQ29) {
  std::vector<Sealed> run;
  for (int i = 0; i < 5; ++i) run.push_back(term.audit(static_cast<std::uint64_t>(i + 1), {"r"}));
  for (int i : {4, 2, 3, 1}) EXPECT_FALSE(send(run[static_cast<std::size_t>(i)]));
  EXPECT_TRUE(stored().empty());
  auto r = send(run[0]);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->stored, seqs(1, 5));
  EXPECT_EQ(stored(), seqs(1, 5));
  EXPECT_EQ(store->audit(term.id, 0, 100)->size(), 5u);
  auto kinds = incidents();
  EXPECT_EQ(std::count(kinds.begin(), kinds.end(), "gap"), 4);
  EXPECT_EQ(std::count(kinds.begin(), kinds.end(), "reordered"), 4);
  for (auto& s : run) EXPECT_EQ(send(s)->outcome, Receipt::Outcome::duplicate);
  expect_chain_verifies();
}

TEST_P(ReceiverTest, AnInsertedForgedLinkIsNeverStored_REQ23) {
  auto one = term.health(1);
  const auto at_two = term.sealer.state();
  auto two = term.health(2);
  // A broker sees every digest: it seals its own link 2 onto the genuine
  // chain, once signed with its own key and once unsigned (as if a batch
  // would cover it).
  SimTerminal forger(term.id, GetParam());
  forger.sealer = envelope::EnvelopeSealer(term.id, GetParam(), at_two);
  auto signed_forgery = forger.health(666);
  forger.sealer = envelope::EnvelopeSealer(term.id, GetParam(), at_two);
  auto unsigned_forgery = forger.health(667, false);
  ASSERT_TRUE(send(one));
  auto r = send(signed_forgery);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::permission_denied);
  auto held = send(unsigned_forgery);
  ASSERT_TRUE(held);
  EXPECT_EQ(held->outcome, Receipt::Outcome::held);  // waits for a signature that never comes
  EXPECT_EQ(stored(), seqs(1, 1));
  auto genuine = send(two);
  ASSERT_TRUE(genuine) << genuine.error().message();
  EXPECT_EQ(genuine->stored, seqs(2, 2));
  auto row = store->envelope(term.id, 2);
  ASSERT_TRUE(row && *row);
  EXPECT_EQ((*row)->envelope, bytes(two));
  EXPECT_EQ(incidents(), (std::vector<std::string>{"bad signature", "inserted"}));
  EXPECT_EQ(store->chain(term.id)->pending.size(), 0u);
  expect_chain_verifies();
}

TEST_P(ReceiverTest, AnEnvelopeNamingAnotherTerminalIsRefused_REQ19) {
  SimTerminal other("ATM-0002", GetParam());
  testing::register_terminal(*store, other);
  auto theirs = other.health(1);
  // Sent on ATM-0001's topic (or TLS identity): the body says ATM-0002.
  auto r = rx->receive(term.id, "health", bytes(theirs), kT0);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::permission_denied);
  EXPECT_EQ(incidents(), std::vector<std::string>{"wrong terminal"});
  // Rewriting the id in the body breaks ATM-0002's signature.
  v1::EnvelopeBody b;
  ASSERT_TRUE(b.ParseFromString(theirs.envelope.body()));
  b.set_terminal_id(term.id);
  auto renamed = theirs;
  b.SerializeToString(renamed.envelope.mutable_body());
  EXPECT_EQ(send(renamed).error().code, Errc::permission_denied);
  EXPECT_EQ(incidents().back(), "bad signature");
  EXPECT_TRUE(stored().empty());
  EXPECT_TRUE(stored_sequences(*store, other.id).empty());
  // Both honest streams go on.
  ASSERT_TRUE(send(term.health(1)));
  ASSERT_TRUE(rx->receive(other.id, "health", bytes(theirs), kT0));
  EXPECT_EQ(stored(), seqs(1, 1));
  EXPECT_EQ(stored_sequences(*store, other.id), seqs(1, 1));
}

TEST_P(ReceiverTest, ABadSignatureIsRefusedAndTheStreamContinues_REQ29) {
  auto one = term.health(1);
  SimTerminal stranger("ATM-0001", GetParam());
  auto resigned = one;
  ASSERT_TRUE(envelope::sign_envelope(resigned.envelope, stranger.key));
  auto r = send(resigned);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::permission_denied);
  auto garbled = one;
  garbled.envelope.mutable_signature()->mutable_value()->back() ^= 1;
  EXPECT_EQ(send(garbled).error().code, Errc::permission_denied);
  EXPECT_EQ(incidents(), (std::vector<std::string>{"bad signature", "tampered"}));
  EXPECT_TRUE(stored().empty());
  ASSERT_TRUE(send(one));
  EXPECT_EQ(stored(), seqs(1, 1));
}

TEST_P(ReceiverTest, AnUnknownTerminalIsRefusedAndRecorded) {
  SimTerminal stranger("ATM-9999", GetParam());
  auto r = rx->receive(stranger.id, "envelope", bytes(stranger.health(1)), kT0);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::not_found);
  EXPECT_EQ(incident_kinds(*store, stranger.id), std::vector<std::string>{"unknown terminal"});
  EXPECT_TRUE(stored_sequences(*store, stranger.id).empty());
}

TEST_P(ReceiverTest, ABatchCoversUnsignedEnvelopesOnlyWhenItsSignatureArrives_REQ29) {
  std::vector<Sealed> run;
  for (int i = 0; i < 4; ++i) run.push_back(term.health(i, false));
  for (auto& s : run) {
    auto r = send(s);
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(r->outcome, Receipt::Outcome::held);
  }
  EXPECT_EQ(send(run[1])->outcome, Receipt::Outcome::duplicate);  // held already
  EXPECT_TRUE(stored().empty());
  // A batch by another key is refused; nothing moves.
  SimTerminal stranger(term.id, GetParam());
  auto forged = stranger.batch(1, 4, run.back().digest);
  EXPECT_EQ(send_batch(forged).error().code, Errc::permission_denied);
  EXPECT_TRUE(stored().empty());
  auto batch = term.batch(1, 4, run.back().digest);
  auto r = send_batch(batch);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->stored, seqs(1, 4));
  EXPECT_EQ(stored(), seqs(1, 4));
  EXPECT_EQ(send_batch(batch)->outcome, Receipt::Outcome::duplicate);
  // The next run continues from there, and a signed link covers it too.
  auto five = term.health(5, false);
  auto six = term.health(6);
  ASSERT_TRUE(send(five));
  auto covered = send(six);
  ASSERT_TRUE(covered);
  EXPECT_EQ(covered->stored, seqs(5, 6));
  EXPECT_EQ(incidents(), std::vector<std::string>{"bad signature"});
  expect_chain_verifies();
}

// A batch signature can overtake its envelopes (another topic, another
// receiver): verified on its own and held, it covers the run once the
// envelopes are there. A forged early batch is refused at once.
TEST_P(ReceiverTest, ABatchThatArrivesBeforeItsEnvelopesIsHeldAndAppliedLater_REQ29) {
  std::vector<Sealed> run;
  for (int i = 0; i < 3; ++i) run.push_back(term.health(i, false));
  SimTerminal stranger(term.id, GetParam());
  EXPECT_EQ(send_batch(stranger.batch(1, 3, run.back().digest)).error().code,
            Errc::permission_denied);
  auto batch = term.batch(1, 3, run.back().digest);
  auto early = send_batch(batch);
  ASSERT_TRUE(early) << early.error().message();
  EXPECT_EQ(early->outcome, Receipt::Outcome::held);
  EXPECT_EQ(send_batch(batch)->outcome, Receipt::Outcome::duplicate);
  EXPECT_EQ(store->chain(term.id)->parked_batches.size(), 1u);
  ASSERT_TRUE(send(run[0]));
  ASSERT_TRUE(send(run[1]));
  EXPECT_TRUE(stored().empty());
  auto r = send(run[2]);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->stored, seqs(1, 3));
  EXPECT_EQ(stored(), seqs(1, 3));
  EXPECT_TRUE(store->chain(term.id)->parked_batches.empty());
  EXPECT_EQ(incidents(), std::vector<std::string>{"bad signature"});
  expect_chain_verifies();
}

// The terminal's outbox dropped 2 and 3 unsent (outbox full) and said so in
// a signed drop notice (4): the fleet follows the chain across the gap.
TEST_P(ReceiverTest, ASignedDropNoticeBridgesTheGapTheOutboxLeft_REQ29) {
  auto one = term.health(1);
  std::vector<Sealed> dropped = {term.health(2), term.health(3)};
  v1::DropNotice n;
  for (auto& d : dropped) {
    v1::EnvelopeBody b;
    ASSERT_TRUE(b.ParseFromString(d.envelope.body()));
    auto* e = n.add_dropped();
    e->set_sequence(d.sequence);
    e->set_digest(d.digest.data(), d.digest.size());
    e->set_prev_digest(b.prev_digest());
    e->set_priority("telemetry");
  }
  n.set_reason("outbox full");
  const auto before_notice = term.sealer.state();
  auto unsigned_notice = term.seal(v1::PAYLOAD_DROP, n.SerializeAsString(), false);
  term.sealer = envelope::EnvelopeSealer(term.id, GetParam(), before_notice);
  auto notice = term.seal(v1::PAYLOAD_DROP, n.SerializeAsString());
  auto five = term.health(5);
  ASSERT_TRUE(send(one));
  // An unsigned notice (anyone could have made it up) bridges nothing.
  EXPECT_FALSE(send(unsigned_notice));
  EXPECT_FALSE(send(five));  // held past the gap
  EXPECT_EQ(stored(), seqs(1, 1));
  auto r = send(notice);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->stored, (std::vector<std::uint64_t>{4, 5}));
  EXPECT_EQ(stored(), (std::vector<std::uint64_t>{1, 4, 5}));
  auto kinds = incidents();
  EXPECT_NE(std::find(kinds.begin(), kinds.end(), "dropped by terminal"), kinds.end());
  // A dropped envelope that turns up afterwards is not taken.
  auto late = send(dropped[0]);
  ASSERT_FALSE(late);
  EXPECT_EQ(incidents().back(), "duplicate conflicting");
  EXPECT_EQ(stored(), (std::vector<std::uint64_t>{1, 4, 5}));
  expect_chain_verifies();
}

// The outbox dropped 2 and 4 but kept 3 (a security record outranks
// telemetry): one notice bridges both gaps as the chain reaches each.
TEST_P(ReceiverTest, ADropNoticeBridgesDropsWithKeptEnvelopesBetweenThem_REQ29) {
  auto one = term.health(1);
  auto two = term.health(2);
  auto three = term.audit(1, {"kept"});
  auto four = term.health(4);
  v1::DropNotice n;
  for (auto* d : {&two, &four}) {
    v1::EnvelopeBody b;
    ASSERT_TRUE(b.ParseFromString(d->envelope.body()));
    auto* e = n.add_dropped();
    e->set_sequence(d->sequence);
    e->set_digest(d->digest.data(), d->digest.size());
    e->set_prev_digest(b.prev_digest());
  }
  n.set_reason("outbox full");
  auto notice = term.seal(v1::PAYLOAD_DROP, n.SerializeAsString());
  auto six = term.health(6);
  ASSERT_TRUE(send(one));
  EXPECT_FALSE(send(three));  // held past the gap at 2
  EXPECT_FALSE(send(six));
  auto r = send(notice);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->stored, (std::vector<std::uint64_t>{3, 5, 6}));
  EXPECT_EQ(stored(), (std::vector<std::uint64_t>{1, 3, 5, 6}));
  auto kinds = incidents();
  EXPECT_EQ(std::count(kinds.begin(), kinds.end(), "dropped by terminal"), 2);
  EXPECT_EQ(store->chain(term.id)->parked.size(), 0u);
  expect_chain_verifies();
}

crypto::Bytes offline_message(const std::string& id, std::uint64_t epoch) {
  static constexpr std::string_view kLabel = "portier/v1 offline";
  crypto::Bytes m(kLabel.begin(), kLabel.end());
  m.push_back(0);
  m.insert(m.end(), id.begin(), id.end());
  m.push_back(0);
  for (int i = 7; i >= 0; --i) m.push_back(static_cast<std::uint8_t>(epoch >> (8 * i)));
  return m;
}

std::string offline(const std::string& id, std::uint64_t epoch, const crypto::PrivateKey& key) {
  v1::Offline o;
  o.set_terminal_id(id);
  o.set_session_epoch(epoch);
  auto sig = crypto::sign(key, offline_message(id, epoch));
  o.set_signature(sig->data(), sig->size());
  o.set_key_id(*envelope::key_id(*key.public_key()));
  return o.SerializeAsString();
}

TEST_P(ReceiverTest, OnlyTheTerminalsSignedWillMarksItOffline_REQ19) {
  auto st = term.sealer.state();
  st.session_epoch = 3;
  term.sealer = envelope::EnvelopeSealer(term.id, GetParam(), st);
  ASSERT_TRUE(send(term.health(1)));
  EXPECT_TRUE(store->terminal(term.id)->online);
  SimTerminal stranger(term.id, GetParam());
  EXPECT_EQ(rx->receive(term.id, "offline", offline(term.id, 3, stranger.key), kT0).error().code,
            Errc::permission_denied);
  v1::Offline forged;
  ASSERT_TRUE(forged.ParseFromString(offline(term.id, 3, term.key)));
  forged.set_session_epoch(4);  // the signature was for epoch 3
  EXPECT_EQ(rx->receive(term.id, "offline", forged.SerializeAsString(), kT0).error().code,
            Errc::permission_denied);
  EXPECT_TRUE(store->terminal(term.id)->online);
  auto stale = rx->receive(term.id, "offline", offline(term.id, 2, term.key), kT0);
  ASSERT_TRUE(stale) << stale.error().message();
  EXPECT_EQ(stale->outcome, Receipt::Outcome::stale);  // an older session's will
  EXPECT_TRUE(store->terminal(term.id)->online);
  auto r = rx->receive(term.id, "offline", offline(term.id, 3, term.key), kT0);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->outcome, Receipt::Outcome::offline);
  EXPECT_FALSE(store->terminal(term.id)->online);
  EXPECT_EQ(incidents(), (std::vector<std::string>{"bad signature", "tampered"}));
}

TEST_P(ReceiverTest, MalformedOversizedAndUnknownMessagesAreIncidents) {
  EXPECT_EQ(rx->receive(term.id, "envelope", "\xff\xff\xff", kT0).error().code,
            Errc::invalid_argument);
  EXPECT_EQ(rx->receive(term.id, "batch", "\xff\xff\xff", kT0).error().code,
            Errc::invalid_argument);
  EXPECT_EQ(rx->receive(term.id, "telnet", bytes(term.health(1)), kT0).error().code,
            Errc::invalid_argument);
  Receiver small(*store, Receiver::Options{.max_message_bytes = 64});
  EXPECT_EQ(small.receive(term.id, "envelope", std::string(65, 'x'), kT0).error().code,
            Errc::invalid_argument);
  // Anyone can send those: one tallied row, counting the four.
  EXPECT_EQ(incidents(), std::vector<std::string>{"malformed"});
  EXPECT_EQ(testing::incident_total(*store, term.id, "malformed"), 4u);
  EXPECT_TRUE(stored().empty());
}

// A broker that floods unsigned or out-of-order envelopes fills a bounded
// room per terminal; the honest stream still gets through afterwards.
TEST_P(ReceiverTest, HeldEnvelopesAreBoundedPerTerminal) {
  std::vector<Sealed> run;
  for (int i = 0; i < 3; ++i) run.push_back(term.health(i, false));
  Receiver::Options o;
  o.max_held_bytes = bytes(run[0]).size() + bytes(run[1]).size() + bytes(run[2]).size() - 1;
  Receiver bounded(*store, o);
  std::function<Result<Receipt>(const std::string&)> take = [&](const std::string& b) {
    return bounded.receive(term.id, "envelope", b, kT0);
  };
  ASSERT_TRUE(take(bytes(run[0])));
  ASSERT_TRUE(take(bytes(run[1])));
  auto full = take(bytes(run[2]));
  ASSERT_FALSE(full);
  EXPECT_EQ(full.error().code, Errc::resource_exhausted);
  ASSERT_TRUE(bounded.receive(term.id, "batch", term.batch(1, 2, run[1].digest), kT0));
  EXPECT_EQ(stored(), seqs(1, 2));
  ASSERT_TRUE(take(bytes(run[2])));  // room again
  Receiver::Options one_parked;
  one_parked.max_parked = 1;
  Receiver few(*store, one_parked);
  take = [&](const std::string& b) { return few.receive(term.id, "envelope", b, kT0); };
  auto four = term.health(4), five = term.health(5), six = term.health(6);
  EXPECT_EQ(take(bytes(six)).error().code, Errc::failed_precondition);   // held past the gap
  EXPECT_EQ(take(bytes(five)).error().code, Errc::failed_precondition);  // nearer: 6 makes way
  EXPECT_EQ(take(bytes(six)).error().code, Errc::resource_exhausted);    // no more room
  auto r = take(bytes(four));
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->stored, seqs(3, 5));
  ASSERT_TRUE(take(bytes(six)));
  EXPECT_EQ(stored(), seqs(1, 6));
  auto kinds = incidents();
  EXPECT_EQ(std::count(kinds.begin(), kinds.end(), "overflow"), 1);  // tallied
  EXPECT_EQ(testing::incident_total(*store, term.id, "overflow"), 2u);
  expect_chain_verifies();
}

// A transport may hand over what arrived together: each message gets the
// answer it would get alone, and the group is one transaction.
TEST_P(ReceiverTest, AGroupOfMessagesIsAnsweredOneByOneAndCommittedOnce_REQ29) {
  auto one = term.health(1), two = term.health(2, false), three = term.health(3);
  auto four = term.health(4);
  std::vector<Receiver::Message> group = {
      {"health", bytes(three)},                     // past a gap: held
      {"health", bytes(one)},                       // stored
      {"health", bytes(altered(four, "changed"))},  // tampered
      {"health", bytes(two)},                       // closes the gap: 2 and 3
      {"health", bytes(one)},                       // a resend within the group
      {"offline", "\xff"},                          // malformed
      {"health", bytes(four)},                      // stored
  };
  const auto version = store->chain(term.id)->version;
  auto r = rx->receive_many(term.id, group, kT0);
  ASSERT_EQ(r.size(), group.size());
  EXPECT_EQ(r[0].error().code, Errc::failed_precondition);
  ASSERT_TRUE(r[1]);
  EXPECT_EQ(r[1]->stored, seqs(1, 1));
  EXPECT_EQ(r[2].error().code, Errc::permission_denied);
  ASSERT_TRUE(r[3]) << r[3].error().message();
  EXPECT_EQ(r[3]->stored, seqs(2, 3));
  EXPECT_EQ(r[4]->outcome, Receipt::Outcome::duplicate);
  EXPECT_EQ(r[5].error().code, Errc::invalid_argument);
  EXPECT_EQ(r[6]->stored, seqs(4, 4));
  EXPECT_EQ(stored(), seqs(1, 4));
  EXPECT_EQ(store->chain(term.id)->version, version + 1);  // one commit
  auto kinds = incidents();
  std::sort(kinds.begin(), kinds.end());
  EXPECT_EQ(kinds, (std::vector<std::string>{"gap", "malformed", "reordered", "tampered"}));
  expect_chain_verifies();
}

// A run of envelopes in one message (MQTT up/run, gRPC Uplink.run).
std::string run_of(const std::vector<Sealed>& envelopes) {
  v1::EnvelopeRun r;
  for (const auto& e : envelopes) r.add_envelopes(bytes(e));
  return r.SerializeAsString();
}

TEST_P(ReceiverTest, ARunIsStoredInOneGoAndAcknowledgedWhole_REQ29) {
  std::vector<Sealed> run;
  for (int i = 1; i <= 40; ++i) run.push_back(term.health(i));
  auto in = rx->receive_message(term.id, "run", run_of(run), kT0);
  EXPECT_TRUE(in.refused.empty()) << in.refused.front().message();
  EXPECT_EQ(in.acknowledge, seqs(1, 40));
  EXPECT_EQ(stored(), seqs(1, 40));
  // The same run again (its acknowledgement was lost): stored once,
  // acknowledged again.
  in = rx->receive_message(term.id, "run", run_of(run), kT0);
  EXPECT_TRUE(in.refused.empty());
  EXPECT_EQ(in.acknowledge, seqs(1, 40));
  EXPECT_EQ(stored(), seqs(1, 40));
  EXPECT_TRUE(incidents().empty());
  expect_chain_verifies();
}

// Batch signing: the run's signature is on its last envelope, which comes
// in a later message; the connection breaks in between and the terminal
// sends everything unacknowledged again. Nothing only held is acknowledged
// (a forged unsigned envelope must never make the terminal delete its own),
// and each envelope is stored once.
TEST_P(ReceiverTest, ARunSplitAcrossAReconnectIsAcknowledgedOnlyOnceItsSignatureArrives_REQ29) {
  std::vector<Sealed> signing_run;
  for (int i = 1; i <= 6; ++i) signing_run.push_back(term.health(i, /*sign=*/i == 6));
  const std::vector<Sealed> first(signing_run.begin(), signing_run.begin() + 4);
  auto in = rx->receive_message(term.id, "run", run_of(first), kT0);
  EXPECT_TRUE(in.refused.empty());
  EXPECT_TRUE(in.acknowledge.empty()) << "held, unsigned: not acknowledgeable";
  EXPECT_TRUE(stored().empty());
  // Reconnected: the terminal sends 1..6 again (its first message was never
  // acknowledged), then 7..8.
  in = rx->receive_message(term.id, "run", run_of(signing_run), kT0);
  EXPECT_TRUE(in.refused.empty()) << in.refused.front().message();
  EXPECT_EQ(in.acknowledge, seqs(1, 6));
  std::vector<Sealed> next{term.health(7), term.health(8)};
  in = rx->receive_message(term.id, "run", run_of(next), kT0);
  EXPECT_EQ(in.acknowledge, seqs(7, 8));
  EXPECT_EQ(stored(), seqs(1, 8));
  EXPECT_TRUE(incidents().empty());
  expect_chain_verifies();
}

TEST_P(ReceiverTest, AMalformedOrOversizedRunIsRefusedAsAWholeAndRecorded) {
  auto in = rx->receive_message(term.id, "run", "\xff\xff\xff", kT0);
  ASSERT_EQ(in.refused.size(), 1u);
  EXPECT_EQ(in.refused[0].code, Errc::invalid_argument);
  EXPECT_TRUE(in.acknowledge.empty());
  Receiver small(*store, Receiver::Options{.max_run = 3});
  std::vector<Sealed> run;
  for (int i = 1; i <= 4; ++i) run.push_back(term.health(i));
  in = small.receive_message(term.id, "run", run_of(run), kT0);
  ASSERT_EQ(in.refused.size(), 1u);
  EXPECT_NE(in.refused[0].message().find("4 envelopes"), std::string::npos)
      << in.refused[0].message();
  EXPECT_TRUE(stored().empty());
  // Tallied: one row of the terminal, kind and interval, counting both.
  EXPECT_EQ(incidents(), (std::vector<std::string>{"malformed"}));
  auto rows = store->incidents(term.id, 10);
  ASSERT_TRUE(rows && rows->size() == 1);
  EXPECT_EQ(rows->front().count, 2u);
  // A run with one forged envelope in the middle: the others are stored
  // and acknowledged, the forgery is refused and recorded.
  auto forged = altered(run[1], "not what was signed");
  in = rx->receive_message(term.id, "run", run_of({run[0], forged, run[1], run[2], run[3]}), kT0);
  EXPECT_EQ(in.refused.size(), 1u);
  EXPECT_EQ(in.acknowledge, seqs(1, 4));
  EXPECT_EQ(stored(), seqs(1, 4));
  expect_chain_verifies();
}

INSTANTIATE_TEST_SUITE_P(Algorithms, ReceiverTest,
                         ::testing::Values(KeyType::ecdsa_p256, KeyType::ed25519, KeyType::sm2),
                         [](const auto& info) {
                           switch (info.param) {
                             case KeyType::ecdsa_p256:
                               return std::string("EcdsaP256");
                             case KeyType::ed25519:
                               return std::string("Ed25519");
                             case KeyType::sm2:
                               break;
                           }
                           return std::string("Sm2Sm3");
                         });

}  // namespace
}  // namespace portier::fleet
