// The device key in a real SoftHSM2 token (REQ-16: the key is generated,
// stored, used and destroyed inside the token): made on first use and found
// again, signatures that crypto::verify accepts, clear errors for a wrong
// PIN, a PIN file others can read, a missing module or token; the private
// key cannot be read out of the token, even by someone holding the PIN.
#include "agent/identity/pkcs11_signer.h"

#include <dlfcn.h>
#include <gtest/gtest.h>
#include <p11-kit/pkcs11.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <thread>
#include <vector>

#include "agent/identity/signer_csr.h"
#include "agent/identity/softhsm_token.h"
#include "common/crypto/sign.h"

namespace portier::identity {
namespace {

using crypto::KeyType;

class Pkcs11SignerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char t[] = "/tmp/portier-pkcs11-XXXXXX";
    dir_ = mkdtemp(t);
    const std::string e = token_.init(dir_);
    ASSERT_TRUE(e.empty()) << e;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
  test::SoftHsmToken token_;
};

std::string raw_hex(const crypto::PublicKey& k) {
  auto r = k.raw();
  return r ? std::string(r->begin(), r->end()) : "";
}

TEST_F(Pkcs11SignerTest, TheKeyIsMadeInTheTokenOnceAndFoundAgain_REQ16) {
  for (auto type : {KeyType::ecdsa_p256, KeyType::ed25519}) {
    SCOPED_TRACE(std::string(crypto::name(type)));
    const auto opts = token_.options("device-" + std::string(crypto::name(type)), type);
    std::string first_pub;
    {
      auto s = Pkcs11Signer::open_or_create(opts);
      ASSERT_TRUE(s) << s.error().message();
      EXPECT_EQ((*s)->type(), type);
      first_pub = raw_hex((*s)->public_key());
      auto sig = (*s)->sign(crypto::byte_view("envelope 1"));
      ASSERT_TRUE(sig) << sig.error().message();
      EXPECT_TRUE(crypto::verify((*s)->public_key(), crypto::byte_view("envelope 1"), *sig));
      EXPECT_FALSE(crypto::verify((*s)->public_key(), crypto::byte_view("envelope 2"), *sig));
    }
    // A second start finds the same key: nothing new is generated.
    auto again = Pkcs11Signer::open_existing(opts);
    ASSERT_TRUE(again) << again.error().message();
    EXPECT_EQ(raw_hex((*again)->public_key()), first_pub);
    auto reopened = Pkcs11Signer::open_or_create(opts);
    ASSERT_TRUE(reopened);
    EXPECT_EQ(raw_hex((*reopened)->public_key()), first_pub);
    auto sig = (*again)->sign(crypto::byte_view("after restart"));
    ASSERT_TRUE(sig);
    EXPECT_TRUE(
        crypto::verify((*reopened)->public_key(), crypto::byte_view("after restart"), *sig));
  }
}

TEST_F(Pkcs11SignerTest, AWrongPinIsAClearError_REQ16) {
  auto opts = token_.options("device");
  opts.pin_file = dir_ + "/wrong-pin";
  {
    FILE* f = std::fopen(opts.pin_file.c_str(), "w");
    std::fputs("9999\n", f);
    std::fclose(f);
    ::chmod(opts.pin_file.c_str(), 0600);
  }
  auto s = Pkcs11Signer::open_or_create(opts);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, Errc::permission_denied);
  EXPECT_NE(s.error().message().find("wrong PIN (CKR_PIN_INCORRECT"), std::string::npos)
      << s.error().message();
}

