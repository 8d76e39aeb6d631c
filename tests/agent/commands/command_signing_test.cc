// Signing a command (the fleet's side) and checking its signature (the
// terminal's), with each key type: the label binds the signature to
// commands, the chain must be the signer's own.
#include "agent/commands/command_signing.h"

#include <gtest/gtest.h>

#include "command_test_util.h"
#include "common/crypto/sign.h"

namespace portier::commands {
namespace {

class CommandSigningTest : public ::testing::TestWithParam<crypto::KeyType> {
 protected:
  void SetUp() override {
    auto pki = portier::test::TestPki::create(dir_.path);
    ASSERT_TRUE(pki) << pki.error().message();
    auto leaf = pki->issue({"fleet-commands", crypto::CertUsage::command_signing,
                            portier::test::Flaw::none, GetParam()});
    ASSERT_TRUE(leaf) << leaf.error().message();
    fleet_.emplace(test::Fleet::from(*leaf));
    command_.set_command_id("c-1");
    command_.set_target_terminal("atm-1");
    command_.set_nonce(test::random_nonce());
    command_.mutable_ping()->set_text("hi");
  }
  test::Dir dir_;
  std::optional<test::Fleet> fleet_;
  v1::Command command_;
};

TEST_P(CommandSigningTest, ASignedCommandCarriesItsChainAndVerifies_REQ36) {
  auto sc = sign_command(command_, fleet_->signer, fleet_->chain);
  ASSERT_TRUE(sc) << sc.error().message();
  v1::Command back;
  ASSERT_TRUE(back.ParseFromString(sc->command()));
  EXPECT_EQ(back.command_id(), "c-1");
  ASSERT_EQ(sc->certificates_size(), 2);  // the leaf, then the intermediate
  auto leaf_der = fleet_->chain[0].der();
  ASSERT_TRUE(leaf_der);
  EXPECT_EQ(sc->certificates(0), std::string(leaf_der->begin(), leaf_der->end()));
  EXPECT_TRUE(verify_command_signature(*sc, fleet_->signer.public_key()));
  // Over the label and the bytes: the same key's signature over the bare
  // command bytes (as another protocol might sign them) does not pass.
  auto bare = crypto::sign(fleet_->signer.key(), crypto::byte_view(sc->command()));
  ASSERT_TRUE(bare);
  auto relabelled = *sc;
  relabelled.set_signature(std::string(bare->begin(), bare->end()));
  auto r = verify_command_signature(relabelled, fleet_->signer.public_key());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::permission_denied);
}

TEST_P(CommandSigningTest, AnotherKeyDoesNotVerify_REQ36) {
  auto sc = sign_command(command_, fleet_->signer, fleet_->chain);
  ASSERT_TRUE(sc);
  auto other = crypto::PrivateKey::generate(GetParam());
  ASSERT_TRUE(other);
  EXPECT_FALSE(verify_command_signature(*sc, *other->public_key()));
}

TEST_P(CommandSigningTest, AChainThatIsNotTheSignersIsRefused) {
  auto other = crypto::KeySigner::from(*crypto::PrivateKey::generate(GetParam()));
  ASSERT_TRUE(other);
  auto sc = sign_command(command_, *other, fleet_->chain);
  ASSERT_FALSE(sc);
  EXPECT_EQ(sc.error().code, Errc::invalid_argument);
  EXPECT_NE(sc.error().message().find("not for the signing key"), std::string::npos)
      << sc.error().message();
  auto none = sign_command(command_, fleet_->signer, {});
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, Errc::invalid_argument);
}

TEST(CommandSigningLabel, IsTheProtocolsNineteenBytes) {
  EXPECT_EQ(kCommandLabel.size(), 19u);
  EXPECT_EQ(kCommandLabel.back(), '\0');
  auto input = command_signing_input("ab");
  EXPECT_EQ(std::string(input.begin(), input.end()), std::string("portier/v1 command\0ab", 21));
}

INSTANTIATE_TEST_SUITE_P(KeyTypes, CommandSigningTest,
                         ::testing::Values(crypto::KeyType::ecdsa_p256, crypto::KeyType::ed25519,
                                           crypto::KeyType::sm2),
                         [](const auto& info) {
                           std::string n(crypto::name(info.param));
                           return n == "ecdsa-p256" ? std::string("ecdsa_p256") : n;
                         });

}  // namespace
}  // namespace portier::commands
