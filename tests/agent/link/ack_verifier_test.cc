// The terminal's check of the fleet's acknowledgements: only one signed by a
// fleet key that chains to the trust anchors, for this terminal, names
// anything; every forgery a broker (or anyone publishing on down/ack) can
// make is refused with its kind, and a validated chain is checked once.
#include "agent/link/ack_verifier.h"

#include <gtest/gtest.h>

#include "agent/commands/command_signing.h"
#include "policy/temp_dir.h"
#include "portier/v1/fleet.pb.h"
#include "support/test_pki.h"

namespace portier::link {
namespace {

using namespace std::chrono_literals;
using portier::policy::testing::TempDir;
using portier::test::Flaw;
using portier::test::IssuedLeaf;
using portier::test::TestPki;

constexpr const char* kTerminal = "T-0001";

struct Key {
  std::shared_ptr<crypto::KeySigner> signer;
  std::vector<crypto::Certificate> chain;
  AckSigner acks;
};

Key fleet_key(const TestPki& pki, const std::string& name,
              crypto::CertUsage usage = crypto::CertUsage::command_signing,
              Flaw flaw = Flaw::none) {
  auto leaf = pki.issue({.name = name, .usage = usage, .flaw = flaw});
  EXPECT_TRUE(leaf) << leaf.error().message();
  auto s = crypto::KeySigner::from(leaf->key);
  auto signer = std::make_shared<crypto::KeySigner>(std::move(*s));
  std::vector<crypto::Certificate> chain{leaf->cert};
  chain.insert(chain.end(), leaf->chain.begin(), leaf->chain.end());
  auto a = AckSigner::create(signer, chain);
  EXPECT_TRUE(a) << a.error().message();
  return Key{signer, chain, std::move(*a)};
}

class AckVerifierTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pki = TestPki::create(dir_.path());
    ASSERT_TRUE(pki) << pki.error().message();
    pki_ = std::make_unique<TestPki>(std::move(*pki));
    now_ = pki_->made_at();
  }
  AckVerifier verifier() {
    return AckVerifier({.terminal_id = kTerminal, .trust_anchors = {pki_->root()}, .clock = [this] {
                          return now_;
                        }});
  }
  std::string sign(const Key& k, const std::vector<SequenceRange>& ranges,
                   const std::string& terminal = kTerminal) {
    auto s = k.acks.sign(terminal, ranges, now_);
    EXPECT_TRUE(s) << s.error().message();
    return *s;
  }
  // The refusal's kind, or "accepted".
  static std::string kind(const Result<std::vector<SequenceRange>>& r) {
    return r ? "accepted" : r.error().what;
  }

  TempDir dir_;
  std::unique_ptr<TestPki> pki_;
  std::chrono::system_clock::time_point now_;
};

TEST(AckRanges, SequencesBecomeAscendingMergedRanges) {
  EXPECT_EQ(to_ranges({5, 3, 4, 9, 1, 4, 0, 10}),
            (std::vector<SequenceRange>{{1, 1}, {3, 5}, {9, 10}}));
  EXPECT_TRUE(to_ranges({}).empty());
}

TEST_F(AckVerifierTest, AGenuineAcknowledgementNamesItsRangesAndTheChainIsCheckedOnce) {
  auto fleet = fleet_key(*pki_, "fleet-commands");
  auto v = verifier();
  for (std::uint64_t i = 0; i < 50; ++i) {
    auto r = v.verify(sign(fleet, {{10 * i + 1, 10 * i + 5}, {10 * i + 7, 10 * i + 7}}));
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(*r, (std::vector<SequenceRange>{{10 * i + 1, 10 * i + 5}, {10 * i + 7, 10 * i + 7}}));
  }
  EXPECT_EQ(v.chain_checks(), 1u) << "a validated chain is remembered";
  // A replay of an old genuine one verifies again: harmless, since the
  // sequences it names were stored and are never reused.
  const auto old = sign(fleet, {{1, 2}});
  EXPECT_TRUE(v.verify(old));
  EXPECT_TRUE(v.verify(old));
}

