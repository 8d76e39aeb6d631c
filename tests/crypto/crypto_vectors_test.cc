// Published test vectors: SHA-256 (FIPS 180-2 examples), HMAC-SHA256
// (RFC 4231), SM3 (GB/T 32905-2016 Appendix A), HMAC-SM3 (GM/T 0042-2015
// Appendix D.3), SM4 (GB/T 32907-2016 Appendix A; CBC and CTR from
// draft-ribose-cfrg-sm4; GCM from RFC 8998), SM2 (GB/T 32918.5-2017 /
// GM/T 0003.5-2012 Annex A), Ed25519 (RFC 8032 7.1 test 1), ECDSA P-256
// (RFC 6979 A.2.5), AES-256-GCM (McGrew-Viega GCM spec, test case 16).
// Tests of the Chinese algorithms carry REQ16 in their names.
#include <gtest/gtest.h>

#include <string>

#include "common/crypto/cipher.h"
#include "common/crypto/digest.h"
#include "common/crypto/hmac.h"
#include "common/crypto/keys.h"
#include "common/crypto/sign.h"
#include "crypto/crypto_test_util.h"

namespace portier::crypto {
namespace {

using test::h;
using test::hex;

std::string digest_hex(DigestAlgo algo, std::string_view data) {
  auto d = digest(algo, data);
  EXPECT_TRUE(d) << d.error().message();
  return d ? hex(*d) : "";
}

// The same data in uneven pieces through the streaming interface.
std::string streamed_hex(DigestAlgo algo, std::string_view data) {
  auto md = Digest::create(algo);
  EXPECT_TRUE(md);
  if (!md) return "";
  for (std::size_t i = 0, n = 1; i < data.size(); i += n, n = n * 3 + 1)
    md->update(data.substr(i, n));
  auto d = md->finish();
  EXPECT_TRUE(d);
  return d ? hex(*d) : "";
}

TEST(DigestVectors, Sha256Fips180) {
  EXPECT_EQ(digest_hex(DigestAlgo::sha256, ""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(digest_hex(DigestAlgo::sha256, "abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const std::string two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  EXPECT_EQ(digest_hex(DigestAlgo::sha256, two_blocks),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(streamed_hex(DigestAlgo::sha256, two_blocks),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  const std::string million(1000000, 'a');
  EXPECT_EQ(streamed_hex(DigestAlgo::sha256, million),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(DigestVectors, Sm3GbT32905_REQ16) {
  // GB/T 32905-2016 Appendix A.1: "abc".
  EXPECT_EQ(digest_hex(DigestAlgo::sm3, "abc"),
            "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0");
  EXPECT_EQ(streamed_hex(DigestAlgo::sm3, "abc"),
            "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0");
  // Appendix A.2: the 512-bit message "abcd" x 16.
  std::string abcd16;
  for (int i = 0; i < 16; ++i) abcd16 += "abcd";
  EXPECT_EQ(digest_hex(DigestAlgo::sm3, abcd16),
            "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732");
  EXPECT_EQ(streamed_hex(DigestAlgo::sm3, abcd16),
            "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732");
  EXPECT_EQ(digest_size(DigestAlgo::sm3), 32u);
}

TEST(HmacVectors, Sha256Rfc4231) {
  struct Case {
    Bytes key;
    std::string data;
    const char* mac;
  };
  const Case cases[] = {
      {Bytes(20, 0x0b), "Hi There",  // 4.2 test case 1
       "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
      {Bytes{'J', 'e', 'f', 'e'}, "what do ya want for nothing?",  // 4.3 test case 2
       "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
      {Bytes(20, 0xaa), std::string(50, '\xdd'),  // 4.4 test case 3
       "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"},
      {Bytes(131, 0xaa), "Test Using Larger Than Block-Size Key - Hash Key First",  // 4.7 case 6
       "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
      {Bytes(131, 0xaa),  // 4.8 test case 7
       "This is a test using a larger than block-size key and a larger than block-size data. The "
       "key needs to be hashed before being used by the HMAC algorithm.",
       "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"},
  };
  for (const auto& c : cases) {
    auto mac = hmac(DigestAlgo::sha256, c.key, byte_view(c.data));
    ASSERT_TRUE(mac) << mac.error().message();
    EXPECT_EQ(hex(*mac), c.mac);
  }
}

TEST(HmacVectors, Sm3GmT0042_REQ16) {
  // GM/T 0042-2015 Appendix D.3 (as in OpenSSL's evpmac_sm3.txt).
  auto m1 =
      hmac(DigestAlgo::sm3, h("0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20"),
           byte_view("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
                     "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"));
  ASSERT_TRUE(m1);
  EXPECT_EQ(hex(*m1), "ca05e144ed05d1857840d1f318a4a8669e559fc8391f414485bfdf7bb408963a");
  auto m2 = hmac(DigestAlgo::sm3,
                 h("0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425"),
                 Bytes(50, 0xcd));
  ASSERT_TRUE(m2);
  EXPECT_EQ(hex(*m2), "220bf579ded555393f0159f66c99877822a3ecf610d1552154b41d44b94db3ae");
  auto m3 = hmac(DigestAlgo::sm3, Bytes(32, 0x0b), byte_view("Hi There"));
  ASSERT_TRUE(m3);
  EXPECT_EQ(hex(*m3), "c0ba18c68b90c88bc07de794bfc7d2c8d19ec31ed8773bc2b390c9604e0be11e");
}

const Bytes kSm4Key = h("0123456789abcdeffedcba9876543210");
const Bytes kZeroIv(16, 0);

TEST(Sm4Vectors, GbT32907Example1_REQ16) {
  // One block, key = plaintext. CBC with a zero IV on one block is the bare
  // block cipher.
  auto c = encrypt(CipherAlgo::sm4_cbc, kSm4Key, kZeroIv, kSm4Key, Padding::none);
  ASSERT_TRUE(c) << c.error().message();
  EXPECT_EQ(hex(*c), "681edf34d206965e86b3e94f536e4246");
  auto p = decrypt(CipherAlgo::sm4_cbc, kSm4Key, kZeroIv, *c, Padding::none);
  ASSERT_TRUE(p);
  EXPECT_EQ(*p, kSm4Key);
}

TEST(Sm4Vectors, GbT32907Example2MillionTimes_REQ16) {
  // The plaintext encrypted 1,000,000 times with the same key. In CBC with a
  // zero IV, block i + 1 of an all-zero tail is E(C_i): the last block of
  // P || 0^(16 x 999,999) is E applied a million times (16 MB, one call).
  Bytes data(16 * 1000000, 0);
  std::copy(kSm4Key.begin(), kSm4Key.end(), data.begin());
  auto c = encrypt(CipherAlgo::sm4_cbc, kSm4Key, kZeroIv, data, Padding::none);
  ASSERT_TRUE(c) << c.error().message();
  ASSERT_EQ(c->size(), data.size());
  EXPECT_EQ(hex(ByteView(*c).last(16)), "595298c7c6fd271f0402f804c33d3f66");
}

TEST(Sm4Vectors, CbcAndCtrDraftRibose_REQ16) {
  // draft-ribose-cfrg-sm4-10 (as in OpenSSL's evpciph_sm4.txt).
  auto cbc = encrypt(CipherAlgo::sm4_cbc, kSm4Key, kSm4Key,
                     h("0123456789abcdeffedcba9876543210 0123456789abcdeffedcba9876543210"),
                     Padding::none);
  ASSERT_TRUE(cbc);
  EXPECT_EQ(hex(*cbc), "2677f46b09c122cc975533105bd4a22af6125f7275ce552c3a2bbcf533de8a3b");
  const Bytes plain =
      h("aaaaaaaaaaaaaaaabbbbbbbbbbbbbbbbccccccccccccccccdddddddddddddddd"
        "eeeeeeeeeeeeeeeeffffffffffffffffeeeeeeeeeeeeeeeeaaaaaaaaaaaaaaaa");
  const std::string ctr_cipher =
      "c2b4759e78ac3cf43d0852f4e8d5f9fd7256e8a5fcb65a350ee00630912e4449"
      "2a0b17e1b85b060d0fba612d8a95831638b361fd5ffacd942f081485a83ca35d";
  auto ctr = encrypt(CipherAlgo::sm4_ctr, kSm4Key, kSm4Key, plain);
  ASSERT_TRUE(ctr);
  EXPECT_EQ(hex(*ctr), ctr_cipher);
  auto back = decrypt(CipherAlgo::sm4_ctr, kSm4Key, kSm4Key, *ctr);
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, plain);
}

TEST(Sm4Vectors, GcmRfc8998_REQ16) {
  const Bytes plain =
      h("aaaaaaaaaaaaaaaabbbbbbbbbbbbbbbbccccccccccccccccdddddddddddddddd"
        "eeeeeeeeeeeeeeeeffffffffffffffffeeeeeeeeeeeeeeeeaaaaaaaaaaaaaaaa");
  const Bytes nonce = h("00001234567800000000abcd");
  const Bytes aad = h("feedfacedeadbeeffeedfacedeadbeefabaddad2");
  auto sealed = aead_seal(AeadAlgo::sm4_gcm, kSm4Key, nonce, aad, plain);
  if (!sealed && sealed.error().code == Errc::unavailable) {
    // OpenSSL 3.0 (Debian 12) has no SM4-GCM; 3.2 and later do.
    GTEST_SKIP() << sealed.error().message();
  }
  ASSERT_TRUE(sealed) << sealed.error().message();
  EXPECT_EQ(hex(sealed->ciphertext),
            "17f399f08c67d5ee19d0dc9969c4bb7d5fd46fd3756489069157b282bb200735"
            "d82710ca5c22f0ccfa7cbf93d496ac15a56834cbcf98c397b4024a2691233b8d");
  EXPECT_EQ(hex(sealed->tag), "83de3541e4c2b58177e065a9bf7b62ec");
}

TEST(AeadVectors, Aes256GcmTestCase16) {
  const Bytes key = h("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308");
  const Bytes nonce = h("cafebabefacedbaddecaf888");
  const Bytes aad = h("feedfacedeadbeeffeedfacedeadbeefabaddad2");
  const Bytes plain =
      h("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
        "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39");
  const std::string cipher =
      "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
      "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662";
  const std::string tag = "76fc6ece0f4e1768cddf8853bb2d551b";
  auto sealed = aead_seal(AeadAlgo::aes_256_gcm, key, nonce, aad, plain);
  ASSERT_TRUE(sealed) << sealed.error().message();
  EXPECT_EQ(hex(sealed->ciphertext), cipher);
  EXPECT_EQ(hex(sealed->tag), tag);
  auto opened = aead_open(AeadAlgo::aes_256_gcm, key, nonce, aad, h(cipher), h(tag));
  ASSERT_TRUE(opened) << opened.error().message();
  EXPECT_EQ(*opened, plain);
  Bytes bad_tag = h(tag);
  bad_tag[15] ^= 1;
  auto refused = aead_open(AeadAlgo::aes_256_gcm, key, nonce, aad, h(cipher), bad_tag);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, Errc::permission_denied);
}

// GB/T 32918.5-2017 Annex A (= GM/T 0003.5-2012 Annex A): an SM2 signature
// on the recommended curve over "message digest" with the default signer id
// 1234567812345678. (The example with the id ALICE123@YAHOO.COM is in
// GB/T 32918.2's annex, on a 256-bit test curve that is not the SM2 curve;
// OpenSSL's SM2 keys are on the SM2 curve only.)
constexpr const char* kSm2D = "3945208f7b2144b13f36e38ac6d39f95889393692860b51a42fb81ef4df7c5b8";
constexpr const char* kSm2Point =
    "04"
    "09f9df311e5421a150dd7d161e4bc5c672179fad1833fc076bb08ff356f35020"
    "ccea490ce26775a52dc6ea718cc1aa600aed05fbf35e084a6632f6072da9ad13";
constexpr const char* kSm2R = "f5a03b0648d2c4630eeac513e1bb81a15944da3827d5b74143ac7eaceee720b3";
constexpr const char* kSm2S = "b1b6aa29df212fd8763182bc0d421ca1bb9038fd1f7f42d4840b69c485bbc1aa";

TEST(Sm2Vectors, GbT32918Part5SignatureVerifies_REQ16) {
  auto pub = PublicKey::from_raw(KeyType::sm2, h(kSm2Point));
  ASSERT_TRUE(pub) << pub.error().message();
  auto sig = ec_signature_der(h(kSm2R), h(kSm2S));
  ASSERT_TRUE(sig);
  auto ok = verify(*pub, byte_view("message digest"), *sig);
  EXPECT_TRUE(ok) << ok.error().message();
  // Explicitly the default id: the same.
  EXPECT_TRUE(verify(*pub, byte_view("message digest"), *sig, {.sm2_id = "1234567812345678"}));

  auto tampered = verify(*pub, byte_view("message digesT"), *sig);
  ASSERT_FALSE(tampered);
  EXPECT_EQ(tampered.error().code, Errc::permission_denied);
  // The id enters the signed hash: another id, another Z, no match.
  auto other_id = verify(*pub, byte_view("message digest"), *sig, {.sm2_id = "ALICE123@YAHOO.COM"});
  ASSERT_FALSE(other_id);
  EXPECT_EQ(other_id.error().code, Errc::permission_denied);
  Bytes s = h(kSm2S);
  s[31] ^= 1;
  EXPECT_FALSE(verify(*pub, byte_view("message digest"), *ec_signature_der(h(kSm2R), s)));
}

TEST(Sm2Vectors, GbT32918Part5KeyPair_REQ16) {
  // The published private key gives the published public key, and its own
  // signatures (random k) verify with it.
  auto key = PrivateKey::from_raw(KeyType::sm2, h(kSm2D));
  ASSERT_TRUE(key) << key.error().message();
  auto pub = key->public_key();
  ASSERT_TRUE(pub);
  EXPECT_EQ(hex(*pub->raw()), kSm2Point);
  auto sig = sign(*key, byte_view("message digest"));
  ASSERT_TRUE(sig) << sig.error().message();
  EXPECT_TRUE(verify(*pub, byte_view("message digest"), *sig));
}

TEST(Ed25519Vectors, Rfc8032Test1) {
  auto key = PrivateKey::from_raw(
      KeyType::ed25519, h("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"));
  ASSERT_TRUE(key) << key.error().message();
  auto pub = key->public_key();
  ASSERT_TRUE(pub);
  EXPECT_EQ(hex(*pub->raw()), "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
  auto sig = sign(*key, ByteView());
  ASSERT_TRUE(sig) << sig.error().message();
  const std::string expected =
      "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
      "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b";
  EXPECT_EQ(hex(*sig), expected);
  auto published = PublicKey::from_raw(
      KeyType::ed25519, h("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"));
  ASSERT_TRUE(published);
  EXPECT_TRUE(verify(*published, ByteView(), h(expected)));
  EXPECT_FALSE(verify(*published, byte_view("x"), h(expected)));
}

TEST(EcdsaVectors, P256Rfc6979Sample) {
  const char* point =
      "04"
      "60fed4ba255a9d31c961eb74c6356d68c049b8923b61fa6ce669622e60f29fb6"
      "7903fe1008b8bc99a41ae9e95628bc64f2f1b20c2d7e9f5177a3c294d4462299";
  auto pub = PublicKey::from_raw(KeyType::ecdsa_p256, h(point));
  ASSERT_TRUE(pub) << pub.error().message();
  auto sig =
      ec_signature_der(h("efd48b2aacb6a8fd1140dd9cd45e81d69d2c877b56aaf991c34d0ea84eaf3716"),
                       h("f7cb1c942d657c41d436c7a1b6e29f65f3e900dbb9aff4064dc4ab2f843acda8"));
  ASSERT_TRUE(sig);
  EXPECT_TRUE(verify(*pub, byte_view("sample"), *sig));
  auto tampered = verify(*pub, byte_view("samplE"), *sig);
  ASSERT_FALSE(tampered);
  EXPECT_EQ(tampered.error().code, Errc::permission_denied);
  auto key = PrivateKey::from_raw(
      KeyType::ecdsa_p256, h("c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721"));
  ASSERT_TRUE(key);
  EXPECT_EQ(hex(*key->public_key()->raw()), point);
}

}  // namespace
}  // namespace portier::crypto
