// Keys: generation, PEM and raw import/export (OpenSSL 3 EVP_PKEY).
#include "common/crypto/keys.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>

#include <cstring>
#include <memory>

#include "platform/openssl/ossl.h"

namespace portier::crypto {
namespace {

constexpr const char* kWhere = "crypto/key";

struct Free {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); }
  void operator()(BIO* p) const { BIO_free(p); }
  void operator()(BIGNUM* p) const { BN_clear_free(p); }
  void operator()(EC_GROUP* p) const { EC_GROUP_free(p); }
  void operator()(EC_POINT* p) const { EC_POINT_free(p); }
  void operator()(OSSL_PARAM_BLD* p) const { OSSL_PARAM_BLD_free(p); }
  void operator()(OSSL_PARAM* p) const { OSSL_PARAM_free(p); }
};
template <class T>
using Ptr = std::unique_ptr<T, Free>;

bool is_ec(KeyType t) { return t == KeyType::ecdsa_p256 || t == KeyType::sm2; }
// OpenSSL's key type and group name for an EC KeyType.
const char* keymgmt(KeyType t) { return t == KeyType::sm2 ? "SM2" : "EC"; }
const char* group_name(KeyType t) { return t == KeyType::sm2 ? "SM2" : "prime256v1"; }
int group_nid(KeyType t) { return t == KeyType::sm2 ? NID_sm2 : NID_X9_62_prime256v1; }

// A never-prompting passphrase callback: an encrypted PEM is an error, not a
// question on the daemon's terminal.
int no_passphrase(char*, int, int, void*) { return -1; }

std::string bio_text(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  return n > 0 ? std::string(data, static_cast<std::size_t>(n)) : std::string();
}

// 04 || X || Y of an EC key (public or private), whatever form it was
// imported in.
Result<Bytes> ec_point(const EVP_PKEY* pkey) {
  BIGNUM* x = nullptr;
  BIGNUM* y = nullptr;
  const bool ok = EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_X, &x) == 1 &&
                  EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_Y, &y) == 1;
  Ptr<BIGNUM> px(x), py(y);
  Bytes out(65);
  out[0] = 0x04;
  if (!ok || BN_bn2binpad(x, out.data() + 1, 32) != 32 ||
      BN_bn2binpad(y, out.data() + 33, 32) != 32)
    return ossl::fail(Errc::internal, kWhere, "public point");
  return out;
}

// A key from OSSL_PARAMs: group, public point, and the private scalar if any.
Result<EVP_PKEY*> ec_from_params(KeyType type, ByteView point, const BIGNUM* priv) {
  Ptr<OSSL_PARAM_BLD> bld(OSSL_PARAM_BLD_new());
  if (!bld ||
      OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, group_name(type), 0) !=
          1 ||
      OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                       point.size()) != 1 ||
      (priv != nullptr && OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_PRIV_KEY, priv) != 1))
    return ossl::fail(Errc::internal, kWhere, "parameters");
  Ptr<OSSL_PARAM> params(OSSL_PARAM_BLD_to_param(bld.get()));
  Ptr<EVP_PKEY_CTX> ctx(EVP_PKEY_CTX_new_from_name(nullptr, keymgmt(type), nullptr));
  EVP_PKEY* pkey = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &pkey, priv != nullptr ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY,
                        params.get()) != 1) {
    return ossl::fail(Errc::invalid_argument, kWhere, std::string(name(type)),
                      "not a point on the curve");
  }
  return pkey;
}

}  // namespace

std::string_view name(KeyType type) {
  switch (type) {
    case KeyType::ecdsa_p256:
      return "ecdsa-p256";
    case KeyType::ed25519:
      return "ed25519";
    case KeyType::sm2:
      return "sm2";
  }
  return "unknown key type";
}

