// The record of a key rotation whose answer is not known (review finding
// M4): written whole and private, read back exactly, a damaged or forged
// one refused (never taken as "no rotation pending": that would let the old
// key sign past the cutover); and a refused rotation's pending key
// destroyed, the current key untouched.
#include "agent/identity/pending_rotation.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "agent/identity/device_identity.h"
#include "agent/identity/key_store.h"

namespace portier::identity {
namespace {

namespace fs = std::filesystem;

class PendingRotationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char t[] = "/tmp/portier-pendrot-XXXXXX";
    dir_ = mkdtemp(t);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path() const { return dir_ + "/rotation.pending"; }
  void write(const std::string& text) { std::ofstream(path()) << text; }
  std::string dir_;
};

const char* kPem =
    "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----\n";

TEST_F(PendingRotationTest, ARecordIsWrittenPrivateAndReadBackExactly_REQ33) {
  auto none = load_pending_rotation(path());
  ASSERT_TRUE(none) << none.error().message();
  EXPECT_FALSE(*none);
  ASSERT_TRUE(save_pending_rotation(path(), {4711, kPem}));
  struct stat st {};
  ASSERT_EQ(::stat(path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto back = load_pending_rotation(path());
  ASSERT_TRUE(back && *back) << (back ? "none" : back.error().message());
  EXPECT_EQ((*back)->cutover, 4711u);
  EXPECT_EQ((*back)->pending_key_pem, kPem);
  ASSERT_TRUE(remove_pending_rotation(path()));
  EXPECT_FALSE(fs::exists(path()));
  EXPECT_TRUE(remove_pending_rotation(path())) << "none left: nothing to do";
  EXPECT_FALSE(save_pending_rotation(path(), {0, kPem})) << "a cutover of 0 names nothing";
}

TEST_F(PendingRotationTest, ADamagedOrForgedRecordIsAnErrorNeverNoRotation_REQ33) {
  for (const std::string& text :
       {std::string(""), std::string("cutover \n") + kPem, std::string("cutover 0\n") + kPem,
        std::string("cutover -3\n") + kPem, std::string("cutover 12x\n") + kPem,
        std::string("cutover 99999999999999999999999\n") + kPem, std::string("cutover 12\n"),
        std::string("cutover 12"), std::string("sequence 12\n") + kPem}) {
    write(text);
    auto r = load_pending_rotation(path());
    ASSERT_FALSE(r) << "accepted: " << text;
    EXPECT_NE(r.error().message().find(path()), std::string::npos) << r.error().message();
  }
  // A symlink in its place is not followed.
  fs::remove(path());
  std::ofstream(dir_ + "/elsewhere") << "cutover 5\n" << kPem;
  fs::create_symlink(dir_ + "/elsewhere", path());
  EXPECT_FALSE(load_pending_rotation(path()));
}

TEST_F(PendingRotationTest, AbandoningARotationDestroysOnlyThePendingKey_REQ33) {
  auto id = DeviceIdentity::open(
      {"T-1", "SN-1", {}},
      std::make_unique<FileKeyStore>(dir_ + "/device.key", crypto::KeyType::ecdsa_p256),
      CertificateStore(dir_ + "/device.crt"));
  ASSERT_TRUE(id) << id.error().message();
  const auto current = *(*id)->signer()->public_key().to_pem();
  ASSERT_TRUE((*id)->begin_rotation());
  ASSERT_TRUE((*id)->pending_key());
  ASSERT_TRUE(fs::exists(dir_ + "/device.key.pending"));
  ASSERT_TRUE((*id)->abandon_rotation());
  EXPECT_FALSE((*id)->pending_key());
  EXPECT_FALSE(fs::exists(dir_ + "/device.key.pending"));
  EXPECT_EQ(*(*id)->signer()->public_key().to_pem(), current);
  EXPECT_TRUE((*id)->abandon_rotation()) << "none left: nothing to do";
  // Opened again: the same key, no pending one.
  auto again = DeviceIdentity::open(
      {"T-1", "SN-1", {}},
      std::make_unique<FileKeyStore>(dir_ + "/device.key", crypto::KeyType::ecdsa_p256),
      CertificateStore(dir_ + "/device.crt"));
  ASSERT_TRUE(again);
  EXPECT_FALSE((*again)->pending_key());
  EXPECT_EQ(*(*again)->signer()->public_key().to_pem(), current);
}

}  // namespace
}  // namespace portier::identity
