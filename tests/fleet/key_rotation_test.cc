// A terminal's key rotation as the fleet sees it (issue 10, item 1): the
// enrolment service certifies the new key as the terminal's next key; the
// receiver takes it at the first envelope it signs that continues the chain;
// from then on only the new key verifies, and verify-chain follows the key
// history across the change. What a thief of the old key signs after the
// change is refused and recorded; a key nobody certified never takes over.
#include <gtest/gtest.h>

#include "fleet_test_support.h"
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
  ASSERT_TRUE(store_->set_next_key(t_.id, new_pem));
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

  // The thief of the old key signs the next envelope: refused, recorded.
  const auto forged = signed_by(t_.key, 6);
  auto refused = receive(forged);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Errc::permission_denied);
  EXPECT_EQ(incident_kinds(*store_, t_.id).back(), "bad signature");
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
  ASSERT_TRUE(store_->set_next_key(t_.id, *certified.public_key()->to_pem()));
  t_.sealer.reset(envelope::ChainState{store_->chain(t_.id)->state});
  r = receive(signed_by(new_key_, 2));
  ASSERT_FALSE(r);
  EXPECT_EQ(store_->terminal(t_.id)->public_key_pem, t_.public_pem());
  t_.sealer.reset(envelope::ChainState{store_->chain(t_.id)->state});
  EXPECT_TRUE(receive(signed_by(certified, 2)));
  EXPECT_EQ(store_->terminal(t_.id)->public_key_pem, *certified.public_key()->to_pem());
  expect_chain_ok(2);
}

TEST_F(KeyRotationTest, TheNextKeyCannotTakeOverWhileTheOldKeyStillOwesASignature) {
  receiver_ = std::make_unique<Receiver>(*store_);
  ASSERT_TRUE(receive(t_.health(1)));
  ASSERT_TRUE(store_->set_next_key(t_.id, *new_key_.public_key()->to_pem()));
  // An unsigned envelope (a batch run of the old key, its signature still
  // to come), then the new key at the one after: not a clean handover.
  auto unsigned_link = t_.health(2, false);
  auto held = receive(unsigned_link);
  ASSERT_TRUE(held) << held.error().message();
  auto r = receive(signed_by(new_key_, 3));
  ASSERT_FALSE(r);
  EXPECT_EQ(store_->terminal(t_.id)->public_key_pem, t_.public_pem());
}

TEST(KeyHistoryStore, ANextKeyForAnUnknownTerminalIsNotFoundAndANewerOneReplacesIt) {
  TempDir dir;
  auto s = SqliteFleetStore::open(dir.path() + "/fleet.db");
  ASSERT_TRUE(s);
  auto r = (*s)->set_next_key("T-nobody", "pem");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::not_found);
  SimTerminal t("T-1", crypto::KeyType::ed25519);
  register_terminal(**s, t);
  ASSERT_TRUE((*s)->set_next_key("T-1", "first"));
  ASSERT_TRUE((*s)->set_next_key("T-1", "second"));
  auto keys = (*s)->keys("T-1");
  ASSERT_TRUE(keys);
  ASSERT_EQ(keys->size(), 1u);
  EXPECT_EQ(keys->front().public_key_pem, "second");
}

}  // namespace
}  // namespace portier::fleet
