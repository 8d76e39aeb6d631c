// The terminal's device identity as the management feature uses it (issue
// 10, item 1): the terminal id and hardware serial, the current device key
// (file or PKCS#11 token), its installed certificate, and key rotation.
//
// Rotation (RotateDeviceKey, then InstallCertificate, both signed
// commands): begin_rotation() makes a pending key beside the current one
// and returns its CSR; the current key goes on signing. When a certificate
// for the pending key arrives, install_certificate() checks it (REQ-36:
// issued_certificate.h), writes it, and only then makes the pending key
// current and destroys the old one. A crash between the two is finished at
// the next open(): the installed certificate names the key that must be
// current. A certificate for the current key (a renewal) is installed as is.
//
// Thread-safe: the command handlers and the link may call at once.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "agent/identity/certificate_store.h"
#include "agent/identity/key_store.h"
#include "common/crypto/signer.h"
#include "common/crypto/x509.h"
#include "common/result.h"

namespace portier::identity {

struct IdentityInfo {
  std::string terminal_id;
  std::string serial;                         // hardware_serial()
  std::vector<crypto::Certificate> fleet_ca;  // the anchors device certificates chain to
};

class DeviceIdentity {
 public:
  // Opens (or makes) the current key and reads the installed certificate.
  static Result<std::unique_ptr<DeviceIdentity>> open(IdentityInfo info,
                                                      std::unique_ptr<KeyStore> keys,
                                                      CertificateStore certificates);

  const IdentityInfo& info() const { return info_; }
  // The current key. Replaced by a completed rotation: callers that keep it
  // (the uplink, the link's TLS) take it again when on_key_changed fires.
  std::shared_ptr<crypto::Signer> signer() const;
  // The installed certificate, nullopt before enrolment.
  std::optional<InstalledCertificate> certificate() const;
  // The CSR for the current key (enrolment and renewal), DER.
  Result<crypto::CertificateRequest> current_csr() const;
  // When a rotation installs a new key, after it is current.
  void on_key_changed(std::function<void()> callback);
  // When a rotation is about to make its key current: called with the new
  // key once its certificate passed the checks, before the certificate is
  // written and the old key destroyed (an error stops the rotation, nothing
  // installed), and again with the old key when the rotation fails after
  // that. The audit checkpoints hand over to the new key here, so that no
  // crash leaves a last checkpoint that only a destroyed key verifies.
  void before_key_change(std::function<Result<void>(std::shared_ptr<crypto::Signer>)> callback);
  // The pending key of an unfinished rotation (nullopt: none).
  std::optional<crypto::PublicKey> pending_key() const;

  // RotateDeviceKey: a pending key (made now, or the one an unfinished
  // rotation made) and its CSR, PEM.
  Result<std::string> begin_rotation();
  // InstallCertificate, and the enrolment and renewal answers: checked, then
  // written; a certificate for the pending key completes the rotation.
  Result<void> install_certificate(crypto::ByteView der, std::span<const crypto::Bytes> chain);
  Result<void> install_certificate(const crypto::Bytes& der,
                                   const std::vector<crypto::Bytes>& chain) {
    return install_certificate(crypto::ByteView(der), std::span<const crypto::Bytes>(chain));
  }

  // Gives up the unfinished rotation: its pending key is destroyed (the
  // fleet refused it; the current key goes on). None: nothing to do.
  Result<void> abandon_rotation();

  // Destroys the old key a rotation kept aside (a key store with
  // keep_retired): called once nothing signs with it any more.
  Result<void> destroy_retired_key();

  // Time source for the checks (tests).
  void set_clock(std::function<crypto::TimePoint()> now) { now_ = std::move(now); }

 private:
  DeviceIdentity(IdentityInfo info, std::unique_ptr<KeyStore> keys, CertificateStore certificates);
  Result<void> promote_locked();

  IdentityInfo info_;
  std::unique_ptr<KeyStore> keys_;
  CertificateStore certificates_;
  std::function<crypto::TimePoint()> now_;
  mutable std::mutex mu_;
  std::shared_ptr<crypto::Signer> current_;
  std::shared_ptr<crypto::Signer> pending_;
  std::optional<InstalledCertificate> installed_;
  std::function<void()> on_key_changed_;
  std::function<Result<void>(std::shared_ptr<crypto::Signer>)> before_key_change_;
};

}  // namespace portier::identity
