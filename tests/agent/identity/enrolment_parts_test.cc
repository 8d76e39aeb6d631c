// The terminal's enrolment parts without a fleet: the hardware serial (from
// the config or the firmware, placeholders refused), the proof (the
// documented HMAC, checked against the openssl CLI), the certificate store
// (atomic, read back, renewal due at two thirds of the lifetime), and a
// PKCS#11 rotation interrupted between destroying the old key and
// relabelling the new one.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "agent/identity/certificate_store.h"
#include "agent/identity/enrolment_proof.h"
#include "agent/identity/hardware_serial.h"
#include "agent/identity/key_store.h"
#include "agent/identity/softhsm_token.h"
#include "common/hex.h"

namespace portier::identity {
namespace {

namespace fs = std::filesystem;

class EnrolmentPartsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char t[] = "/tmp/portier-enrolparts-XXXXXX";
    dir_ = mkdtemp(t);
  }
  void TearDown() override { fs::remove_all(dir_); }
  void dmi(const std::string& text) {
    fs::create_directories(dir_ + "/sys/class/dmi/id");
    std::ofstream(dir_ + "/sys/class/dmi/id/product_serial") << text;
  }
  std::string dir_;
};

TEST_F(EnrolmentPartsTest, TheHardwareSerialComesFromTheConfigElseTheFirmware) {
  dmi("PF2ABCDE\n");
  EXPECT_EQ(*hardware_serial("", dir_), "PF2ABCDE");
  EXPECT_EQ(*hardware_serial("SN-configured", dir_), "SN-configured");
  dmi("To Be Filled By O.E.M.\n");
  auto placeholder = hardware_serial("", dir_);
  ASSERT_FALSE(placeholder);
  EXPECT_NE(placeholder.error().message().find("is a firmware placeholder"), std::string::npos);
  dmi("bad\x01serial");
  auto bad = hardware_serial("", dir_);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, Errc::invalid_argument);
  fs::remove(dir_ + "/sys/class/dmi/id/product_serial");
  auto missing = hardware_serial("", dir_);
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message().find("set [management] serial"), std::string::npos);
  // A symlinked attribute is not followed.
  std::ofstream(dir_ + "/elsewhere") << "SN-elsewhere";
  fs::create_symlink(dir_ + "/elsewhere", dir_ + "/sys/class/dmi/id/product_serial");
  EXPECT_FALSE(hardware_serial("", dir_));
}

TEST_F(EnrolmentPartsTest, TheProofIsTheDocumentedHmac_REQ33) {
  const std::string secret = "0123456789abcdef-secret";
  const std::string csr = std::string("\x30\x82\x01\x00 csr bytes", 15);
  auto proof = enrolment_proof(crypto::byte_view(secret), "T-1", "SN-1", crypto::byte_view(csr));
  ASSERT_TRUE(proof);
  // The same HMAC by the openssl CLI over the same bytes.
  const std::string data_path = dir_ + "/data";
  {
    std::ofstream f(data_path, std::ios::binary);
    f << std::string("portier/v1 enrol\0", 17) << "T-1" << '\0' << "SN-1" << '\0' << csr;
  }
  const std::string cmd = "openssl dgst -sha256 -mac HMAC -macopt key:" + secret + " -r " +
                          data_path + " > " + dir_ + "/out";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  std::string out;
  std::getline(std::ifstream(dir_ + "/out"), out);
  EXPECT_EQ(out.substr(0, 64), to_hex(proof->data(), proof->size()));
  // Every field is bound: another serial, terminal or CSR gives another proof.
  EXPECT_NE(*enrolment_proof(crypto::byte_view(secret), "T-1", "SN-2", crypto::byte_view(csr)),
            *proof);
  EXPECT_NE(*enrolment_proof(crypto::byte_view(secret), "T-2", "SN-1", crypto::byte_view(csr)),
            *proof);
  EXPECT_NE(*enrolment_proof(crypto::byte_view(secret), "T-1", "SN-1", crypto::byte_view("x")),
            *proof);
  // The separators keep fields apart ("T-1" + "SN-1" is not "T-1S" + "N-1").
  EXPECT_NE(*enrolment_proof(crypto::byte_view(secret), "T-1S", "N-1", crypto::byte_view(csr)),
            *proof);
  auto weak = enrolment_proof(crypto::byte_view("short"), "T-1", "SN-1", crypto::byte_view(csr));
  ASSERT_FALSE(weak);
  EXPECT_NE(weak.error().message().find("at least 16"), std::string::npos);
}

TEST_F(EnrolmentPartsTest, TheCertificateStoreReadsBackAndSaysWhenRenewalIsDue) {
  auto key = crypto::PrivateKey::generate(crypto::KeyType::ecdsa_p256);
  ASSERT_TRUE(key);
  const auto t0 = std::chrono::system_clock::now();
  crypto::IssueOptions o;
  o.subject = {"T-1", "SN-1", ""};
  o.usage = crypto::CertUsage::ca;
  o.not_before = t0;
  o.not_after = t0 + std::chrono::hours(90 * 24);
  auto cert = crypto::issue_certificate(*key->public_key(), o, nullptr, *key);
  ASSERT_TRUE(cert);
  CertificateStore store(dir_ + "/device.crt");
  auto none = store.load();
  ASSERT_TRUE(none);
  EXPECT_FALSE(*none);
  std::vector<crypto::Certificate> chain = {*cert};
  ASSERT_TRUE(store.install(*cert, chain));
  auto loaded = store.load();
  ASSERT_TRUE(loaded && *loaded);
  EXPECT_EQ((*loaded)->cert.sha256_fingerprint(), cert->sha256_fingerprint());
  EXPECT_EQ((*loaded)->chain.size(), 1u);
  struct stat st {};
  ASSERT_EQ(::stat(store.path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);
  // No temporary file is left behind.
  int files = 0;
  for ([[maybe_unused]] auto& e : fs::directory_iterator(dir_)) ++files;
  EXPECT_EQ(files, 1);

  const auto due = renewal_due_at(*cert);
  const auto expected = cert->not_before() + (cert->not_after() - cert->not_before()) * 2 / 3;
  EXPECT_EQ(due, expected);
  EXPECT_FALSE(renewal_due(*cert, t0 + std::chrono::hours(59 * 24)));
  EXPECT_TRUE(renewal_due(*cert, t0 + std::chrono::hours(61 * 24)));

  std::ofstream(store.path()) << "not PEM";
  EXPECT_FALSE(store.load());
}

TEST_F(EnrolmentPartsTest, APkcs11PromotionStoppedAfterTheDestroyIsFinished_REQ16) {
  test::SoftHsmToken token;
  const std::string e = token.init(dir_);
  ASSERT_TRUE(e.empty()) << e;
  const auto opts = token.options("device");
  Pkcs11KeyStore store(opts);
  auto cur = store.current();
  ASSERT_TRUE(cur) << cur.error().message();
  auto pend = store.pending(true);
  ASSERT_TRUE(pend && *pend);
  const auto new_pub = *(*pend)->public_key().raw();
  // The old key destroyed, the pending one not yet relabelled.
  auto old = Pkcs11Signer::open_existing(opts);
  ASSERT_TRUE(old);
  ASSERT_TRUE((*old)->destroy());
  auto finished = store.current();
  ASSERT_TRUE(finished) << finished.error().message();
  EXPECT_EQ(*(*finished)->public_key().raw(), new_pub);
  auto none = store.pending(false);
  ASSERT_TRUE(none);
  EXPECT_EQ(*none, nullptr);
}

}  // namespace
}  // namespace portier::identity
