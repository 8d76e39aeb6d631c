// Keys, signatures and ciphers used as an application would: generate,
// export, import, sign, verify, seal, open, and every way that must fail.
#include <gtest/gtest.h>

#include <string>

#include "common/crypto/bytes.h"
#include "common/crypto/cipher.h"
#include "common/crypto/digest.h"
#include "common/crypto/hmac.h"
#include "common/crypto/keys.h"
#include "common/crypto/random.h"
#include "common/crypto/sign.h"
#include "crypto/crypto_test_util.h"

namespace portier::crypto {
namespace {

using test::h;
using test::hex;

class SignRoundTrip : public ::testing::TestWithParam<KeyType> {};

TEST_P(SignRoundTrip, SignVerifyTamper) {
  auto key = PrivateKey::generate(GetParam());
  ASSERT_TRUE(key) << key.error().message();
  EXPECT_EQ(key->type(), GetParam());
  auto pub = key->public_key();
  ASSERT_TRUE(pub) << pub.error().message();
  EXPECT_EQ(pub->type(), GetParam());
  const std::string msg = "transfer 12.50 CNY to 6222 0000 0000 0000";
  auto sig = sign(*key, byte_view(msg));
  ASSERT_TRUE(sig) << sig.error().message();
  auto ok = verify(*pub, byte_view(msg), *sig);
  EXPECT_TRUE(ok) << ok.error().message();

  std::string tampered = msg;
  tampered[9] = '9';
  auto bad = verify(*pub, byte_view(tampered), *sig);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, Errc::permission_denied);

  Bytes flipped = *sig;
  flipped[flipped.size() / 2] ^= 0x01;
  auto bad_sig = verify(*pub, byte_view(msg), flipped);
  ASSERT_FALSE(bad_sig);
  EXPECT_EQ(bad_sig.error().code, Errc::permission_denied);
  EXPECT_FALSE(verify(*pub, byte_view(msg), Bytes{}));
  EXPECT_FALSE(verify(*pub, byte_view(msg), Bytes(3, 0x30)));

