// A terminal's key rotation as the fleet sees it (issue 10, item 1): the
// enrolment service certifies the new key as the terminal's next key; the
// receiver takes it at the first envelope it signs that continues the chain;
// from then on only the new key verifies, and verify-chain follows the key
// history across the change. What a thief of the old key signs after the
// change is refused and recorded; a key nobody certified never takes over.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <algorithm>
#include <functional>

#include "agent/envelope/offline_notice.h"
#include "fleet_test_support.h"
#include "forwarding_store.h"
#include "tools/fleet/receiver.h"
#include "tools/fleet/stored_chain_check.h"

namespace portier::fleet {
namespace {

using namespace testing;

class KeyRotationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = SqliteFleetStore::open(dir_.path() + "/fleet.db");
    ASSERT_TRUE(s) << s.error().message();
    store_ = std::move(*s);
    register_terminal(*store_, t_);
  }
  Result<Receipt> receive(const envelope::EnvelopeSealer::Sealed& s) {
    return receiver_->receive(t_.id, "health", bytes(s), kT0);
  }
  // The next envelope of the chain, signed by `key`.
  envelope::EnvelopeSealer::Sealed signed_by(const crypto::PrivateKey& key, int n) {
    auto s = t_.health(n, false);
    EXPECT_TRUE(envelope::sign_envelope(s.envelope, key));
    return s;
  }
  void expect_chain_ok(std::uint64_t verified) {
    auto r = check_stored_chain(*store_, t_.id);
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_TRUE(r->ok) << r->first_bad << ": " << r->problem;
    EXPECT_EQ(r->verified, verified);
  }

  TempDir dir_;
  std::unique_ptr<SqliteFleetStore> store_;
  SimTerminal t_{"T-rotating", crypto::KeyType::ecdsa_p256};
  crypto::PrivateKey new_key_ = *crypto::PrivateKey::generate(crypto::KeyType::ecdsa_p256);
  std::unique_ptr<Receiver> receiver_ = nullptr;
};

TEST_F(KeyRotationTest, TheNextKeyTakesOverAtItsFirstEnvelopeAndTheOldKeyIsRefusedAfter_REQ33) {
  receiver_ = std::make_unique<Receiver>(*store_);
  const auto old_pem = t_.public_pem();
  const auto new_pem = *new_key_.public_key()->to_pem();
  for (int i = 1; i <= 3; ++i) ASSERT_TRUE(receive(t_.health(i))) << i;
  ASSERT_TRUE(store_->set_next_key(t_.id, new_pem, 0));
  // Still in flight when the key was certified: the old key's envelopes
  // before the change are taken.
  ASSERT_TRUE(receive(t_.health(4)));
  auto keys = store_->keys(t_.id);
  ASSERT_TRUE(keys);
  ASSERT_EQ(keys->size(), 1u);
  EXPECT_EQ(keys->front().from_sequence, 0u);  // the next key, not used yet

  auto first_new = receive(signed_by(new_key_, 5));
  ASSERT_TRUE(first_new) << first_new.error().message();
  EXPECT_EQ(store_->terminal(t_.id)->public_key_pem, new_pem);
  keys = store_->keys(t_.id);
  ASSERT_TRUE(keys);
  ASSERT_EQ(keys->size(), 2u);
  EXPECT_EQ((*keys)[0].public_key_pem, old_pem);
  EXPECT_EQ((*keys)[0].from_sequence, 1u);
  EXPECT_EQ((*keys)[1].public_key_pem, new_pem);
  EXPECT_EQ((*keys)[1].from_sequence, 5u);

  // The thief of the old key signs the next envelope: refused, recorded as
  // the old key's, which the rotation retired at 5.
  const auto forged = signed_by(t_.key, 6);
  auto refused = receive(forged);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Errc::permission_denied);
  EXPECT_EQ(incident_kinds(*store_, t_.id).back(), "retired key");
  // The same link signed by the new key is the terminal's.
  auto genuine = forged;
  genuine.envelope.clear_signature();
  ASSERT_TRUE(envelope::sign_envelope(genuine.envelope, new_key_));
  EXPECT_TRUE(receive(genuine));
  EXPECT_EQ(stored_sequences(*store_, t_.id), seqs(1, 6));
  // Offline, the chain verifies across the change with the key history.
  expect_chain_ok(6);
}

