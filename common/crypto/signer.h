// Something that signs with a key it may not show: a private key in memory
// (from a file) or a key inside a PKCS#11 token. The envelope sealer, audit
// checkpoints and command results sign through this.
#pragma once

#include "common/crypto/bytes.h"
#include "common/crypto/keys.h"
#include "common/crypto/sign.h"
#include "common/result.h"

namespace portier::crypto {

class Signer {
 public:
  virtual ~Signer() = default;
  virtual KeyType type() const = 0;
  virtual const PublicKey& public_key() const = 0;
  // As crypto::sign() gives it: DER for ECDSA and SM2, 64 bytes for Ed25519.
  virtual Result<Bytes> sign(ByteView message) const = 0;
  // Whether sign() gains from being called by several threads at once: a
  // key in memory does (every call has its own OpenSSL context over the
  // shared, unchanged EVP_PKEY); a signer that serialises its calls (one
  // PKCS#11 session) does not, and callers then sign on one thread. Either
  // way sign() is safe to call from any thread.
  virtual bool concurrent() const { return false; }
};

// A key in memory.
class KeySigner final : public Signer {
 public:
  KeySigner(PrivateKey key, PublicKey pub) : key_(std::move(key)), pub_(std::move(pub)) {}
  static Result<KeySigner> from(PrivateKey key) {
    auto pub = key.public_key();
    if (!pub) return std::unexpected(pub.error());
    return KeySigner(std::move(key), std::move(*pub));
  }
  KeyType type() const override { return key_.type(); }
  const PublicKey& public_key() const override { return pub_; }
  Result<Bytes> sign(ByteView message) const override { return crypto::sign(key_, message); }
  bool concurrent() const override { return true; }
  const PrivateKey& key() const { return key_; }

 private:
  PrivateKey key_;
  PublicKey pub_;
};

}  // namespace portier::crypto
