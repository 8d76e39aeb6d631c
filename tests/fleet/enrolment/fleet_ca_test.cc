// The fleet's CA for device certificates: made by init (key 0600, never
// overwritten), loaded back, refused when its key file is open to others or
// is not the certificate's key; device certificates it issues carry the
// terminal id and serial, usage device, the configured lifetime, and verify
// from the CA.
#include "tools/fleet/enrolment/fleet_ca.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>

#include "agent/identity/signer_csr.h"
#include "support/test_pki.h"

namespace portier::fleet {
namespace {

namespace fs = std::filesystem;

class FleetCaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char t[] = "/tmp/portier-fleetca-XXXXXX";
    dir_ = mkdtemp(t);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string dir_;
};

TEST_F(FleetCaTest, InitMakesACaThatIssuesDeviceCertificates) {
  for (auto type : {crypto::KeyType::ecdsa_p256, crypto::KeyType::ed25519, crypto::KeyType::sm2}) {
    SCOPED_TRACE(std::string(crypto::name(type)));
    const std::string d = dir_ + "/" + std::string(crypto::name(type));
    fs::create_directories(d);
    auto ca = FleetCa::init(d, type, "Fleet CA", {std::chrono::hours(24 * 30)});
    ASSERT_TRUE(ca) << ca.error().message();
    struct stat st {};
    ASSERT_EQ(::stat((d + "/fleet-ca.key").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    EXPECT_FALSE(FleetCa::init(d, type));  // never overwritten
    auto loaded =
        FleetCa::load(d + "/fleet-ca.crt", d + "/fleet-ca.key", {}, {std::chrono::hours(24 * 30)});
    ASSERT_TRUE(loaded) << loaded.error().message();
    EXPECT_TRUE(loaded->chain_der().empty());  // a root: the terminal holds it

    auto key = crypto::PrivateKey::generate(type);
    auto signer = crypto::KeySigner::from(*key);
    auto csr = identity::make_csr(*signer, {"T-1", "SN-1", ""});
    ASSERT_TRUE(csr);
    const auto now = std::chrono::system_clock::now();
    auto cert = loaded->issue_device(*csr, "T-1", "SN-1", now);
    ASSERT_TRUE(cert) << cert.error().message();
    EXPECT_EQ(cert->subject_cn(), "T-1");
    EXPECT_EQ(cert->subject_serial(), "SN-1");
    EXPECT_LE(cert->not_after(), now + std::chrono::hours(24 * 30));
    EXPECT_GT(cert->not_after(), now + std::chrono::hours(24 * 29));
    const auto anchors = loaded->anchors();
    EXPECT_TRUE(crypto::verify_chain(*cert, {}, anchors, now, crypto::CertUsage::device));
    EXPECT_FALSE(crypto::verify_chain(*cert, {}, anchors, now, crypto::CertUsage::command_signing));
  }
}

TEST_F(FleetCaTest, AKeyOthersCanReadOrAnotherKeyIsRefused) {
  auto ca = FleetCa::init(dir_, crypto::KeyType::ecdsa_p256);
  ASSERT_TRUE(ca);
  ASSERT_EQ(::chmod((dir_ + "/fleet-ca.key").c_str(), 0640), 0);
  auto open = FleetCa::load(dir_ + "/fleet-ca.crt", dir_ + "/fleet-ca.key");
  ASSERT_FALSE(open);
  EXPECT_EQ(open.error().code, Errc::permission_denied);
  ASSERT_EQ(::chmod((dir_ + "/fleet-ca.key").c_str(), 0600), 0);

  auto pki = test::TestPki::create(dir_);
  ASSERT_TRUE(pki);
  auto other = FleetCa::load(dir_ + "/fleet-ca.crt", dir_ + "/intermediate.key");
  ASSERT_FALSE(other);
  EXPECT_NE(other.error().message().find("is not the key of"), std::string::npos);
  // An intermediate as the fleet CA: its certificate goes with each device
  // certificate.
  auto inter = FleetCa::load(pki->intermediate_path(), dir_ + "/intermediate.key");
  ASSERT_TRUE(inter) << inter.error().message();
  EXPECT_EQ(inter->chain_der().size(), 1u);
}

TEST_F(FleetCaTest, ACsrWithABrokenSelfSignatureGetsNoCertificate) {
  auto ca = FleetCa::init(dir_, crypto::KeyType::ecdsa_p256);
  ASSERT_TRUE(ca);
  auto key = crypto::PrivateKey::generate(crypto::KeyType::ecdsa_p256);
  auto csr = crypto::CertificateRequest::create(*key, {"T-1", "SN-1", ""});
  auto der = csr->der();
  (*der)[der->size() - 3] ^= 0x01;
  auto tampered = crypto::CertificateRequest::from_der(*der);
  ASSERT_TRUE(tampered);
  EXPECT_FALSE(ca->issue_device(*tampered, "T-1", "SN-1", std::chrono::system_clock::now()));
}

}  // namespace
}  // namespace portier::fleet
