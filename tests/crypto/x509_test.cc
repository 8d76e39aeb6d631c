// Certificates and requests as the fleet's CA and the terminal use them:
// issued and read back for each key type, requests made and checked, and
// untrusted input (truncated, padded, oversized, mangled) refused without a
// crash.
#include "common/crypto/x509.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <optional>
#include <random>
#include <set>
#include <string>

#include "common/crypto/digest.h"
#include "common/crypto/keys.h"
#include "crypto/crypto_test_util.h"

namespace portier::crypto {
namespace {

using std::chrono::hours;
using Clock = std::chrono::system_clock;

struct KeyPair {
  PrivateKey key;
  PublicKey pub;
};

KeyPair make_key(KeyType type) {
  auto key = PrivateKey::generate(type);
  EXPECT_TRUE(key) << key.error().message();
  auto pub = key->public_key();
  EXPECT_TRUE(pub) << pub.error().message();
  return {*key, *pub};
}

IssueOptions options(const std::string& cn, CertUsage usage) {
  IssueOptions o;
  o.subject = {cn, "", "Portier Test"};
  o.usage = usage;
  // Whole seconds: X.509 times have no fractions.
  o.not_before = std::chrono::floor<std::chrono::seconds>(Clock::now()) - hours(1);
  o.not_after = o.not_before + hours(24 * 30);
  return o;
}

Certificate self_signed(const KeyPair& k, const std::string& cn = "Root") {
  auto c = issue_certificate(k.pub, options(cn, CertUsage::ca), nullptr, k.key);
  EXPECT_TRUE(c) << c.error().message();
  return *c;
}

class X509ByKeyType : public ::testing::TestWithParam<KeyType> {};

TEST_P(X509ByKeyType, IssuedCertificateReadsBackThroughDerAndPem) {
  const KeyPair ca = make_key(GetParam());
  const KeyPair leaf_key = make_key(GetParam());
  const Certificate root = self_signed(ca, "Fleet Root");
  IssueOptions o = options("terminal-0042", CertUsage::device);
  o.subject.serial_number = "SN-7781-A";
  auto leaf = issue_certificate(leaf_key.pub, o, &root, ca.key);
  ASSERT_TRUE(leaf) << leaf.error().message();

  EXPECT_EQ(leaf->subject_cn(), "terminal-0042");
  EXPECT_EQ(leaf->subject_serial(), "SN-7781-A");
  EXPECT_EQ(leaf->issuer_cn(), "Fleet Root");
  EXPECT_EQ(root.subject_serial(), "");
  EXPECT_EQ(leaf->not_before(), o.not_before);
  EXPECT_EQ(leaf->not_after(), o.not_after);
  // A random positive 16-byte serial: 32 hex digits, top bit clear.
  const std::string serial = leaf->serial_hex();
  ASSERT_EQ(serial.size(), 32u) << serial;
  EXPECT_TRUE(serial[0] >= '4' && serial[0] <= '7') << serial;
  EXPECT_EQ(serial.find_first_not_of("0123456789abcdef"), std::string::npos) << serial;
  EXPECT_NE(serial, root.serial_hex());

  auto pub = leaf->public_key();
  ASSERT_TRUE(pub) << pub.error().message();
  EXPECT_EQ(pub->type(), GetParam());
  EXPECT_EQ(*pub->raw(), *leaf_key.pub.raw());

  auto der = leaf->der();
  ASSERT_TRUE(der);
  auto from_der = Certificate::from_der(*der);
  ASSERT_TRUE(from_der) << from_der.error().message();
  EXPECT_EQ(*from_der->der(), *der);
  auto pem = leaf->to_pem();
  ASSERT_TRUE(pem);
  EXPECT_TRUE(pem->starts_with("-----BEGIN CERTIFICATE-----\n")) << *pem;
  auto from_pem = Certificate::from_pem(*pem);
  ASSERT_TRUE(from_pem) << from_pem.error().message();
  EXPECT_EQ(*from_pem->der(), *der);
  EXPECT_EQ(from_pem->sha256_fingerprint(), test::hex(*digest(DigestAlgo::sha256, *der)));

  // A chain file: every block in order, text around them skipped.
  auto all = Certificate::all_from_pem("leaf:\n" + *pem + "root:\n" + *root.to_pem() + "\n");
  ASSERT_TRUE(all) << all.error().message();
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].subject_cn(), "terminal-0042");
  EXPECT_EQ((*all)[1].subject_cn(), "Fleet Root");
  // from_pem takes the first certificate of a chain file.
  EXPECT_EQ(Certificate::from_pem(*pem + *root.to_pem())->subject_cn(), "terminal-0042");

