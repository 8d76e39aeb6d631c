// The terminal's side of enrolment and renewal (issue 10, item 1; REQ-33,
// REQ-36), over the fleet's gRPC Enrolment service (proto/portier/v1/
// fleet.proto).
//
// Enroll: server-authenticated TLS (the fleet's CA from the config is the
// only trust anchor; no client certificate yet), the CSR of the device key
// with Subject{CN = terminal id, serialNumber = hardware serial}, and the
// proof of enrolment_proof.h from the per-device secret (a 0600 file). The
// answer is checked (issued_certificate.h) and installed through
// DeviceIdentity: nothing is installed unless every check passes.
//
// Renew: mutual TLS with the installed certificate and the current key as
// the client's, a new CSR for the same key. gRPC takes the client key as
// PEM, so renewal over TLS needs the key in a file; a key in a PKCS#11 token
// is renewed by Enroll again (the same key, its CSR signed in the token,
// the enrolment secret's proof): the fleet issues a new certificate for
// the key it holds once the one it issued is past a tenth of its lifetime,
// never one for another key. Such a key rotates by the RotateDeviceKey
// command's CSR and InstallCertificate (management_feature.h).
//
// Rotate: a pending key and its CSR (DeviceIdentity::begin_rotation), sent
// with Renew over mutual TLS with the current certificate and key: the TLS
// handshake proves the old key, the CSR's self-signature the new one. The
// fleet issues for the new key only when its operator asked for the
// rotation (enrolment_service.h says why); the answer is checked and
// installed like any other, which makes the pending key current and
// destroys the old one. The request names the cutover: the first envelope
// sequence the new key signs. The caller must sign nothing with the old key
// from there on (the fleet refuses it as a retired key's): the management
// feature holds its uplink at a committed run for the call.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "agent/identity/device_identity.h"
#include "common/result.h"

namespace portier::identity {

struct EnrolmentOptions {
  std::string server;         // host:port of the fleet's Enrolment service
  std::string fleet_ca_file;  // PEM: the anchors of the fleet's TLS server certificate
  std::string server_name;    // the TLS name to check, when not the host of `server`
  std::string secret_file;    // the enrolment secret (0600)
  std::chrono::milliseconds timeout{30000};
  unsigned renew_at_percent = 0;  // of the certificate's lifetime; 0: two thirds
};

// What became of a rotation asked of the fleet (rotate_once).
enum class RotationOutcome {
  rotated,       // certified and installed: the pending key is current
  not_recorded,  // the fleet refused it, marked "nothing recorded": the old key goes on
  unknown,       // no answer, or one not taken here: the fleet may have recorded it
};
struct RotationAttempt {
  RotationOutcome outcome = RotationOutcome::unknown;
  std::optional<Error> error;  // rotated: a step after the installation failed
};

class EnrolmentClient {
 public:
  explicit EnrolmentClient(EnrolmentOptions options) : options_(std::move(options)) {}
  const EnrolmentOptions& options() const { return options_; }

  // Enrols the identity's current key and installs the certificate.
  Result<void> enroll(DeviceIdentity& identity) const;
  // Renews the installed certificate for the current key (a file key over
  // mutual TLS, a token's key by Enroll).
  Result<void> renew(DeviceIdentity& identity) const;
  // Renews when `now` is past renewal_due_at() of the installed
  // certificate: true when it renewed, false when not due yet. The
  // management feature calls it at intervals (and at start).
  Result<bool> renew_if_due(DeviceIdentity& identity, crypto::TimePoint now) const;
  // When the installed certificate is due for renewal (nullopt: none).
  std::optional<crypto::TimePoint> renewal_due(const DeviceIdentity& identity) const;
  // Rotates the (file) device key: a new key, certified by the fleet over
  // the old key's mutual TLS for envelopes from sequence `cutover` on,
  // installed; the old key destroyed.
  Result<void> rotate(DeviceIdentity& identity, std::uint64_t cutover) const;
  // One Renew for the pending key (made now if there is none) and
  // `cutover`, classified: not_recorded only for a refusal the fleet marks
  // as "nothing recorded" (rotation_answer.h: trailing metadata it sends
  // only when its registry does not hold the new key); anything else (a
  // refusal code without the mark: the fleet's CA anchor check after a
  // rollover, a registry error; the fleet away, a deadline, an answer not
  // installed here, an error of this side) is unknown: ask again with the same
  // pending key and cutover, and the fleet answers with what it recorded.
  RotationAttempt rotate_once(DeviceIdentity& identity, std::uint64_t cutover) const;
  // Enroll for the pending key of a rotation (its CSR, the enrolment
  // secret's proof) and installs the answer, which makes that key current.
  // For a rotation whose answer was lost while the old key's certificate
  // expired (Renew needs it over mutual TLS): a fleet that recorded the
  // rotation knows the pending key as the device's and answers with its
  // certificate (enrolment_service.cc, "the same device asking again");
  // one that did not refuses (another key is enrolled), recording nothing.
  Result<void> enroll_pending(DeviceIdentity& identity) const;

 private:
  // Enroll (the current key, the secret's proof); `rpc` names it in errors.
  // `csr_der` (when given): the CSR to send, else the current key's.
  Result<void> enroll_with(DeviceIdentity& identity, const std::string& rpc,
                           const crypto::Bytes* csr_der = nullptr) const;
  // Renew over mutual TLS with the installed certificate, for `csr_der`.
  // `refused` (when given) is set when the fleet answered with a refusal.
  Result<void> renew_with(DeviceIdentity& identity, const crypto::Bytes& csr_der,
                          const std::string& rpc, std::uint64_t cutover = 0,
                          bool* refused = nullptr) const;
  Result<void> rotate_call(DeviceIdentity& identity, std::uint64_t cutover, bool* refused) const;
  EnrolmentOptions options_;
};

}  // namespace portier::identity