TEST_F(Pkcs11SignerTest, APinFileOthersCanReadIsRefused_REQ16) {
  ASSERT_EQ(::chmod(token_.pin_file.c_str(), 0644), 0);
  auto s = Pkcs11Signer::open_or_create(token_.options("device"));
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, Errc::permission_denied);
  EXPECT_NE(s.error().message().find("mode 0644 lets others read or change it: refused"),
            std::string::npos)
      << s.error().message();
  // A symlink to a good PIN file is refused too.
  ASSERT_EQ(::chmod(token_.pin_file.c_str(), 0600), 0);
  const std::string link = dir_ + "/pin-link";
  ASSERT_EQ(::symlink(token_.pin_file.c_str(), link.c_str()), 0);
  auto opts = token_.options("device");
  opts.pin_file = link;
  auto l = Pkcs11Signer::open_or_create(opts);
  ASSERT_FALSE(l);
  EXPECT_NE(l.error().message().find("a symlink: refused"), std::string::npos)
      << l.error().message();
}

TEST_F(Pkcs11SignerTest, AMissingModuleOrTokenIsAClearError) {
  auto opts = token_.options("device");
  opts.module_path = dir_ + "/no-such-module.so";
  auto m = Pkcs11Signer::open_or_create(opts);
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().code, Errc::not_found);
  EXPECT_NE(m.error().message().find("no-such-module.so: PKCS#11 module: cannot be loaded"),
            std::string::npos)
      << m.error().message();

  opts.module_path = "libsofthsm2.so";
  auto rel = Pkcs11Signer::open_or_create(opts);
  ASSERT_FALSE(rel);
  EXPECT_NE(rel.error().message().find("must be an absolute path"), std::string::npos);

  opts = token_.options("device");
  opts.token_label = "elsewhere";
  auto t = Pkcs11Signer::open_or_create(opts);
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error().code, Errc::not_found);
  EXPECT_NE(
      t.error().message().find("no initialised token labelled \"elsewhere\" (tokens: \"portier\")"),
      std::string::npos)
      << t.error().message();

  auto none = Pkcs11Signer::open_existing(token_.options("never-made"));
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, Errc::not_found);
}

TEST_F(Pkcs11SignerTest, Sm2IsRefusedWithTheReason) {
  auto s = Pkcs11Signer::open_or_create(token_.options("device", KeyType::sm2));
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message().find("SM2 keys stay in the file backend: SoftHSM2 has no SM2"),
            std::string::npos)
      << s.error().message();
}

TEST_F(Pkcs11SignerTest, AKeyOfAnotherTypeUnderTheLabelIsRefused) {
  ASSERT_TRUE(Pkcs11Signer::open_or_create(token_.options("device", KeyType::ed25519)));
  auto s = Pkcs11Signer::open_or_create(token_.options("device", KeyType::ecdsa_p256));
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, Errc::failed_precondition);
  EXPECT_NE(s.error().message().find("is not a ecdsa-p256 key"), std::string::npos)
      << s.error().message();
}