  EXPECT_TRUE(verify_chain(*leaf, {}, std::span(&root, 1), Clock::now(), CertUsage::device));
}

TEST_P(X509ByKeyType, RequestIsSelfSignedAndCarriesTheSubjectIntoTheCertificate) {
  const KeyPair terminal = make_key(GetParam());
  auto csr = CertificateRequest::create(terminal.key,
                                        {"terminal-0042", "HW-99-0001", "Bank of Somewhere"});
  ASSERT_TRUE(csr) << csr.error().message();
  EXPECT_TRUE(csr->verify_self_signature());
  EXPECT_EQ(csr->subject().common_name, "terminal-0042");
  EXPECT_EQ(csr->subject().serial_number, "HW-99-0001");
  EXPECT_EQ(csr->subject().organization, "Bank of Somewhere");
  auto pub = csr->public_key();
  ASSERT_TRUE(pub) << pub.error().message();
  EXPECT_EQ(*pub->raw(), *terminal.pub.raw());

  auto pem = csr->to_pem();
  ASSERT_TRUE(pem);
  EXPECT_TRUE(pem->starts_with("-----BEGIN CERTIFICATE REQUEST-----\n")) << *pem;
  auto back = CertificateRequest::from_pem(*pem);
  ASSERT_TRUE(back) << back.error().message();
  EXPECT_EQ(*back->der(), *csr->der());
  EXPECT_TRUE(back->verify_self_signature());
  auto from_der = CertificateRequest::from_der(*csr->der());
  ASSERT_TRUE(from_der) << from_der.error().message();
  EXPECT_TRUE(from_der->verify_self_signature());

  // The fleet's CA: checks the request, then issues for its key and subject.
  const KeyPair ca = make_key(GetParam());
  const Certificate root = self_signed(ca);
  IssueOptions o = options(back->subject().common_name, CertUsage::device);
  o.subject = back->subject();
  auto cert = issue_certificate(*back->public_key(), o, &root, ca.key);
  ASSERT_TRUE(cert) << cert.error().message();
  EXPECT_EQ(cert->subject_serial(), "HW-99-0001");
  EXPECT_EQ(*cert->public_key()->raw(), *terminal.pub.raw());
}

TEST_P(X509ByKeyType, RequestWithAFlippedSignatureByteIsRefused) {
  const KeyPair terminal = make_key(GetParam());
  auto csr = CertificateRequest::create(terminal.key, {"terminal-0042", "HW-1", ""});
  ASSERT_TRUE(csr);
  Bytes der = *csr->der();
  der.back() ^= 0x01;  // the last byte of the signature BIT STRING
  auto tampered = CertificateRequest::from_der(der);
  ASSERT_TRUE(tampered) << tampered.error().message();
  auto r = tampered->verify_self_signature();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::permission_denied);
  EXPECT_NE(r.error().message().find("terminal-0042"), std::string::npos) << r.error().message();
}

TEST_P(X509ByKeyType, RequestWhoseSubjectWasChangedAfterSigningIsRefused) {
  const KeyPair terminal = make_key(GetParam());
  auto csr = CertificateRequest::create(terminal.key, {"terminal-0042", "HW-1", ""});
  ASSERT_TRUE(csr);
  Bytes der = *csr->der();
  // A broker or proxy rewrites the hardware serial the request claims.
  const std::string from = "HW-1";
  auto at = std::search(der.begin(), der.end(), from.begin(), from.end());
  ASSERT_NE(at, der.end());
  at[3] = '2';
  auto tampered = CertificateRequest::from_der(der);
  ASSERT_TRUE(tampered) << tampered.error().message();
  EXPECT_EQ(tampered->subject().serial_number, "HW-2");
  EXPECT_FALSE(tampered->verify_self_signature());
}

INSTANTIATE_TEST_SUITE_P(Keys, X509ByKeyType,
                         ::testing::Values(KeyType::ecdsa_p256, KeyType::ed25519, KeyType::sm2),
                         [](const auto& info) {
                           std::string n(name(info.param));
                           std::erase(n, '-');
                           return n;
                         });