TEST_F(AckVerifierTest, ForgedUnsignedWronglySignedAndAlteredAcknowledgementsAreRefused) {
  auto fleet = fleet_key(*pki_, "fleet-commands");
  auto v = verifier();
  const auto genuine = sign(fleet, {{1, 100}});
  ASSERT_TRUE(v.verify(genuine));

  EXPECT_EQ(kind(v.verify("1,2,3")), "malformed");  // the old unsigned text format
  EXPECT_EQ(kind(v.verify(std::string(70 * 1024, 'x'))), "malformed");
  v1::SignedAcknowledgement s;
  ASSERT_TRUE(s.ParseFromString(genuine));

  auto unsigned_ack = s;
  unsigned_ack.clear_signature();
  EXPECT_EQ(kind(v.verify(unsigned_ack.SerializeAsString())), "unsigned");

  auto no_certs = s;
  no_certs.clear_certificates();
  EXPECT_EQ(kind(v.verify(no_certs.SerializeAsString())), "malformed");

  // More sequences, the genuine signature and certificates.
  auto widened = s;
  v1::Acknowledgement a;
  ASSERT_TRUE(a.ParseFromString(s.acknowledgement()));
  a.mutable_stored(0)->set_last(1000000);
  widened.set_acknowledgement(a.SerializeAsString());
  EXPECT_EQ(kind(v.verify(widened.SerializeAsString())), "bad signature");

  // Signed by another key of the same PKI, carrying the fleet's certificates.
  auto other = fleet_key(*pki_, "someone-else");
  auto by_other = s;
  auto sig = other.signer->sign(ack_signing_input(s.acknowledgement()));
  ASSERT_TRUE(sig);
  by_other.set_signature(std::string(sig->begin(), sig->end()));
  EXPECT_EQ(kind(v.verify(by_other.SerializeAsString())), "bad signature");

  // The fleet's key, but a command's signature over the same bytes: the
  // labels keep the two apart.
  auto as_command = s;
  auto csig = fleet.signer->sign(commands::command_signing_input(s.acknowledgement()));
  ASSERT_TRUE(csig);
  as_command.set_signature(std::string(csig->begin(), csig->end()));
  EXPECT_EQ(kind(v.verify(as_command.SerializeAsString())), "bad signature");

  // Overlapping or empty ranges, genuinely signed: refused before anything.
  EXPECT_EQ(kind(v.verify(sign(fleet, {{5, 9}, {7, 12}}))), "malformed");
  EXPECT_EQ(kind(v.verify(sign(fleet, {{0, 3}}))), "malformed");
  EXPECT_EQ(kind(v.verify(sign(fleet, {{9, 5}}))), "malformed");
}

TEST_F(AckVerifierTest, AnotherTerminalsGenuineAcknowledgementIsRefused) {
  auto fleet = fleet_key(*pki_, "fleet-commands");
  auto v = verifier();
  auto r = v.verify(sign(fleet, {{1, 5}}, "T-0002"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().what, "other terminal");
  EXPECT_NE(r.error().message().find("T-0002"), std::string::npos) << r.error().message();
}

TEST_F(AckVerifierTest, KeysThatDoNotChainToTheAnchorsAsCommandSignersAreRefused) {
  auto v = verifier();
  // Another PKI altogether, with the same names.
  TempDir other_dir;
  auto other = TestPki::create(other_dir.path());
  ASSERT_TRUE(other);
  EXPECT_EQ(kind(v.verify(sign(fleet_key(*other, "fleet-commands"), {{1, 1}}))), "untrusted chain");
  // This PKI, but flawed: not for command signing, expired, self-signed,
  // an issuer that is not a CA, another root of the same name.
  EXPECT_EQ(kind(v.verify(sign(fleet_key(*pki_, "tls", crypto::CertUsage::tls_client), {{1, 1}}))),
            "untrusted chain");
  for (auto flaw : {Flaw::expired, Flaw::not_yet_valid, Flaw::self_signed, Flaw::issuer_not_ca,
                    Flaw::untrusted_issuer}) {
    auto k = fleet_key(*pki_, "flawed-" + std::to_string(static_cast<int>(flaw)),
                       crypto::CertUsage::command_signing, flaw);
    EXPECT_EQ(kind(v.verify(sign(k, {{1, 1}}))), "untrusted chain")
        << "flaw " << static_cast<int>(flaw);
  }
}

TEST_F(AckVerifierTest, ARememberedChainIsCheckedAgainOnceItsCertificateHasExpired) {
  auto fleet = fleet_key(*pki_, "fleet-commands");
  auto v = verifier();
  ASSERT_TRUE(v.verify(sign(fleet, {{1, 1}})));
  ASSERT_EQ(v.chain_checks(), 1u);
  now_ += 11min;  // past the 10 minutes a chain is remembered
  ASSERT_TRUE(v.verify(sign(fleet, {{2, 2}})));
  EXPECT_EQ(v.chain_checks(), 2u);
  now_ = fleet.chain[0].not_after() + 1s;
  auto r = v.verify(sign(fleet, {{3, 3}}));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().what, "untrusted chain") << r.error().message();
}

}  // namespace
}  // namespace portier::link