namespace ossl {

Result<KeyType> key_type(const EVP_PKEY* pkey) {
  if (EVP_PKEY_is_a(pkey, "ED25519")) return KeyType::ed25519;
  // OpenSSL 3 gives a key on the SM2 curve the type SM2 (PEM, DER, raw),
  // which signs with SM2; an "EC" key signs with ECDSA, on P-256 only here.
  if (EVP_PKEY_is_a(pkey, "SM2")) return KeyType::sm2;
  if (EVP_PKEY_is_a(pkey, "EC")) {
    char group[64] = {};
    std::size_t len = 0;
    if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                       &len) == 1 &&
        (std::strcmp(group, "prime256v1") == 0 || std::strcmp(group, "P-256") == 0))
      return KeyType::ecdsa_p256;
    ERR_clear_error();
    return portier::fail(Errc::invalid_argument, kWhere, "key",
                         std::string("EC curve ") + (group[0] ? group : "(explicit parameters)") +
                             " is not supported (P-256 and SM2 are)");
  }
  const char* type = EVP_PKEY_get0_type_name(pkey);
  return portier::fail(Errc::invalid_argument, kWhere, "key",
                       std::string("key type ") + (type ? type : "(unnamed)") +
                           " is not supported (ECDSA P-256, Ed25519 and SM2 are)");
}

}  // namespace ossl

PublicKey::PublicKey(KeyType type, std::shared_ptr<const Impl> impl)
    : type_(type), impl_(std::move(impl)) {}

Result<PublicKey> PublicKey::from_pem(std::string_view pem) {
  ERR_clear_error();
  Ptr<BIO> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return ossl::fail(Errc::internal, kWhere, "PEM");
  EVP_PKEY* raw = PEM_read_bio_PUBKEY(bio.get(), nullptr, no_passphrase, nullptr);
  if (raw == nullptr)
    return ossl::fail(Errc::invalid_argument, kWhere, "public key PEM", "not a PUBLIC KEY block");
  auto impl = std::make_shared<const Impl>(raw);
  auto type = ossl::key_type(raw);
  if (!type) return std::unexpected(type.error());
  return PublicKey(*type, std::move(impl));
}

Result<PublicKey> PublicKey::from_raw(KeyType type, ByteView raw) {
  ERR_clear_error();
  if (type == KeyType::ed25519) {
    if (raw.size() != 32)
      return fail(Errc::invalid_argument, kWhere, "ed25519 public key", "must be 32 bytes");
    EVP_PKEY* pkey =
        EVP_PKEY_new_raw_public_key_ex(nullptr, "ED25519", nullptr, raw.data(), raw.size());
    if (pkey == nullptr) return ossl::fail(Errc::invalid_argument, kWhere, "ed25519 public key");
    return PublicKey(type, std::make_shared<const Impl>(pkey));
  }
  if (!is_ec(type)) return fail(Errc::invalid_argument, kWhere, "key type", "unknown");
  if (raw.size() != 65 || raw[0] != 0x04) {
    return fail(Errc::invalid_argument, kWhere, std::string(name(type)) + " public key",
                "must be an uncompressed point: 04 || X || Y, 65 bytes");
  }
  auto pkey = ec_from_params(type, raw, nullptr);
  if (!pkey) return std::unexpected(pkey.error());
  return PublicKey(type, std::make_shared<const Impl>(*pkey));
}

Result<std::string> PublicKey::to_pem() const {
  Ptr<BIO> bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PUBKEY(bio.get(), impl_->pkey) != 1)
    return ossl::fail(Errc::internal, kWhere, "public key PEM");
  return bio_text(bio.get());
}

Result<Bytes> PublicKey::raw() const {
  if (is_ec(type_)) return ec_point(impl_->pkey);
  Bytes out(32);
  std::size_t len = out.size();
  if (EVP_PKEY_get_raw_public_key(impl_->pkey, out.data(), &len) != 1 || len != 32)
    return ossl::fail(Errc::internal, kWhere, "ed25519 public key");
  return out;
}

PrivateKey::PrivateKey(KeyType type, std::shared_ptr<const Impl> impl)
    : type_(type), impl_(std::move(impl)) {}

Result<PrivateKey> PrivateKey::generate(KeyType type) {
  ERR_clear_error();
  EVP_PKEY* pkey = nullptr;
  switch (type) {
    case KeyType::ecdsa_p256:
      pkey = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
      break;
    case KeyType::ed25519:
      pkey = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
      break;
    case KeyType::sm2:
      pkey = EVP_PKEY_Q_keygen(nullptr, nullptr, "SM2");
      break;
  }
  if (pkey == nullptr)
    return ossl::fail(Errc::internal, kWhere, "generate " + std::string(name(type)));
  return PrivateKey(type, std::make_shared<const Impl>(pkey));
}