TEST_F(KeyRotationTest, AKeyTheFleetNeverCertifiedNeverTakesOver_REQ33) {
  receiver_ = std::make_unique<Receiver>(*store_);
  ASSERT_TRUE(receive(t_.health(1)));
  // A key of the thief's own, at the next sequence: no next key is known.
  auto r = receive(signed_by(new_key_, 2));
  ASSERT_FALSE(r);
  EXPECT_EQ(incident_kinds(*store_, t_.id).back(), "bad signature");
  // Another key is certified as the next one: the thief's still is not it.
  auto certified = *crypto::PrivateKey::generate(crypto::KeyType::ecdsa_p256);
  ASSERT_TRUE(store_->set_next_key(t_.id, *certified.public_key()->to_pem(), 0));
  t_.sealer.reset(envelope::ChainState{store_->chain(t_.id)->state});
  r = receive(signed_by(new_key_, 2));
  ASSERT_FALSE(r);
  EXPECT_EQ(store_->terminal(t_.id)->public_key_pem, t_.public_pem());
  t_.sealer.reset(envelope::ChainState{store_->chain(t_.id)->state});
  EXPECT_TRUE(receive(signed_by(certified, 2)));
  EXPECT_EQ(store_->terminal(t_.id)->public_key_pem, *certified.public_key()->to_pem());
  expect_chain_ok(2);
}

// Finding of the attacker review: with no cutover declared (a key in a
// PKCS#11 token, certified from its rotate-key CSR), one unsigned envelope
// a broker injects after the chain's head (it saw the head's digest) kept
// the next key from ever taking over: the terminal's first envelope of the
// new key was refused on every resend, and the old key no longer signs.
TEST_F(KeyRotationTest, AnInjectedUnsignedEnvelopeDoesNotBlockTheNextKeysTakeover_REQ33) {
  receiver_ = std::make_unique<Receiver>(*store_);
  ASSERT_TRUE(receive(t_.health(1)));
  ASSERT_TRUE(store_->set_next_key(t_.id, *new_key_.public_key()->to_pem(), 0));
  envelope::EnvelopeSealer broker(t_.id, t_.key.type(), t_.sealer.state());
  v1::HealthReport h;
  h.mutable_health()->add_reasons("injected");
  auto junk = broker.seal(v1::PAYLOAD_HEALTH, h.SerializeAsString(), kT0);
  ASSERT_TRUE(junk);
  ASSERT_TRUE(receive(*junk));  // held, waiting for a signature
  const auto first_new = signed_by(new_key_, 2);
  auto r = receive(first_new);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->stored, std::vector<std::uint64_t>{2});
  EXPECT_EQ(store_->terminal(t_.id)->public_key_pem, *new_key_.public_key()->to_pem());
  ASSERT_TRUE(receive(signed_by(new_key_, 3)));
  auto row = store_->envelope(t_.id, 2);
  ASSERT_TRUE(row && *row);
  EXPECT_EQ((*row)->envelope, bytes(first_new));
  expect_chain_ok(3);
}

// The same takeover when the new key's first run is batch signed: its
// unsigned links, then its BatchSignature (the PKCS#11 path with
// signing = "batch").
TEST_F(KeyRotationTest, TheNextKeyTakesOverWithABatchSignatureAsItsFirstSignature_REQ33) {
  receiver_ = std::make_unique<Receiver>(*store_);
  ASSERT_TRUE(receive(t_.health(1)));
  ASSERT_TRUE(store_->set_next_key(t_.id, *new_key_.public_key()->to_pem(), 0));
  const auto u2 = t_.health(2, false);
  const auto u3 = t_.health(3, false);
  ASSERT_TRUE(receive(u2));
  ASSERT_TRUE(receive(u3));
  auto b = envelope::sign_batch(t_.id, 2, 3, u3.digest, new_key_);
  ASSERT_TRUE(b);
  auto r = receiver_->receive(t_.id, "batch", b->SerializeAsString(), kT0);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->stored, (std::vector<std::uint64_t>{2, 3}));
  EXPECT_EQ(store_->terminal(t_.id)->public_key_pem, *new_key_.public_key()->to_pem());
  // The old key signs nothing from there on.
  EXPECT_FALSE(receive(t_.health(4)));
  expect_chain_ok(3);
}

