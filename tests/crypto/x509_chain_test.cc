// Certificate validation (REQ25): issuer, signature, validity at a given
// time, key usage, CA flags and path length along root -> intermediate ->
// leaf, for each key type, on a PKI made by tests/support/test_pki.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/crypto/x509.h"
#include "support/test_pki.h"

namespace portier::crypto {
namespace {

using std::chrono::hours;
using test::Flaw;
using test::IssuedLeaf;
using test::LeafSpec;
using test::TestPki;

std::string temp_dir() {
  const char* base = std::getenv("TMPDIR");
  std::string t = std::string(base && *base ? base : "/tmp") + "/portier-x509-XXXXXX";
  if (::mkdtemp(t.data()) == nullptr) ADD_FAILURE() << "mkdtemp " << t;
  return t;
}

class Chain : public ::testing::TestWithParam<KeyType> {
 protected:
  void SetUp() override {
    dir_ = temp_dir();
    auto pki = TestPki::create(dir_, GetParam());
    ASSERT_TRUE(pki) << pki.error().message();
    pki_.emplace(std::move(*pki));
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  IssuedLeaf leaf(LeafSpec spec) {
    auto l = pki_->issue(spec);
    EXPECT_TRUE(l) << l.error().message();
    return *l;
  }
  Result<void> check(const IssuedLeaf& l, CertUsage usage) {
    return check_at(l, usage, pki_->made_at());
  }
  Result<void> check_at(const IssuedLeaf& l, CertUsage usage, TimePoint at) {
    const Certificate& root = pki_->root();
    return verify_chain(l.cert, l.chain, std::span(&root, 1), at, usage);
  }
  // Refused with permission_denied, naming `cn` and `reason`.
  static void expect_refused(const Result<void>& r, const std::string& cn,
                             const std::string& reason) {
    ASSERT_FALSE(r) << "accepted; expected " << reason;
    EXPECT_EQ(r.error().code, Errc::permission_denied);
    const std::string m = r.error().message();
    EXPECT_NE(m.find(cn), std::string::npos) << m;
    EXPECT_NE(m.find(reason), std::string::npos) << m;
  }

  std::string dir_;
  std::optional<TestPki> pki_;
};

TEST_P(Chain, LeafOfEachUsageVerifiesThroughTheIntermediate_REQ25) {
  for (CertUsage usage : {CertUsage::tls_client, CertUsage::tls_server, CertUsage::command_signing,
                          CertUsage::device}) {
    const IssuedLeaf l = leaf({.name = "leaf", .usage = usage, .serial_number = "HW-0042"});
    auto r = check(l, usage);
    EXPECT_TRUE(r) << r.error().message();
    EXPECT_EQ(l.cert.subject_serial(), "HW-0042");
    EXPECT_EQ(l.cert.issuer_cn(), "Portier Test Intermediate CA");
  }
  // The intermediate itself, checked as a CA.
  const Certificate& root = pki_->root();
  EXPECT_TRUE(
      verify_chain(pki_->intermediate(), {}, std::span(&root, 1), pki_->made_at(), CertUsage::ca));
  // A leaf straight from the root needs no intermediate.
  EXPECT_TRUE(check(leaf({.name = "direct", .usage = CertUsage::device, .by_root = true}),
                    CertUsage::device));
}

TEST_P(Chain, IntermediatesInAnyOrderWithUnusedOnesIgnored_REQ25) {
  const IssuedLeaf l = leaf({.name = "signer", .usage = CertUsage::command_signing});
  const IssuedLeaf unrelated = leaf({.name = "unrelated", .usage = CertUsage::device});
  std::vector<Certificate> pool{unrelated.cert, pki_->root(), l.chain.front()};
  const Certificate& root = pki_->root();
  EXPECT_TRUE(
      verify_chain(l.cert, pool, std::span(&root, 1), pki_->made_at(), CertUsage::command_signing));
  // Without the intermediate the leaf has no path to the anchor.
  expect_refused(
      verify_chain(l.cert, {}, std::span(&root, 1), pki_->made_at(), CertUsage::command_signing),
      "signer", "untrusted issuer");
}

TEST_P(Chain, ExpiredLeafIsRefusedNamingIt_REQ25) {
  const IssuedLeaf l = leaf({.name = "old-terminal", .flaw = Flaw::expired});
  expect_refused(check(l, CertUsage::device), "old-terminal", "expired");
  // The time checked is the caller's, not the clock: two days back it was
  // good.
  EXPECT_TRUE(check_at(l, CertUsage::device, pki_->made_at() - hours(48)));
}

TEST_P(Chain, NotYetValidLeafIsRefusedNamingIt_REQ25) {
  const IssuedLeaf l = leaf({.name = "early", .flaw = Flaw::not_yet_valid});
  expect_refused(check(l, CertUsage::device), "early", "not yet valid");
  EXPECT_TRUE(check_at(l, CertUsage::device, pki_->made_at() + hours(48)));
  // And a good leaf, checked after its end.
  const IssuedLeaf good = leaf({.name = "good"});
  expect_refused(check_at(good, CertUsage::device, pki_->made_at() + hours(24 * 400)), "good",
                 "expired");
}

TEST_P(Chain, ExpiredIntermediateIsRefusedNamingTheIntermediate_REQ25) {
  // A leaf valid in the intermediate's sixth year, checked then: the
  // intermediate (5 years) has expired, the root (10) has not.
  auto late_key = PrivateKey::generate(GetParam());
  ASSERT_TRUE(late_key);
  IssueOptions o;
  o.subject = {"late-terminal", "", ""};
  o.usage = CertUsage::device;
  o.not_before = pki_->made_at() + hours(24 * 1800);
  o.not_after = pki_->made_at() + hours(24 * 1900);
  auto late = issue_certificate(*late_key->public_key(), o, &pki_->intermediate(),
                                pki_->intermediate_key());
  ASSERT_TRUE(late) << late.error().message();
  const Certificate& root = pki_->root();
  const std::vector<Certificate> chain{pki_->intermediate()};
  expect_refused(verify_chain(*late, chain, std::span(&root, 1), pki_->made_at() + hours(24 * 1850),
                              CertUsage::device),
                 "Portier Test Intermediate CA", "expired");
}

TEST_P(Chain, WrongUsageIsRefused_REQ25) {
  // A TLS client certificate presented as the fleet's command signer.
  const IssuedLeaf client = leaf({.name = "tls-client", .usage = CertUsage::tls_client});
  expect_refused(check(client, CertUsage::command_signing), "tls-client",
                 "not allowed for command signing");
  // A device certificate is no TLS server, nor a command signer, nor a CA.
  const IssuedLeaf device = leaf({.name = "terminal", .usage = CertUsage::device});
  expect_refused(check(device, CertUsage::tls_server), "terminal", "not allowed for TLS server");
  expect_refused(check(device, CertUsage::command_signing), "terminal", "not allowed");
  expect_refused(check(device, CertUsage::ca), "terminal", "not allowed for a CA");
  // A command signer is no TLS client; a TLS server no TLS client.
  const IssuedLeaf signer = leaf({.name = "signer", .usage = CertUsage::command_signing});
  expect_refused(check(signer, CertUsage::tls_client), "signer", "not allowed for TLS client");
  // The test PKI's wrong_usage flaw.
  const IssuedLeaf wrong =
      leaf({.name = "broker", .usage = CertUsage::tls_server, .flaw = Flaw::wrong_usage});
  expect_refused(check(wrong, CertUsage::tls_server), "broker", "not allowed for TLS server");
  EXPECT_TRUE(check(wrong, CertUsage::tls_client));
}

TEST_P(Chain, LeafOfAnotherRootWithTheSameNameIsRefused_REQ25) {
  const IssuedLeaf l = leaf({.name = "forged-signer",
                             .usage = CertUsage::command_signing,
                             .flaw = Flaw::untrusted_issuer});
  EXPECT_EQ(l.cert.issuer_cn(), pki_->root().subject_cn());  // only the key differs
  // Its root presented along (l.chain) does not make it trusted.
  expect_refused(check(l, CertUsage::command_signing), "", "untrusted issuer");
  expect_refused(verify_chain(l.cert, {}, std::span(&pki_->root(), 1), pki_->made_at(),
                              CertUsage::command_signing),
                 "forged-signer", "untrusted issuer");
  // No anchor at all.
  expect_refused(verify_chain(l.cert, l.chain, {}, pki_->made_at(), CertUsage::command_signing),
                 "forged-signer", "untrusted issuer");
}

TEST_P(Chain, SelfSignedLeafIsRefused_REQ25) {
  const IssuedLeaf l =
      leaf({.name = "selfie", .usage = CertUsage::command_signing, .flaw = Flaw::self_signed});
  EXPECT_EQ(l.cert.issuer_cn(), "selfie");
  expect_refused(check(l, CertUsage::command_signing), "selfie", "untrusted issuer");
}

TEST_P(Chain, FlippedSignatureByteIsRefused_REQ25) {
  const IssuedLeaf l = leaf({.name = "signer", .usage = CertUsage::command_signing});
  Bytes der = *l.cert.der();
  der.back() ^= 0x01;  // inside the signature BIT STRING, the DER stays well-formed
  auto tampered = Certificate::from_der(der);
  ASSERT_TRUE(tampered) << tampered.error().message();
  const Certificate& root = pki_->root();
  expect_refused(verify_chain(*tampered, l.chain, std::span(&root, 1), pki_->made_at(),
                              CertUsage::command_signing),
                 "signer", "bad signature");
}

TEST_P(Chain, ChangedSubjectBreaksTheSignature_REQ25) {
  const IssuedLeaf l = leaf({.name = "terminal-0001"});
  Bytes der = *l.cert.der();
  const std::string from = "terminal-0001";
  auto at = std::search(der.begin(), der.end(), from.begin(), from.end());
  ASSERT_NE(at, der.end());
  at[from.size() - 1] = '2';  // now claims to be terminal-0002
  auto tampered = Certificate::from_der(der);
  ASSERT_TRUE(tampered);
  EXPECT_EQ(tampered->subject_cn(), "terminal-0002");
  const Certificate& root = pki_->root();
  expect_refused(
      verify_chain(*tampered, l.chain, std::span(&root, 1), pki_->made_at(), CertUsage::device),
      "terminal-0002", "bad signature");
}

TEST_P(Chain, IntermediateThatIsNotACaIsRefused_REQ25) {
  const IssuedLeaf l = leaf({.name = "terminal", .flaw = Flaw::issuer_not_ca});
  ASSERT_EQ(l.chain.size(), 1u);
  EXPECT_EQ(l.chain[0].subject_cn(), "Portier Test Not-a-CA");
  expect_refused(check(l, CertUsage::device), "Portier Test Not-a-CA", "not a CA");
}

TEST_P(Chain, PathLengthOfTheIntermediateIsEnforced_REQ25) {
  // The intermediate has pathlen 0: a CA below it may not issue.
  auto sub_key = PrivateKey::generate(GetParam());
  ASSERT_TRUE(sub_key);
  IssueOptions o;
  o.subject = {"Rogue Sub CA", "", ""};
  o.usage = CertUsage::ca;
  o.not_before = pki_->made_at() - hours(1);
  o.not_after = pki_->made_at() + hours(24 * 30);
  auto sub =
      issue_certificate(*sub_key->public_key(), o, &pki_->intermediate(), pki_->intermediate_key());
  ASSERT_TRUE(sub) << sub.error().message();
  auto leaf_key = PrivateKey::generate(GetParam());
  ASSERT_TRUE(leaf_key);
  o.subject = {"under-rogue", "", ""};
  o.usage = CertUsage::command_signing;
  auto l = issue_certificate(*leaf_key->public_key(), o, &*sub, *sub_key);
  ASSERT_TRUE(l) << l.error().message();
  const std::vector<Certificate> chain{*sub, pki_->intermediate()};
  const Certificate& root = pki_->root();
  expect_refused(
      verify_chain(*l, chain, std::span(&root, 1), pki_->made_at(), CertUsage::command_signing), "",
      "path length exceeded");
  // The sub-CA itself is fine as a CA (pathlen 0 allows it, not its leaves).
  EXPECT_TRUE(verify_chain(*sub, chain, std::span(&root, 1), pki_->made_at(), CertUsage::ca));
}

TEST_P(Chain, APileOfIntermediatesIsRefused_REQ25) {
  const IssuedLeaf l = leaf({.name = "terminal"});
  const std::vector<Certificate> pile(17, pki_->intermediate());
  const Certificate& root = pki_->root();
  expect_refused(
      verify_chain(l.cert, pile, std::span(&root, 1), pki_->made_at(), CertUsage::device),
      "terminal", "over the limit");
  EXPECT_TRUE(verify_chain(l.cert, std::span(pile).first(16), std::span(&root, 1), pki_->made_at(),
                           CertUsage::device));
}

TEST_P(Chain, IntermediateAsTheOnlyAnchorIsEnough_REQ25) {
  // A trust anchor need not be a root (RFC 5280 6.1.1 d).
  const IssuedLeaf l = leaf({.name = "terminal"});
  const Certificate& anchor = pki_->intermediate();
  EXPECT_TRUE(verify_chain(l.cert, {}, std::span(&anchor, 1), pki_->made_at(), CertUsage::device));
}

TEST_P(Chain, LeafOfAnotherKeyTypeUnderThisCa_REQ25) {
  for (KeyType t : {KeyType::ecdsa_p256, KeyType::ed25519, KeyType::sm2}) {
    const IssuedLeaf l = leaf({.name = "mixed", .usage = CertUsage::device, .key_type = t});
    EXPECT_EQ(l.cert.public_key()->type(), t);
    auto r = check(l, CertUsage::device);
    EXPECT_TRUE(r) << name(t) << ": " << r.error().message();
  }
}

TEST_P(Chain, SharedCertificatesVerifyFromManyThreadsAtOnce_REQ25) {
  // Copies of a Certificate share one parsed certificate: the link's
  // threads check commands against the same anchors concurrently.
  const IssuedLeaf good = leaf({.name = "signer", .usage = CertUsage::command_signing});
  const IssuedLeaf bad =
      leaf({.name = "expired-signer", .usage = CertUsage::command_signing, .flaw = Flaw::expired});
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 25; ++i) {
        if (!check(good, CertUsage::command_signing)) ++wrong;
        if (check(bad, CertUsage::command_signing)) ++wrong;
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
}

INSTANTIATE_TEST_SUITE_P(Keys, Chain,
                         ::testing::Values(KeyType::ecdsa_p256, KeyType::ed25519, KeyType::sm2),
                         [](const auto& info) {
                           std::string n(name(info.param));
                           std::erase(n, '-');
                           return n;
                         });

}  // namespace
}  // namespace portier::crypto
