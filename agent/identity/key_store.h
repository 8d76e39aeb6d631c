// Where the device key lives, as rotation sees it (issue 10, item 1): the
// current key and at most one pending key (made by a rotation, kept beside
// the current one until a certificate for it is installed). promote() makes
// the pending key current and destroys the old one. Two backends: files
// (<key>, <key>.pending, 0600) and a PKCS#11 token (labels <label>,
// <label>.pending and, between a promotion and the old key's destruction,
// <label>.retired).
#pragma once

#include <memory>
#include <string>

#include "agent/identity/pkcs11_signer.h"
#include "common/crypto/signer.h"
#include "common/result.h"

namespace portier::identity {

class KeyStore {
 public:
  virtual ~KeyStore() = default;
  // The current key: loaded, or made at the first start. A promotion
  // interrupted after the old key was destroyed is finished here.
  virtual Result<std::shared_ptr<crypto::Signer>> current() = 0;
  // The pending key; nullptr when there is none and `create` is false.
  virtual Result<std::shared_ptr<crypto::Signer>> pending(bool create) = 0;
  // The pending key becomes the current one; the old key is destroyed
  // (its file overwritten and unlinked, or its token objects destroyed), or
  // kept aside until destroy_retired() where the store says so.
  virtual Result<void> promote() = 0;
  // Destroys the old key a promotion kept aside (none: nothing to do).
  virtual Result<void> destroy_retired() { return {}; }
  // Destroys the pending key (a rotation the fleet refused); none: nothing
  // to do.
  virtual Result<void> discard_pending() {
    return fail_msg(Errc::failed_precondition, "this key store cannot discard a pending key");
  }
};

class FileKeyStore final : public KeyStore {
 public:
  FileKeyStore(std::string path, crypto::KeyType type) : path_(std::move(path)), type_(type) {}
  Result<std::shared_ptr<crypto::Signer>> current() override;
  Result<std::shared_ptr<crypto::Signer>> pending(bool create) override;
  Result<void> promote() override;
  // <key>.pending overwritten, unlinked, the directory synced.
  Result<void> discard_pending() override;

 private:
  std::string path_;
  crypto::KeyType type_;
};

// keep_retired: promote() relabels the old key <label>.retired instead of
// destroying it, and destroy_retired() destroys it. A key in memory (a
// file key) signs on after its file is gone, but a token's key signs only
// while its objects exist: the management feature's running uplink holds
// the old key until it has started again with the new one (the command
// result and the last checkpoint of the old session are signed by it).
class Pkcs11KeyStore final : public KeyStore {
 public:
  explicit Pkcs11KeyStore(Pkcs11Options options, bool keep_retired = false)
      : options_(std::move(options)), keep_retired_(keep_retired) {}
  Result<std::shared_ptr<crypto::Signer>> current() override;
  Result<std::shared_ptr<crypto::Signer>> pending(bool create) override;
  Result<void> promote() override;
  Result<void> destroy_retired() override;

 private:
  Pkcs11Options with_label(const std::string& label) const;
  Pkcs11Options options_;
  bool keep_retired_;
};

}  // namespace portier::identity