TEST_F(KeyRotationTest, TheNextKeyCannotTakeOverWhileTheOldKeyStillOwesASignature) {
  receiver_ = std::make_unique<Receiver>(*store_);
  ASSERT_TRUE(receive(t_.health(1)));
  ASSERT_TRUE(store_->set_next_key(t_.id, *new_key_.public_key()->to_pem(), 0));
  // An unsigned envelope (a batch run of the old key, its signature still
  // to come), then the new key at the one after: not a clean handover.
  auto unsigned_link = t_.health(2, false);
  auto held = receive(unsigned_link);
  ASSERT_TRUE(held) << held.error().message();
  auto r = receive(signed_by(new_key_, 3));
  ASSERT_FALSE(r);
  EXPECT_EQ(store_->terminal(t_.id)->public_key_pem, t_.public_pem());
}

// Finding of the attacker review: a thief of the OLD key must not be able
// to keep the chain going under it and so keep the next key from ever
// taking over. The rotation names its cutover (the first sequence the
// terminal signs with the new key): from there on the old key is refused
// as retired, whether its envelope comes before the terminal's, at the
// expected sequence, past a gap, as a batch over unsigned links, or after.
TEST_F(KeyRotationTest,
       FromTheCutoverTheOldKeyIsRefusedAndTheTerminalsNewKeyEnvelopesAllLand_REQ33) {
  receiver_ = std::make_unique<Receiver>(*store_);
  const auto new_pem = *new_key_.public_key()->to_pem();
  for (int i = 1; i <= 3; ++i) ASSERT_TRUE(receive(t_.health(i))) << i;
  // The terminal committed 4 (old key, still in flight) and names 5.
  const auto fourth = t_.health(4);
  ASSERT_TRUE(store_->set_next_key(t_.id, new_pem, 5));
  // The thief continues the real chain (it sees every digest) at 5 and on,
  // with the old key, before the terminal's 4 arrives: refused at once (not
  // held past the gap).
  envelope::EnvelopeSealer thief(t_.id, t_.key.type(), t_.sealer.state());
  auto thief_seal = [&](const std::string& what, bool sign) {
    v1::HealthReport h;
    h.mutable_health()->add_reasons(what);
    auto s = thief.seal(v1::PAYLOAD_HEALTH, h.SerializeAsString(), kT0);
    EXPECT_TRUE(s);
    if (sign) {
      EXPECT_TRUE(envelope::sign_envelope(s->envelope, t_.key));
    }
    return std::move(*s);
  };
  const auto thief5 = thief_seal("thief 5", true);
  auto early = receive(thief5);
  ASSERT_FALSE(early);
  EXPECT_EQ(early.error().code, Errc::permission_denied);
  EXPECT_NE(early.error().message().find("retired key"), std::string::npos)
      << early.error().message();
  EXPECT_EQ(incident_kinds(*store_, t_.id).back(), "retired key");
  // The terminal's last envelope of the old key is taken.
  ASSERT_TRUE(receive(fourth));
  // At the expected sequence now: still refused.
  auto at_cutover = receive(thief5);
  ASSERT_FALSE(at_cutover);
  EXPECT_EQ(incident_kinds(*store_, t_.id).back(), "retired key");
  // Unsigned links of its own, then an old-key batch over them: refused.
  thief.reset(t_.sealer.state());
  const auto u5 = thief_seal("thief unsigned 5", false);
  const auto u6 = thief_seal("thief unsigned 6", false);
  ASSERT_TRUE(receive(u5));
  ASSERT_TRUE(receive(u6));
  auto batch = envelope::sign_batch(t_.id, 5, 6, u6.digest, t_.key);
  ASSERT_TRUE(batch);
  auto by_batch = receiver_->receive(t_.id, "batch", batch->SerializeAsString(), kT0);
  ASSERT_FALSE(by_batch);
  EXPECT_EQ(incident_kinds(*store_, t_.id).back(), "retired key");
  EXPECT_EQ(stored_sequences(*store_, t_.id), seqs(1, 4));
  // The next key took over at the cutover with the old key's last envelope.
  EXPECT_EQ(store_->terminal(t_.id)->public_key_pem, new_pem);

  // The terminal's own envelopes from 5: a batch run with the new key (two
  // unsigned links, the last one signed), then single signatures.
  auto next = [&](int n, bool sign) {
    auto s = t_.health(n, false);
    if (sign) {
      EXPECT_TRUE(envelope::sign_envelope(s.envelope, new_key_));
    }
    return s;
  };
  std::vector<envelope::EnvelopeSealer::Sealed> genuine;
  genuine.push_back(next(5, false));
  genuine.push_back(next(6, false));
  genuine.push_back(next(7, true));
  genuine.push_back(next(8, true));
  genuine.push_back(next(9, true));
  std::vector<std::uint64_t> acknowledged;
  for (auto& g : genuine) {
    auto r = receive(g);
    ASSERT_TRUE(r) << g.sequence << ": " << r.error().message();
    acknowledged.insert(acknowledged.end(), r->stored.begin(), r->stored.end());
  }
  EXPECT_EQ(acknowledged, seqs(5, 9));
  // The thief again, now past the chain and ahead of it: refused each time.
  thief.reset(t_.sealer.state());
  EXPECT_FALSE(receive(thief_seal("thief 10", true)));
  EXPECT_FALSE(receive(thief5));
  // Every envelope of the terminal once, in order, the genuine ones.
  EXPECT_EQ(stored_sequences(*store_, t_.id), seqs(1, 9));
  for (auto& g : genuine) {
    auto row = store_->envelope(t_.id, g.sequence);
    ASSERT_TRUE(row && *row);
    EXPECT_EQ((*row)->envelope, bytes(g)) << g.sequence;
  }
  auto keys = store_->keys(t_.id);
  ASSERT_TRUE(keys);
  ASSERT_EQ(keys->size(), 2u);
  EXPECT_EQ((*keys)[0].from_sequence, 1u);
  EXPECT_EQ((*keys)[1].from_sequence, 5u);
  // Refused messages are tallied (anyone can name the retired key's id):
  // the row counts every one.
  EXPECT_GE(testing::incident_total(*store_, t_.id, "retired key"), 5u)
      << ::testing::PrintToString(incident_kinds(*store_, t_.id));
  expect_chain_ok(9);
}