  auto other = PrivateKey::generate(GetParam());
  ASSERT_TRUE(other);
  EXPECT_FALSE(verify(*other->public_key(), byte_view(msg), *sig));
}

TEST_P(SignRoundTrip, PemAndRawExportImport) {
  auto key = PrivateKey::generate(GetParam());
  ASSERT_TRUE(key);
  auto pem = key->to_pem();
  ASSERT_TRUE(pem) << pem.error().message();
  EXPECT_NE(pem->find("-----BEGIN PRIVATE KEY-----"), std::string::npos);
  auto again = PrivateKey::from_pem(*pem);
  cleanse(*pem);
  ASSERT_TRUE(again) << again.error().message();
  EXPECT_EQ(again->type(), GetParam());

  auto pub_pem = key->public_key()->to_pem();
  ASSERT_TRUE(pub_pem);
  EXPECT_NE(pub_pem->find("-----BEGIN PUBLIC KEY-----"), std::string::npos);
  auto pub = PublicKey::from_pem(*pub_pem);
  ASSERT_TRUE(pub) << pub.error().message();
  EXPECT_EQ(pub->type(), GetParam());
  auto raw = pub->raw();
  ASSERT_TRUE(raw);
  EXPECT_EQ(raw->size(), GetParam() == KeyType::ed25519 ? 32u : 65u);
  auto from_raw = PublicKey::from_raw(GetParam(), *raw);
  ASSERT_TRUE(from_raw);

  // The re-imported private key signs; every form of the public key verifies.
  auto sig = sign(*again, byte_view("pem"));
  ASSERT_TRUE(sig) << sig.error().message();
  EXPECT_TRUE(verify(*pub, byte_view("pem"), *sig));
  EXPECT_TRUE(verify(*from_raw, byte_view("pem"), *sig));
  EXPECT_TRUE(verify(*key->public_key(), byte_view("pem"), *sig));
}

INSTANTIATE_TEST_SUITE_P(AllKeyTypes, SignRoundTrip,
                         ::testing::Values(KeyType::ecdsa_p256, KeyType::ed25519, KeyType::sm2),
                         [](const auto& info) {
                           return std::string(name(info.param)) == "ecdsa-p256"
                                      ? std::string("ecdsa_p256")
                                      : std::string(name(info.param));
                         });

TEST(Sm2, SignerIdMustMatch_REQ16) {
  auto key = PrivateKey::generate(KeyType::sm2);
  ASSERT_TRUE(key);
  auto pub = key->public_key();
  ASSERT_TRUE(pub);
  SignOptions alice{.sm2_id = "ALICE123@YAHOO.COM"};
  auto sig = sign(*key, byte_view("message digest"), alice);
  ASSERT_TRUE(sig);
  EXPECT_TRUE(verify(*pub, byte_view("message digest"), *sig, alice));
  EXPECT_FALSE(verify(*pub, byte_view("message digest"), *sig));  // default id
}

TEST(Sm2, KeyTypeSurvivesPem_REQ16) {
  // An SM2 key must sign with SM2 after a PEM round trip, not with ECDSA on
  // the SM2 curve: a signature from before the round trip verifies after it.
  auto key = PrivateKey::generate(KeyType::sm2);
  ASSERT_TRUE(key);
  auto sig = sign(*key, byte_view("m"));
  ASSERT_TRUE(sig);
  auto pem = key->public_key()->to_pem();
  ASSERT_TRUE(pem);
  auto pub = PublicKey::from_pem(*pem);
  ASSERT_TRUE(pub);
  EXPECT_EQ(pub->type(), KeyType::sm2);
  EXPECT_TRUE(verify(*pub, byte_view("m"), *sig));
  auto priv_pem = key->to_pem();
  ASSERT_TRUE(priv_pem);
  auto again = PrivateKey::from_pem(*priv_pem);
  ASSERT_TRUE(again);
  auto sig2 = sign(*again, byte_view("m"));
  ASSERT_TRUE(sig2);
  EXPECT_TRUE(verify(*key->public_key(), byte_view("m"), *sig2));
}

TEST(Keys, WrongKeyTypesAndBadInputAreRefused) {
  // A P-384 key: a curve this layer does not offer.
  const char* p384 =
      "-----BEGIN PUBLIC KEY-----\n"
      "MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEi1T+T/TbuIyJKaodiVyOa2wLi1oZDDtz\n"
      "+jvwkamzixUe9mI3K5qHST3Dk4LdCJxHf/XvlcV5eDv7d7RI/KoGvLHesQrEbraS\n"
      "cz04bMCA+pHGqytkmOEjnOCH/H0n5FNK\n"
      "-----END PUBLIC KEY-----\n";
  auto k = PublicKey::from_pem(p384);
  ASSERT_FALSE(k);
  EXPECT_EQ(k.error().code, Errc::invalid_argument);
  EXPECT_NE(k.error().why.find("secp384r1"), std::string::npos) << k.error().message();

  EXPECT_FALSE(PublicKey::from_pem("not a key"));
  EXPECT_FALSE(
      PrivateKey::from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"));
  // A point that is not on the curve, a compressed point, a short key.
  Bytes off_curve(65, 0x01);
  off_curve[0] = 0x04;
  EXPECT_FALSE(PublicKey::from_raw(KeyType::ecdsa_p256, off_curve));
  EXPECT_FALSE(PublicKey::from_raw(KeyType::sm2, off_curve));
  EXPECT_FALSE(PublicKey::from_raw(KeyType::ecdsa_p256, Bytes(33, 0x02)));
  EXPECT_FALSE(PublicKey::from_raw(KeyType::ed25519, Bytes(31, 0)));
  // Private scalars 0 and n are out of range.
  EXPECT_FALSE(PrivateKey::from_raw(KeyType::ecdsa_p256, Bytes(32, 0)));
  EXPECT_FALSE(PrivateKey::from_raw(
      KeyType::ecdsa_p256, h("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551")));
  EXPECT_FALSE(PrivateKey::from_raw(
      KeyType::sm2, h("fffffffeffffffffffffffffffffffff7203df6b21c6052b53bbf40939d54122")));  // n-1
  EXPECT_FALSE(PrivateKey::from_raw(KeyType::sm2, Bytes(31, 1)));
}

TEST(Keys, EncryptedPemIsRefusedWithoutPrompting) {
  // Reading must never ask for a passphrase on the terminal: it fails.
  const char* encrypted =
      "-----BEGIN ENCRYPTED PRIVATE KEY-----\n"  // Ed25519, passphrase "portier"
      "MIGbMFcGCSqGSIb3DQEFDTBKMCkGCSqGSIb3DQEFDDAcBAhvVfj50rJZNAICCAAw\n"
      "DAYIKoZIhvcNAgkFADAdBglghkgBZQMEASoEEDnUZiH8THX12KPu2EH/mwsEQKuv\n"
      "E6qVcrSCB76+4D+PMAxQsBrNax3zS8E5Z+c4/QTGmiQeMABWmsSnNjHf1wpITM0O\n"
      "shIiQmM+JZHU6R77a3c=\n"
      "-----END ENCRYPTED PRIVATE KEY-----\n";
  auto k = PrivateKey::from_pem(encrypted);
  ASSERT_FALSE(k);
  EXPECT_EQ(k.error().code, Errc::invalid_argument);
}

TEST(Aead, Aes256GcmRoundTripAndEveryTamperFails) {
  auto key = random_bytes(32);
  auto nonce = random_bytes(12);
  ASSERT_TRUE(key && nonce);
  const Bytes aad = Bytes{'h', 'd', 'r'};
  const std::string plain = "PIN block 0412AC89ABCDEF67";
  auto sealed = aead_seal(AeadAlgo::aes_256_gcm, *key, *nonce, aad, byte_view(plain));
  ASSERT_TRUE(sealed) << sealed.error().message();
  EXPECT_EQ(sealed->ciphertext.size(), plain.size());
  EXPECT_EQ(sealed->tag.size(), 16u);
  auto opened =
      aead_open(AeadAlgo::aes_256_gcm, *key, *nonce, aad, sealed->ciphertext, sealed->tag);
  ASSERT_TRUE(opened);
  EXPECT_EQ(std::string(opened->begin(), opened->end()), plain);

  auto expect_denied = [&](ByteView k, ByteView n, ByteView a, ByteView c, ByteView t) {
    auto r = aead_open(AeadAlgo::aes_256_gcm, k, n, a, c, t);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::permission_denied) << r.error().message();
  };
  Bytes t = sealed->tag;
  t[0] ^= 0x80;
  expect_denied(*key, *nonce, aad, sealed->ciphertext, t);
  Bytes c = sealed->ciphertext;
  c[3] ^= 0x01;
  expect_denied(*key, *nonce, aad, c, sealed->tag);
  expect_denied(*key, *nonce, Bytes{'h', 'd', 'R'}, sealed->ciphertext, sealed->tag);
  expect_denied(*key, *nonce, Bytes{}, sealed->ciphertext, sealed->tag);
  Bytes n = *nonce;
  n[11] ^= 0x01;
  expect_denied(*key, n, aad, sealed->ciphertext, sealed->tag);
  Bytes k = *key;
  k[0] ^= 0x01;
  expect_denied(k, *nonce, aad, sealed->ciphertext, sealed->tag);

  // Sizes are checked before anything runs.
  EXPECT_EQ(aead_open(AeadAlgo::aes_256_gcm, *key, *nonce, aad, sealed->ciphertext,
                      ByteView(sealed->tag).first(12))
                .error()
                .code,
            Errc::invalid_argument);
  EXPECT_EQ(
      aead_seal(AeadAlgo::aes_256_gcm, Bytes(16, 0), *nonce, aad, byte_view(plain)).error().code,
      Errc::invalid_argument);
  EXPECT_EQ(aead_seal(AeadAlgo::aes_256_gcm, *key, Bytes(8, 0), aad, byte_view(plain)).error().code,
            Errc::invalid_argument);
  // Empty plaintext: a tag over the AAD alone.
  auto empty = aead_seal(AeadAlgo::aes_256_gcm, *key, *nonce, aad, ByteView());
  ASSERT_TRUE(empty);
  EXPECT_TRUE(aead_open(AeadAlgo::aes_256_gcm, *key, *nonce, aad, ByteView(), empty->tag));
}

TEST(Sm4, CbcPkcs7AndCtrRoundTrips_REQ16) {
  auto key = random_bytes(16);
  auto iv = random_bytes(16);
  ASSERT_TRUE(key && iv);
  for (std::size_t len : {0u, 1u, 15u, 16u, 17u, 100u, 4096u}) {
    Bytes plain(len);
    for (std::size_t i = 0; i < len; ++i) plain[i] = static_cast<std::uint8_t>(i * 7);
    auto cbc = encrypt(CipherAlgo::sm4_cbc, *key, *iv, plain);
    ASSERT_TRUE(cbc) << cbc.error().message();
    EXPECT_EQ(cbc->size(), (len / 16 + 1) * 16);
    auto back = decrypt(CipherAlgo::sm4_cbc, *key, *iv, *cbc);
    ASSERT_TRUE(back) << back.error().message();
    EXPECT_EQ(*back, plain);
    auto ctr = encrypt(CipherAlgo::sm4_ctr, *key, *iv, plain);
    ASSERT_TRUE(ctr);
    EXPECT_EQ(ctr->size(), len);
    auto ctr_back = decrypt(CipherAlgo::sm4_ctr, *key, *iv, *ctr);
    ASSERT_TRUE(ctr_back);
    EXPECT_EQ(*ctr_back, plain);
  }
  EXPECT_EQ(encrypt(CipherAlgo::sm4_cbc, *key, *iv, Bytes(15), Padding::none).error().code,
            Errc::invalid_argument);
  EXPECT_EQ(encrypt(CipherAlgo::sm4_cbc, Bytes(32), *iv, Bytes(16)).error().code,
            Errc::invalid_argument);
  EXPECT_EQ(decrypt(CipherAlgo::sm4_cbc, *key, *iv, Bytes(17)).error().code,
            Errc::invalid_argument);
  // The wrong key almost always leaves bad padding; when it does not, the
  // plaintext differs.
  auto cbc = encrypt(CipherAlgo::sm4_cbc, *key, *iv, byte_view("secret"));
  ASSERT_TRUE(cbc);
  Bytes wrong = *key;
  wrong[0] ^= 1;
  auto bad = decrypt(CipherAlgo::sm4_cbc, wrong, *iv, *cbc);
  if (bad) {
    EXPECT_NE(std::string(bad->begin(), bad->end()), "secret");
  } else {
    EXPECT_EQ(bad.error().code, Errc::invalid_argument);
  }
}

TEST(Random, BytesDifferAndFillTheBuffer) {
  auto a = random_bytes(32);
  auto b = random_bytes(32);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->size(), 32u);
  EXPECT_NE(*a, *b);
  EXPECT_TRUE(random_bytes(0));
}