// Someone with the module and the PIN (another process on the terminal)
// asks the token for the private key's value: refused, and the key says it
// is sensitive and not extractable.
TEST_F(Pkcs11SignerTest, ThePrivateKeyCannotBeReadOutOfTheToken_REQ16) {
  auto signer = Pkcs11Signer::open_or_create(token_.options("device"));
  ASSERT_TRUE(signer) << signer.error().message();

  void* h = dlopen(test::kSoftHsmModule, RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(h, nullptr);
  auto get = reinterpret_cast<CK_C_GetFunctionList>(dlsym(h, "C_GetFunctionList"));
  CK_FUNCTION_LIST* f = nullptr;
  ASSERT_EQ(get(&f), CKR_OK);
  // The signer's module has it initialised already (same process).
  CK_SLOT_ID slots[8];
  CK_ULONG n = 8;
  ASSERT_EQ(f->C_GetSlotList(CK_TRUE, slots, &n), CKR_OK);
  ASSERT_GE(n, 1u);
  CK_SESSION_HANDLE s;
  ASSERT_EQ(f->C_OpenSession(slots[0], CKF_SERIAL_SESSION, nullptr, nullptr, &s), CKR_OK);
  CK_RV login = f->C_Login(s, CKU_USER, (unsigned char*)"1234", 4);
  ASSERT_TRUE(login == CKR_OK || login == CKR_USER_ALREADY_LOGGED_IN);
  CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
  CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_LABEL, (void*)"device", 6}};
  ASSERT_EQ(f->C_FindObjectsInit(s, t, 2), CKR_OK);
  CK_OBJECT_HANDLE key;
  CK_ULONG found = 0;
  ASSERT_EQ(f->C_FindObjects(s, &key, 1, &found), CKR_OK);
  f->C_FindObjectsFinal(s);
  ASSERT_EQ(found, 1u);

  std::uint8_t value[256];
  CK_ATTRIBUTE a{CKA_VALUE, value, sizeof value};
  EXPECT_EQ(f->C_GetAttributeValue(s, key, &a, 1), CKR_ATTRIBUTE_SENSITIVE);
  EXPECT_EQ(a.ulValueLen, CK_UNAVAILABLE_INFORMATION);
  CK_BBOOL sensitive = CK_FALSE, extractable = CK_TRUE, token = CK_FALSE;
  CK_ATTRIBUTE flags[] = {{CKA_SENSITIVE, &sensitive, sizeof sensitive},
                          {CKA_EXTRACTABLE, &extractable, sizeof extractable},
                          {CKA_TOKEN, &token, sizeof token}};
  ASSERT_EQ(f->C_GetAttributeValue(s, key, flags, 3), CKR_OK);
  EXPECT_EQ(sensitive, CK_TRUE);
  EXPECT_EQ(extractable, CK_FALSE);
  EXPECT_EQ(token, CK_TRUE);
  // Nor can the key be made extractable afterwards.
  CK_BBOOL yes = CK_TRUE;
  CK_ATTRIBUTE make_extractable{CKA_EXTRACTABLE, &yes, sizeof yes};
  EXPECT_NE(f->C_SetAttributeValue(s, key, &make_extractable, 1), CKR_OK);
  f->C_CloseSession(s);
  dlclose(h);
}

TEST_F(Pkcs11SignerTest, ADestroyedKeyIsGoneFromTheToken_REQ16) {
  const auto opts = token_.options("device");
  auto signer = Pkcs11Signer::open_or_create(opts);
  ASSERT_TRUE(signer);
  const std::string pub = raw_hex((*signer)->public_key());
  ASSERT_TRUE((*signer)->destroy());
  auto sig = (*signer)->sign(crypto::byte_view("x"));
  ASSERT_FALSE(sig);
  EXPECT_NE(sig.error().message().find("the key was destroyed"), std::string::npos);
  auto gone = Pkcs11Signer::open_existing(opts);
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().code, Errc::not_found);
  // A new key under the label is another key.
  auto fresh = Pkcs11Signer::open_or_create(opts);
  ASSERT_TRUE(fresh);
  EXPECT_NE(raw_hex((*fresh)->public_key()), pub);
}

// Another user of the module closes every session of the token (as a
// token reset does): the signer opens a new session, logs in again with the
// PIN file and signs.
TEST_F(Pkcs11SignerTest, ASessionClosedUnderTheSignerIsOpenedAgain) {
  auto signer = Pkcs11Signer::open_or_create(token_.options("device"));
  ASSERT_TRUE(signer);
  void* h = dlopen(test::kSoftHsmModule, RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(h, nullptr);
  auto get = reinterpret_cast<CK_C_GetFunctionList>(dlsym(h, "C_GetFunctionList"));
  CK_FUNCTION_LIST* f = nullptr;
  ASSERT_EQ(get(&f), CKR_OK);
  CK_SLOT_ID slots[8];
  CK_ULONG n = 8;
  ASSERT_EQ(f->C_GetSlotList(CK_TRUE, slots, &n), CKR_OK);
  for (CK_ULONG i = 0; i < n; ++i) ASSERT_EQ(f->C_CloseAllSessions(slots[i]), CKR_OK);
  auto sig = (*signer)->sign(crypto::byte_view("after the reset"));
  ASSERT_TRUE(sig) << sig.error().message();
  EXPECT_TRUE(crypto::verify((*signer)->public_key(), crypto::byte_view("after the reset"), *sig));

  // Closed again, and the PIN file is no longer acceptable: a clear error.
  for (CK_ULONG i = 0; i < n; ++i) ASSERT_EQ(f->C_CloseAllSessions(slots[i]), CKR_OK);
  ASSERT_EQ(::chmod(token_.pin_file.c_str(), 0644), 0);
  auto refused = (*signer)->sign(crypto::byte_view("x"));
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message().find("lets others read or change it"), std::string::npos)
      << refused.error().message();
  dlclose(h);
}