// "retired key" says the old key is in someone else's hands: an operator
// acts on it. A forger who only names the retired key's id (its signature
// made by another key) must not raise it.
TEST_F(KeyRotationTest, AForgerNamingTheRetiredKeyIsABadSignatureNotARetiredKey_REQ33) {
  // A signature that names the terminal's key and does not verify is
  // "tampered" (the bytes may have been altered), one naming another key a
  // "bad signature": either, never "retired key".
  const auto expect_forgery = [](const std::string& kind) {
    EXPECT_TRUE(kind == "tampered" || kind == "bad signature") << kind;
  };
  receiver_ = std::make_unique<Receiver>(*store_);
  for (int i = 1; i <= 4; ++i) ASSERT_TRUE(receive(t_.health(i))) << i;
  ASSERT_TRUE(store_->set_next_key(t_.id, *new_key_.public_key()->to_pem(), 5));
  auto forger_key = crypto::PrivateKey::generate(t_.key.type());
  ASSERT_TRUE(forger_key);
  envelope::EnvelopeSealer forger(t_.id, t_.key.type(), t_.sealer.state());
  v1::HealthReport h;
  h.mutable_health()->add_reasons("forged");
  auto s = forger.seal(v1::PAYLOAD_HEALTH, h.SerializeAsString(), kT0);
  ASSERT_TRUE(s);
  ASSERT_TRUE(envelope::sign_envelope(s->envelope, *forger_key));
  // The retired key's id on the forger's signature.
  s->envelope.mutable_signature()->set_key_id(*envelope::key_id(*t_.key.public_key()));
  auto r = receive(*s);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::permission_denied);
  expect_forgery(incident_kinds(*store_, t_.id).back());
  EXPECT_EQ(testing::incident_total(*store_, t_.id, "retired key"), 0u);
  // The same for a batch over the forger's unsigned link.
  forger.reset(t_.sealer.state());
  auto u5 = forger.seal(v1::PAYLOAD_HEALTH, h.SerializeAsString(), kT0);
  ASSERT_TRUE(u5);
  ASSERT_TRUE(receive(*u5));
  auto batch = envelope::sign_batch(t_.id, 5, 5, u5->digest, *forger_key);
  ASSERT_TRUE(batch);
  batch->mutable_signature()->set_key_id(*envelope::key_id(*t_.key.public_key()));
  ASSERT_FALSE(receiver_->receive(t_.id, "batch", batch->SerializeAsString(), kT0));
  expect_forgery(incident_kinds(*store_, t_.id).back());
  EXPECT_EQ(testing::incident_total(*store_, t_.id, "retired key"), 0u);
  // The real old key at the cutover is a retired key.
  forger.reset(t_.sealer.state());
  auto thief = forger.seal(v1::PAYLOAD_HEALTH, h.SerializeAsString(), kT0);
  ASSERT_TRUE(thief);
  ASSERT_TRUE(envelope::sign_envelope(thief->envelope, t_.key));
  ASSERT_FALSE(receive(*thief));
  EXPECT_EQ(incident_kinds(*store_, t_.id).back(), "retired key");
  EXPECT_EQ(stored_sequences(*store_, t_.id), seqs(1, 4));
}

