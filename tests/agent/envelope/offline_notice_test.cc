// The signed offline notice (the MQTT last will): only the terminal's key
// makes one, and one for another terminal or a changed epoch is refused.
#include "agent/envelope/offline_notice.h"

#include <gtest/gtest.h>

#include "agent/envelope/envelope_chain.h"

namespace portier::envelope {
namespace {

class OfflineNoticeTest : public ::testing::TestWithParam<crypto::KeyType> {};

TEST_P(OfflineNoticeTest, OnlyTheTerminalsKeyMakesOneForItsOwnIdAndEpoch_REQ19) {
  auto key = crypto::PrivateKey::generate(GetParam());
  ASSERT_TRUE(key);
  auto signer = crypto::KeySigner::from(*key);
  ASSERT_TRUE(signer);
  auto id = key_id(signer->public_key());
  ASSERT_TRUE(id);
  auto notice = make_offline("T-1", 7, *signer, *id);
  ASSERT_TRUE(notice) << notice.error().message();
  EXPECT_TRUE(verify_offline(*notice, "T-1", signer->public_key()));

  // A broker that relays it under another terminal's name.
  auto other_terminal = verify_offline(*notice, "T-2", signer->public_key());
  ASSERT_FALSE(other_terminal);
  EXPECT_EQ(other_terminal.error().code, Errc::permission_denied);
  // ... or that bumps the epoch to pass an old will off as the current one.
  auto bumped = *notice;
  bumped.set_session_epoch(8);
  EXPECT_FALSE(verify_offline(bumped, "T-1", signer->public_key()));
  // ... or signs one with a key of its own.
  auto mallory = crypto::PrivateKey::generate(GetParam());
  auto mallory_signer = crypto::KeySigner::from(*mallory);
  auto forged = make_offline("T-1", 7, *mallory_signer, *id);
  ASSERT_TRUE(forged);
  EXPECT_FALSE(verify_offline(*forged, "T-1", signer->public_key()));
}

INSTANTIATE_TEST_SUITE_P(Keys, OfflineNoticeTest,
                         ::testing::Values(crypto::KeyType::ecdsa_p256, crypto::KeyType::ed25519,
                                           crypto::KeyType::sm2),
                         [](const auto& info) {
                           std::string n(crypto::name(info.param));
                           std::erase(n, '-');
                           return n;
                         });

}  // namespace
}  // namespace portier::envelope
