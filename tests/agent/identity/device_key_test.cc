// The terminal's identity files: the device key is created 0600 once and
// loaded after, and refused when anyone else could read or replace it;
// the terminal id is made once and stays.
#include "agent/identity/device_key.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>
#include <vector>

#include "common/crypto/sign.h"

namespace portier::identity {
namespace {

using crypto::KeyType;

class DeviceKeyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char t[] = "/tmp/portier-identity-XXXXXX";
    dir_ = mkdtemp(t);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(DeviceKeyTest, TheKeyIsCreatedPrivateOnceAndTheSameAfter_REQ16) {
  for (auto type : {KeyType::ecdsa_p256, KeyType::ed25519, KeyType::sm2}) {
    const std::string path = dir_ + "/key-" + std::string(crypto::name(type)) + ".pem";
    auto made = load_or_create_key(path, type);
    ASSERT_TRUE(made) << made.error().message();
    struct stat st;
    ASSERT_EQ(stat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    auto again = load_or_create_key(path, type);
    ASSERT_TRUE(again) << again.error().message();
    // One device, one key: what was made is what is loaded.
    auto sig = crypto::sign(*made, crypto::byte_view("hello"));
    ASSERT_TRUE(sig);
    EXPECT_TRUE(crypto::verify(*again->public_key(), crypto::byte_view("hello"), *sig));
  }
}

TEST_F(DeviceKeyTest, AKeyOthersCouldReadIsRefused_REQ16) {
  const std::string path = dir_ + "/key.pem";
  ASSERT_TRUE(load_or_create_key(path, KeyType::ecdsa_p256));
  ASSERT_EQ(chmod(path.c_str(), 0640), 0);
  auto r = load_or_create_key(path, KeyType::ecdsa_p256);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::permission_denied);
  EXPECT_NE(r.error().message().find("mode 0640 lets others read or change it: refused"),
            std::string::npos)
      << r.error().message();
}

TEST_F(DeviceKeyTest, ASymlinkedKeyIsRefused) {
  const std::string real = dir_ + "/real.pem", link = dir_ + "/key.pem";
  ASSERT_TRUE(load_or_create_key(real, KeyType::ed25519));
  std::filesystem::create_symlink(real, link);
  auto r = load_or_create_key(link, KeyType::ed25519);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("not a regular file"), std::string::npos);
}

TEST_F(DeviceKeyTest, AKeyOfAnotherTypeOrGarbageIsAClearError) {
  const std::string path = dir_ + "/key.pem";
  ASSERT_TRUE(load_or_create_key(path, KeyType::sm2));
  auto r = load_or_create_key(path, KeyType::ecdsa_p256);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message(), path + ": device key: is sm2, the config asks for ecdsa-p256");
  const std::string junk = dir_ + "/junk.pem";
  { std::ofstream(junk) << "not a key"; }
  ASSERT_EQ(chmod(junk.c_str(), 0600), 0);
  auto bad = load_or_create_key(junk, KeyType::sm2);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message().rfind(junk + ": ", 0), 0u) << bad.error().message();
}

TEST_F(DeviceKeyTest, ACreationLeavesNoPartialFileAndTwoCreatorsAgreeOnOneKey) {
  const std::string path = dir_ + "/key.pem";
  std::vector<crypto::PrivateKey> keys;
  std::vector<std::thread> makers;
  std::mutex mu;
  for (int i = 0; i < 8; ++i) {
    makers.emplace_back([&] {
      auto k = load_or_create_key(path, KeyType::ecdsa_p256);
      ASSERT_TRUE(k) << k.error().message();
      std::lock_guard lock(mu);
      keys.push_back(std::move(*k));
    });
  }
  for (auto& t : makers) t.join();
  ASSERT_EQ(keys.size(), 8u);
  for (auto& k : keys) EXPECT_EQ(*k.public_key()->raw(), *keys[0].public_key()->raw());
  for (auto& e : std::filesystem::directory_iterator(dir_)) {
    EXPECT_EQ(e.path().filename(), "key.pem") << "a temporary file was left";
  }
}

TEST_F(DeviceKeyTest, TheTerminalIdIsMadeOnceAndStays_REQ19) {
  const std::string path = dir_ + "/terminal_id";
  auto id = load_or_create_terminal_id(path);
  ASSERT_TRUE(id) << id.error().message();
  EXPECT_EQ(id->size(), 34u);
  EXPECT_EQ(id->rfind("T-", 0), 0u);
  EXPECT_EQ(*load_or_create_terminal_id(path), *id);
  EXPECT_NE(*load_or_create_terminal_id(dir_ + "/other_id"), *id);
  { std::ofstream(path) << "T-not-hex\n"; }
  auto bad = load_or_create_terminal_id(path);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message(), path + ": terminal id: not T-<32 hex digits>");
}

}  // namespace
}  // namespace portier::identity