// The thief got its old-key envelopes stored past the cutover before the
// terminal's Renew: the rotation is refused (the store will not take a next
// key whose cutover the chain already passed), which shows the theft.
TEST_F(KeyRotationTest, ARotationWhoseCutoverTheChainAlreadyPassedIsRefused_REQ33) {
  receiver_ = std::make_unique<Receiver>(*store_);
  for (int i = 1; i <= 6; ++i) ASSERT_TRUE(receive(t_.health(i))) << i;
  auto r = store_->set_next_key(t_.id, *new_key_.public_key()->to_pem(), 5);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::failed_precondition);
  EXPECT_NE(r.error().message().find("5..6"), std::string::npos) << r.error().message();
  EXPECT_TRUE(store_->keys(t_.id)->empty());
  // At the chain's head it is fine.
  EXPECT_TRUE(store_->set_next_key(t_.id, *new_key_.public_key()->to_pem(), 7));
}

// The goodbye of the session the rotation happened in is signed by the old
// key (its link was made before): accepted, as the old key's word about a
// session the fleet has seen; for a session it has not seen (a thief
// marking the terminal's next session offline), refused.
TEST_F(KeyRotationTest, TheOldKeysGoodbyeOfItsOwnSessionIsTakenNotOneForALaterSession_REQ33) {
  receiver_ = std::make_unique<Receiver>(*store_);
  t_.sealer.reset(envelope::ChainState{3, 1, {}});
  for (int i = 1; i <= 2; ++i) ASSERT_TRUE(receive(t_.health(i))) << i;
  ASSERT_TRUE(store_->set_next_key(t_.id, *new_key_.public_key()->to_pem(), 3));
  ASSERT_TRUE(receive(signed_by(new_key_, 3)));
  ASSERT_EQ(store_->terminal(t_.id)->public_key_pem, *new_key_.public_key()->to_pem());
  auto old_signer = crypto::KeySigner::from(t_.key);
  ASSERT_TRUE(old_signer);
  const auto old_kid = *envelope::key_id(*t_.key.public_key());
  auto later = envelope::make_offline(t_.id, 4, *old_signer, old_kid);
  ASSERT_TRUE(later);
  auto refused = receiver_->receive(t_.id, "offline", later->SerializeAsString(), kT0);
  ASSERT_FALSE(refused);
  EXPECT_EQ(incident_kinds(*store_, t_.id).back(), "bad signature");
  EXPECT_TRUE(store_->terminal(t_.id)->online);
  auto own = envelope::make_offline(t_.id, 3, *old_signer, old_kid);
  ASSERT_TRUE(own);
  auto taken = receiver_->receive(t_.id, "offline", own->SerializeAsString(), kT0);
  ASSERT_TRUE(taken) << taken.error().message();
  EXPECT_EQ(taken->outcome, Receipt::Outcome::offline);
  EXPECT_FALSE(store_->terminal(t_.id)->online);
}

// A store whose chain() runs a hook once, right after a receiver loaded the
// terminal's keys: a rotation recorded in between.
class RacingStore final : public testing::ForwardingStore {
 public:
  RacingStore(FleetStore& s, std::function<void()> hook)
      : ForwardingStore(s), hook_(std::move(hook)) {}
  Result<ChainRecord> chain(const std::string& id) override {
    auto c = s_.chain(id);
    if (auto h = std::exchange(hook_, nullptr)) h();
    return c;
  }
  // What a receiver loads (the chain without its candidates' index).
  Result<ChainRecord> chain_state(const std::string& id) override {
    auto c = s_.chain_state(id);
    if (auto h = std::exchange(hook_, nullptr)) h();
    return c;
  }

 private:
  std::function<void()> hook_;
};