Result<PrivateKey> PrivateKey::from_pem(std::string_view pem) {
  ERR_clear_error();
  Ptr<BIO> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return ossl::fail(Errc::internal, kWhere, "PEM");
  EVP_PKEY* raw = PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr);
  if (raw == nullptr) {
    return ossl::fail(Errc::invalid_argument, kWhere, "private key PEM",
                      "not an unencrypted PRIVATE KEY block");
  }
  auto impl = std::make_shared<const Impl>(raw);
  auto type = ossl::key_type(raw);
  if (!type) return std::unexpected(type.error());
  return PrivateKey(*type, std::move(impl));
}

Result<PrivateKey> PrivateKey::from_raw(KeyType type, ByteView raw) {
  ERR_clear_error();
  if (raw.size() != 32) {
    return fail(Errc::invalid_argument, kWhere, std::string(name(type)) + " private key",
                "must be 32 bytes");
  }
  if (type == KeyType::ed25519) {
    EVP_PKEY* pkey =
        EVP_PKEY_new_raw_private_key_ex(nullptr, "ED25519", nullptr, raw.data(), raw.size());
    if (pkey == nullptr) return ossl::fail(Errc::invalid_argument, kWhere, "ed25519 private key");
    return PrivateKey(type, std::make_shared<const Impl>(pkey));
  }
  if (!is_ec(type)) return fail(Errc::invalid_argument, kWhere, "key type", "unknown");
  // The public point d·G goes with the scalar: SM2 signing needs it for Z.
  Ptr<EC_GROUP> group(EC_GROUP_new_by_curve_name(group_nid(type)));
  Ptr<BIGNUM> d(BN_secure_new());
  Ptr<BIGNUM> limit(BN_new());
  if (!group || !d || !limit ||
      BN_bin2bn(raw.data(), static_cast<int>(raw.size()), d.get()) == nullptr ||
      BN_copy(limit.get(), EC_GROUP_get0_order(group.get())) == nullptr)
    return ossl::fail(Errc::internal, kWhere, "private key");
  // 1 <= d < n; SM2 signing divides by 1 + d, so there d < n - 1.
  if (type == KeyType::sm2 && BN_sub_word(limit.get(), 1) != 1)
    return ossl::fail(Errc::internal, kWhere, "private key");
  if (BN_is_zero(d.get()) || BN_cmp(d.get(), limit.get()) >= 0) {
    return fail(Errc::invalid_argument, kWhere, std::string(name(type)) + " private key",
                "out of range for the curve");
  }
  Ptr<EC_POINT> q(EC_POINT_new(group.get()));
  Bytes point(65);
  if (!q || EC_POINT_mul(group.get(), q.get(), d.get(), nullptr, nullptr, nullptr) != 1 ||
      EC_POINT_point2oct(group.get(), q.get(), POINT_CONVERSION_UNCOMPRESSED, point.data(),
                         point.size(), nullptr) != point.size())
    return ossl::fail(Errc::internal, kWhere, "public point");
  auto pkey = ec_from_params(type, point, d.get());
  if (!pkey) return std::unexpected(pkey.error());
  return PrivateKey(type, std::make_shared<const Impl>(*pkey));
}

Result<std::string> PrivateKey::to_pem() const {
  // A secure-memory BIO: its buffer is wiped when freed.
  Ptr<BIO> bio(BIO_new(BIO_s_secmem()));
  if (!bio ||
      PEM_write_bio_PrivateKey(bio.get(), impl_->pkey, nullptr, nullptr, 0, nullptr, nullptr) != 1)
    return ossl::fail(Errc::internal, kWhere, "private key PEM");
  return bio_text(bio.get());
}

Result<PublicKey> PrivateKey::public_key() const {
  if (is_ec(type_)) {
    auto point = ec_point(impl_->pkey);
    if (!point) return std::unexpected(point.error());
    return PublicKey::from_raw(type_, *point);
  }
  Bytes pub(32);
  std::size_t len = pub.size();
  if (EVP_PKEY_get_raw_public_key(impl_->pkey, pub.data(), &len) != 1 || len != 32)
    return ossl::fail(Errc::internal, kWhere, "ed25519 public key");
  return PublicKey::from_raw(type_, pub);
}

}  // namespace portier::crypto
