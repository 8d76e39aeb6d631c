// Asymmetric keys as opaque handles: generated, or imported from PEM or raw
// bytes, exported to PEM or raw bytes. Copies share one immutable key; a key
// may be used from several threads at once.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "common/crypto/bytes.h"
#include "common/result.h"

namespace portier::crypto {

// ecdsa_p256: NIST P-256 (prime256v1) with ECDSA and SHA-256.
// ed25519: RFC 8032 (pure). sm2: the SM2 curve with SM2 signatures and SM3
// (GB/T 32918).
enum class KeyType { ecdsa_p256, ed25519, sm2 };

// "ecdsa-p256", "ed25519", "sm2".
std::string_view name(KeyType type);

class PublicKey {
 public:
  // A "PUBLIC KEY" PEM block (SubjectPublicKeyInfo). The type follows from
  // the key: an EC key on any curve but P-256 or SM2 is refused.
  static Result<PublicKey> from_pem(std::string_view pem);
  // P-256 and SM2: the uncompressed point 04 || X || Y (65 bytes), checked to
  // lie on the curve. Ed25519: the 32-byte public key.
  static Result<PublicKey> from_raw(KeyType type, ByteView raw);

  KeyType type() const { return type_; }
  Result<std::string> to_pem() const;
  Result<Bytes> raw() const;  // as from_raw takes it

  struct Impl;  // the platform's key (platform/openssl/)
  PublicKey(KeyType type, std::shared_ptr<const Impl> impl);
  const Impl& impl() const { return *impl_; }

 private:
  KeyType type_;
  std::shared_ptr<const Impl> impl_;
};

class PrivateKey {
 public:
  static Result<PrivateKey> generate(KeyType type);
  // An unencrypted "PRIVATE KEY" (PKCS#8) or "EC PRIVATE KEY" PEM block.
  static Result<PrivateKey> from_pem(std::string_view pem);
  // P-256 and SM2: the 32-byte big-endian private scalar (1 .. n-1).
  // Ed25519: the 32-byte seed (RFC 8032's private key).
  static Result<PrivateKey> from_raw(KeyType type, ByteView raw);

  KeyType type() const { return type_; }
  // PKCS#8 PEM, unencrypted: a secret; cleanse() it once written.
  Result<std::string> to_pem() const;
  Result<PublicKey> public_key() const;

  struct Impl;
  PrivateKey(KeyType type, std::shared_ptr<const Impl> impl);
  const Impl& impl() const { return *impl_; }

 private:
  KeyType type_;
  std::shared_ptr<const Impl> impl_;
};

}  // namespace portier::crypto