// The thief's old-key envelope at the cutover is being verified by a
// receiver that loaded the keys just before the rotation was recorded: its
// commit loses (the rotation moved the chain's version) and the retry,
// with the keys loaded again, refuses it.
TEST_F(KeyRotationTest, ARotationRecordedWhileAReceiverVerifiesIsNotOutrunByTheOldKey_REQ33) {
  receiver_ = std::make_unique<Receiver>(*store_);
  for (int i = 1; i <= 4; ++i) ASSERT_TRUE(receive(t_.health(i))) << i;
  const auto thief5 = t_.health(5);  // the old key, at the cutover
  RacingStore racing(*store_, [&] {
    ASSERT_TRUE(store_->set_next_key(t_.id, *new_key_.public_key()->to_pem(), 5));
  });
  Receiver raced(racing);
  auto r = raced.receive(t_.id, "health", bytes(thief5), kT0);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("retired key"), std::string::npos) << r.error().message();
  EXPECT_EQ(stored_sequences(*store_, t_.id), seqs(1, 4));
}

// Finding of the attacker review: a next key replaced while a receiver
// verified with it (loaded before the change) was promoted as the other
// key: the takeover wrote whichever next key the store held by then.
TEST_F(KeyRotationTest, ANextKeyReplacedWhileAReceiverVerifiesWithItIsNotTheOneTakenOver_REQ33) {
  receiver_ = std::make_unique<Receiver>(*store_);
  ASSERT_TRUE(receive(t_.health(1)));
  ASSERT_TRUE(store_->set_next_key(t_.id, *new_key_.public_key()->to_pem(), 0));
  auto other = crypto::PrivateKey::generate(crypto::KeyType::ecdsa_p256);
  ASSERT_TRUE(other);
  const auto other_pem = *other->public_key()->to_pem();
  RacingStore racing(*store_, [&] { ASSERT_TRUE(store_->set_next_key(t_.id, other_pem, 0)); });
  Receiver raced(racing);
  auto r = raced.receive(t_.id, "health", bytes(signed_by(new_key_, 2)), kT0);
  EXPECT_FALSE(r);
  EXPECT_EQ(store_->terminal(t_.id)->public_key_pem, t_.public_pem());
  EXPECT_EQ(stored_sequences(*store_, t_.id), seqs(1, 1));
}

TEST(KeyHistoryStore, ANextKeyForAnUnknownTerminalIsNotFoundAndANewerOneReplacesIt) {
  TempDir dir;
  auto s = SqliteFleetStore::open(dir.path() + "/fleet.db");
  ASSERT_TRUE(s);
  auto r = (*s)->set_next_key("T-nobody", "pem", 0);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::not_found);
  SimTerminal t("T-1", crypto::KeyType::ed25519);
  register_terminal(**s, t);
  ASSERT_TRUE((*s)->set_next_key("T-1", "first", 0));
  ASSERT_TRUE((*s)->set_next_key("T-1", "second", 0));
  auto keys = (*s)->keys("T-1");
  ASSERT_TRUE(keys);
  ASSERT_EQ(keys->size(), 1u);
  EXPECT_EQ(keys->front().public_key_pem, "second");
}

// A store of schema version 2 (key history without cutovers) opens with the
// cutover column added and its keys as they were.
TEST(KeyHistoryStore, AVersionTwoStoreGetsCutoversAndKeepsItsKeys) {
  TempDir dir;
  const std::string path = dir.path() + "/v2.db";
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "CREATE TABLE terminal_keys (terminal_id TEXT NOT NULL, "
                         "public_key_pem TEXT NOT NULL, from_seq INTEGER NOT NULL, "
                         "PRIMARY KEY (terminal_id, public_key_pem));"
                         "INSERT INTO terminal_keys VALUES ('T-1', 'old', 1), ('T-1', 'new', 9);"
                         "PRAGMA user_version=2;",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  auto s = SqliteFleetStore::open(path);
  ASSERT_TRUE(s) << s.error().message();
  auto keys = (*s)->keys("T-1");
  ASSERT_TRUE(keys) << keys.error().message();
  ASSERT_EQ(keys->size(), 2u);
  EXPECT_EQ((*keys)[1].public_key_pem, "new");
  EXPECT_EQ((*keys)[1].from_sequence, 9u);
  EXPECT_EQ((*keys)[1].cutover, 0u);
  auto again = SqliteFleetStore::open(path);
  ASSERT_TRUE(again) << again.error().message();
}

}  // namespace
}  // namespace portier::fleet