// The key under the signer's label destroyed and replaced behind its back:
// it never signs with the other key.
TEST_F(Pkcs11SignerTest, AKeyReplacedBehindTheSignerIsNeverUsed_REQ16) {
  const auto opts = token_.options("device");
  auto a = Pkcs11Signer::open_or_create(opts);
  ASSERT_TRUE(a);
  {
    auto b = Pkcs11Signer::open_existing(opts);
    ASSERT_TRUE(b);
    ASSERT_TRUE((*b)->destroy());
  }
  auto c = Pkcs11Signer::open_or_create(opts);  // a new key, same label
  ASSERT_TRUE(c);
  auto sig = (*a)->sign(crypto::byte_view("x"));
  ASSERT_FALSE(sig) << "signed with a destroyed key";
  EXPECT_NE(sig.error().message().find("the key under this label is another one now: refused"),
            std::string::npos)
      << sig.error().message();
  // And stays refused.
  EXPECT_FALSE((*a)->sign(crypto::byte_view("y")));
}

TEST_F(Pkcs11SignerTest, ManyThreadsSignAtOnce) {
  auto signer = Pkcs11Signer::open_or_create(token_.options("device"));
  ASSERT_TRUE(signer);
  std::atomic<int> good{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        const std::string m = "t" + std::to_string(t) + "-" + std::to_string(i);
        auto sig = (*signer)->sign(crypto::byte_view(m));
        if (sig && crypto::verify((*signer)->public_key(), crypto::byte_view(m), *sig)) ++good;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(good.load(), 100);
}

TEST_F(Pkcs11SignerTest, TheEnrolmentCsrOfATokenKeyIsSignedInTheToken) {
  for (auto type : {KeyType::ecdsa_p256, KeyType::ed25519}) {
    auto signer =
        Pkcs11Signer::open_or_create(token_.options(std::string(crypto::name(type)), type));
    ASSERT_TRUE(signer);
    auto csr = make_csr(**signer, {"T-0123456789abcdef0123456789abcdef", "SN-4711/B", ""});
    ASSERT_TRUE(csr) << csr.error().message();
    EXPECT_TRUE(csr->verify_self_signature());
    EXPECT_EQ(csr->subject().common_name, "T-0123456789abcdef0123456789abcdef");
    EXPECT_EQ(csr->subject().serial_number, "SN-4711/B");
    auto pub = csr->public_key();
    ASSERT_TRUE(pub);
    EXPECT_EQ(raw_hex(*pub), raw_hex((*signer)->public_key()));
    // The openssl CLI agrees that the request is well formed and self-signed.
    auto pem = csr->to_pem();
    ASSERT_TRUE(pem);
    const std::string path = dir_ + "/req-" + std::string(crypto::name(type)) + ".pem";
    FILE* f = std::fopen(path.c_str(), "w");
    std::fputs(pem->c_str(), f);
    std::fclose(f);
    EXPECT_EQ(std::system(("openssl req -in " + path + " -noout -verify 2>/dev/null").c_str()), 0);
  }
  auto signer = Pkcs11Signer::open_or_create(token_.options("p256"));
  ASSERT_TRUE(signer);
  auto bad = make_csr(**signer, {"T-1", "serial\nwith newline", ""});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, Errc::invalid_argument);
}

}  // namespace
}  // namespace portier::identity