TEST(X509Issue, RefusesWhatCouldNeverVerifyOrWouldBeMisread) {
  const KeyPair ca = make_key(KeyType::ecdsa_p256);
  const KeyPair other = make_key(KeyType::ecdsa_p256);
  const Certificate root = self_signed(ca);

  // Self-signed, but the subject key is not the signer's.
  auto r = issue_certificate(other.pub, options("x", CertUsage::ca), nullptr, ca.key);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::invalid_argument);
  // An issuer certificate with another key than the one signing.
  EXPECT_FALSE(issue_certificate(other.pub, options("x", CertUsage::device), &root, other.key));
  // An issuer that is not a CA.
  auto leaf = issue_certificate(other.pub, options("leaf", CertUsage::tls_client), &root, ca.key);
  ASSERT_TRUE(leaf);
  r = issue_certificate(ca.pub, options("x", CertUsage::device), &*leaf, other.key);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("not a CA"), std::string::npos) << r.error().message();
  // Validity backwards, empty or overlong CN, a non-printable serialNumber.
  IssueOptions o = options("x", CertUsage::device);
  o.not_after = o.not_before;
  EXPECT_FALSE(issue_certificate(other.pub, o, &root, ca.key));
  EXPECT_FALSE(issue_certificate(other.pub, options("", CertUsage::device), &root, ca.key));
  EXPECT_FALSE(issue_certificate(other.pub, options(std::string(65, 'a'), CertUsage::device), &root,
                                 ca.key));
  o = options("x", CertUsage::device);
  o.subject.serial_number = "SN\x01";
  EXPECT_FALSE(issue_certificate(other.pub, o, &root, ca.key));
  o.subject.serial_number = std::string("SN\0X", 4);
  EXPECT_FALSE(issue_certificate(other.pub, o, &root, ca.key));
  // A SAN value cannot smuggle a second name in (config syntax injection).
  o = options("broker", CertUsage::tls_server);
  o.dns_names = {"broker.example,DNS:evil.example"};
  EXPECT_FALSE(issue_certificate(other.pub, o, &root, ca.key));
  o.dns_names = {"broker.example"};
  o.ip_addresses = {"10.0.0.256"};
  EXPECT_FALSE(issue_certificate(other.pub, o, &root, ca.key));
  o.ip_addresses = {"10.0.0.1", "fd00::1"};
  EXPECT_TRUE(issue_certificate(other.pub, o, &root, ca.key));
  // A path length on a leaf.
  o = options("x", CertUsage::device);
  o.path_length = 0;
  EXPECT_FALSE(issue_certificate(other.pub, o, &root, ca.key));
}

TEST(X509Issue, SerialsDiffer) {
  const KeyPair ca = make_key(KeyType::ed25519);
  const Certificate root = self_signed(ca);
  std::set<std::string> serials;
  for (int i = 0; i < 20; ++i) {
    auto c = issue_certificate(ca.pub, options("x", CertUsage::device), &root, ca.key);
    ASSERT_TRUE(c);
    serials.insert(c->serial_hex());
  }
  EXPECT_EQ(serials.size(), 20u);
}

// --- Untrusted input: never a crash, always a reason.

class X509Malformed : public ::testing::Test {
 protected:
  void SetUp() override {
    ca_ = make_key(KeyType::ecdsa_p256);
    auto c = issue_certificate(ca_->pub, options("Root", CertUsage::ca), nullptr, ca_->key);
    ASSERT_TRUE(c);
    der_ = *c->der();
    pem_ = *c->to_pem();
  }
  std::optional<KeyPair> ca_;
  Bytes der_;
  std::string pem_;
};

TEST_F(X509Malformed, TruncatedDerIsRefusedAtEveryLength) {
  for (std::size_t n = 0; n < der_.size(); ++n) {
    auto r = Certificate::from_der(ByteView(der_.data(), n));
    ASSERT_FALSE(r) << "accepted " << n << " of " << der_.size() << " bytes";
    EXPECT_EQ(r.error().code, Errc::invalid_argument);
  }
}

TEST_F(X509Malformed, TrailingGarbageIsRefused) {
  Bytes padded = der_;
  padded.push_back(0x00);
  auto r = Certificate::from_der(padded);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("1 bytes after the end"), std::string::npos)
      << r.error().message();
  padded = der_;
  padded.insert(padded.end(), der_.begin(), der_.end());  // two certificates back to back
  EXPECT_FALSE(Certificate::from_der(padded));
}

TEST_F(X509Malformed, NonCanonicalLengthIsRefused) {
  // The outer SEQUENCE's length in one byte more than it needs (BER, not
  // DER): the same certificate to a lenient reader, other bytes to hash.
  ASSERT_EQ(der_[0], 0x30);
  ASSERT_EQ(der_[1], 0x82);  // two length bytes
  Bytes ber = {0x30, 0x83, 0x00};
  ber.insert(ber.end(), der_.begin() + 2, der_.end());
  auto r = Certificate::from_der(ber);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::invalid_argument);
  EXPECT_NE(r.error().message().find("not in DER"), std::string::npos) << r.error().message();
}