TEST(Bytes, ConstantTimeEqualAndCleanse) {
  EXPECT_TRUE(constant_time_equal(h("0102"), h("0102")));
  EXPECT_FALSE(constant_time_equal(h("0102"), h("0103")));
  EXPECT_FALSE(constant_time_equal(h("0102"), h("010203")));
  EXPECT_TRUE(constant_time_equal(Bytes{}, Bytes{}));
  std::string secret = "hunter2";
  cleanse(secret);
  EXPECT_EQ(secret.size(), 7u);
  EXPECT_EQ(secret.find("hunter2"), std::string::npos);
}

TEST(DigestApi, StreamingMatchesOneShotAndFinishesOnce) {
  for (auto algo : {DigestAlgo::sha256, DigestAlgo::sm3, DigestAlgo::sha1, DigestAlgo::sha384,
                    DigestAlgo::sha512}) {
    auto md = Digest::create(algo);
    ASSERT_TRUE(md);
    EXPECT_EQ(md->algo(), algo);
    md->update("hello ");
    md->update(Bytes{'w', 'o', 'r', 'l', 'd'});
    auto streamed = md->finish();
    ASSERT_TRUE(streamed);
    EXPECT_EQ(streamed->size(), digest_size(algo)) << name(algo);
    EXPECT_EQ(*streamed, *digest(algo, "hello world")) << name(algo);
    auto again = md->finish();
    ASSERT_FALSE(again);
    EXPECT_EQ(again.error().code, Errc::failed_precondition);
    Digest moved = std::move(*md);
    EXPECT_FALSE(moved.finish());
  }
  EXPECT_EQ(hex(*digest(DigestAlgo::sha1, "abc")), "a9993e364706816aba3e25717850c26c9cd0d89d");
}

TEST(HmacApi, KeyMattersAndEmptyKeyWorks) {
  auto a = hmac(DigestAlgo::sha256, "key", "data");
  auto b = hmac(DigestAlgo::sha256, "kez", "data");
  ASSERT_TRUE(a && b);
  EXPECT_FALSE(constant_time_equal(*a, *b));
  auto empty = hmac(DigestAlgo::sha256, ByteView(), ByteView());
  ASSERT_TRUE(empty) << empty.error().message();
  // RFC 2104 with an empty key and message (a widely quoted value).
  EXPECT_EQ(hex(*empty), "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
}

}  // namespace
}  // namespace portier::crypto
