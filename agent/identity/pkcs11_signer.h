// The device key in a PKCS#11 token (issue 10, item 1; REQ-16): generated
// inside the token (sensitive, not extractable, a token object), found again
// by its label at the next start, used to sign without ever leaving it, and
// destroyed there when a rotation retires it. The module (e.g. SoftHSM2's
// /usr/lib/softhsm/libsofthsm2.so) is loaded with dlopen and initialised
// once per process however many signers use it; the PIN comes from a file
// only portierd may read (0600), never from the config text.
//
// Algorithms: ECDSA P-256 (CKM_ECDSA over a SHA-256 digest computed here;
// the token's r||s is returned as DER, like crypto::sign) and Ed25519
// (CKM_EDDSA, pure; SoftHSM2 2.6 has it). SM2 is refused: SoftHSM2 has no
// SM2, so SM2 keys stay in the file backend.
//
// Thread-safe: calls on one signer are serialised by its mutex (one
// session per signer; PKCS#11 sessions must not be used by two threads at
// once). A session lost (token reset, sessions closed by another user of
// the module, logged out) is opened again once, with the PIN read again
// from its file, and the signature retried.
#pragma once

#include <memory>
#include <string>

#include "common/crypto/signer.h"
#include "common/result.h"

namespace portier::identity {

struct Pkcs11Options {
  std::string module_path;  // the PKCS#11 module (.so)
  std::string token_label;  // CKA_LABEL of the token (its CK_TOKEN_INFO label)
  std::string pin_file;     // the user PIN: a file, 0600, owned by portierd's user
  std::string key_label;    // CKA_LABEL of the key pair
  crypto::KeyType type = crypto::KeyType::ecdsa_p256;
};

class Pkcs11Module;  // the loaded, initialised module (shared by signers)

class Pkcs11Signer final : public crypto::Signer {
 public:
  // Opens the token and the key pair labelled options.key_label: found, or
  // (when there is none) generated in the token. Errors name what failed:
  // the module path, the token label, a wrong PIN, a key of another type.
  static Result<std::unique_ptr<Pkcs11Signer>> open_or_create(const Pkcs11Options& options);
  // The same, but a missing key is not_found (never generated).
  static Result<std::unique_ptr<Pkcs11Signer>> open_existing(const Pkcs11Options& options);

  ~Pkcs11Signer() override;
  Pkcs11Signer(const Pkcs11Signer&) = delete;
  Pkcs11Signer& operator=(const Pkcs11Signer&) = delete;

  crypto::KeyType type() const override { return options_.type; }
  const crypto::PublicKey& public_key() const override { return public_key_; }
  Result<crypto::Bytes> sign(crypto::ByteView message) const override;
  // One session, one signature at a time (its mutex): several threads
  // would only queue on it.
  bool concurrent() const override { return false; }

  const Pkcs11Options& options() const { return options_; }
  // Gives the key pair another CKA_LABEL (a rotation's pending key becoming
  // the current one).
  Result<void> relabel(const std::string& key_label);
  // Destroys the key pair in the token (C_DestroyObject on both halves).
  // Afterwards sign() fails (failed_precondition).
  Result<void> destroy();

  struct State;  // session and object handles (pkcs11_signer.cc)

 private:
  Pkcs11Signer(Pkcs11Options options, crypto::PublicKey pub, std::unique_ptr<State> state);
  static Result<std::unique_ptr<Pkcs11Signer>> open(const Pkcs11Options& options, bool create);
  // A new session and login (the PIN file read again) and the same key
  // found again by its label; refused when the label now names another key.
  Result<void> reconnect_locked() const;

  Pkcs11Options options_;
  crypto::PublicKey public_key_;
  std::unique_ptr<State> state_;
};

}  // namespace portier::identity