TEST_F(X509Malformed, PemWithoutACertificateIsRefused) {
  auto key_pem = ca_->key.to_pem();
  ASSERT_TRUE(key_pem);
  for (const std::string& text :
       {std::string(), std::string("hello"), *key_pem, std::string("-----BEGIN CERTIFICATE-----\n"),
        std::string("-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n"),
        std::string("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")}) {
    auto one = Certificate::from_pem(text);
    EXPECT_FALSE(one) << text;
    if (!one) {
      EXPECT_EQ(one.error().code, Errc::invalid_argument);
    }
    EXPECT_FALSE(Certificate::all_from_pem(text)) << text;
    EXPECT_FALSE(CertificateRequest::from_pem(text)) << text;
  }
  // A good block followed by a broken one: the whole file is refused.
  EXPECT_FALSE(Certificate::all_from_pem(pem_ + "-----BEGIN CERTIFICATE-----\n!!\n"
                                                "-----END CERTIFICATE-----\n"));
}

TEST_F(X509Malformed, HugeLengthsAreRefusedBeforeTheyAreRead) {
  // A SEQUENCE claiming 2 GiB of content, in a few bytes.
  const Bytes huge_len = {0x30, 0x84, 0x7f, 0xff, 0xff, 0xff, 0x30, 0x00};
  EXPECT_FALSE(Certificate::from_der(huge_len));
  EXPECT_FALSE(CertificateRequest::from_der(huge_len));
  const Bytes longer_than_long = {0x30, 0x89, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  EXPECT_FALSE(Certificate::from_der(longer_than_long));

  // Over 64 KiB: refused by size, whatever it holds.
  Bytes big(64 * 1024 + 1, 0x41);
  auto r = Certificate::from_der(big);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("over the limit"), std::string::npos) << r.error().message();
  EXPECT_FALSE(CertificateRequest::from_der(big));
  // The same in PEM: a block that decodes to more than 64 KiB.
  std::string block = "-----BEGIN CERTIFICATE-----\n";
  for (int i = 0; i < 1400; ++i) block += std::string(64, 'Q') + "\n";
  block += "-----END CERTIFICATE-----\n";
  r = Certificate::from_pem(block);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("over the limit"), std::string::npos) << r.error().message();
  // And a PEM text over 1 MiB, before any decoding.
  EXPECT_FALSE(Certificate::all_from_pem(std::string(1024 * 1024 + 1, '\n') + pem_));
}

TEST_F(X509Malformed, RandomlyMangledCertificatesNeverCrash) {
  std::mt19937 rng(20261206);  // fixed: a failure can be replayed
  int parsed = 0;
  for (int i = 0; i < 3000; ++i) {
    Bytes m = der_;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      const std::size_t at = rng() % m.size();
      switch (rng() % 3) {
        case 0:
          m[at] = static_cast<std::uint8_t>(rng());
          break;
        case 1:
          m.erase(m.begin() + static_cast<std::ptrdiff_t>(at));
          break;
        default:
          m.insert(m.begin() + static_cast<std::ptrdiff_t>(at), static_cast<std::uint8_t>(rng()));
      }
    }
    auto c = Certificate::from_der(m);
    if (!c) continue;
    ++parsed;
    // Whatever parsed can be read and checked without a crash; it never
    // verifies unless the edit left the signed bytes alone.
    (void)c->subject_cn();
    (void)c->subject_serial();
    (void)c->issuer_cn();
    (void)c->serial_hex();
    (void)c->not_before();
    (void)c->not_after();
    (void)c->sha256_fingerprint();
    (void)c->public_key();
    (void)c->to_pem();
    auto root = Certificate::from_der(der_);
    (void)verify_chain(*c, {}, std::span(&*root, 1), Clock::now(), CertUsage::ca);
  }
  RecordProperty("parsed", parsed);
}

TEST(X509MalformedRequest, TruncatedAndPaddedRequestsAreRefused) {
  const KeyPair k = make_key(KeyType::sm2);
  auto csr = CertificateRequest::create(k.key, {"terminal-1", "HW-1", ""});
  ASSERT_TRUE(csr);
  const Bytes der = *csr->der();
  for (std::size_t n = 0; n < der.size(); ++n)
    ASSERT_FALSE(CertificateRequest::from_der(ByteView(der.data(), n))) << n;
  Bytes padded = der;
  padded.push_back(0x30);
  EXPECT_FALSE(CertificateRequest::from_der(padded));
  // A certificate is not a request, nor the other way round.
  const Certificate root = self_signed(k);
  EXPECT_FALSE(CertificateRequest::from_der(*root.der()));
  EXPECT_FALSE(Certificate::from_der(der));
  EXPECT_FALSE(CertificateRequest::from_pem(*root.to_pem()));
  EXPECT_FALSE(Certificate::from_pem(*csr->to_pem()));
}

}  // namespace
}  // namespace portier::crypto
