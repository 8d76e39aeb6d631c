// The fleet's side of enrolment (issue 10, item 1; REQ-33): the gRPC
// Enrolment service of proto/portier/v1/fleet.proto.
//
// Enroll (no client certificate): the CSR must parse and carry its key's
// self-signature; its subject must be the request's terminal id and serial;
// the serial must be expected; the proof must be the HMAC of
// agent/identity/enrolment_proof.h under that serial's secret; and the
// serial must not be enrolled with another key (one device, one key: such
// a request is refused and recorded). The same key and terminal again get
// the certificate already issued. Every refusal is recorded with its reason
// and returned to the caller in the status message.
//
// Renew: the TLS client certificate (from the call's auth context) must be
// a device certificate of this CA, for the terminal, serial and key the
// registry holds; the CSR must be for that same key and subject, or, when
// the operator asked for a key rotation (EnrolmentRegistry::allow_rotation,
// done by `portier-fleet send TERMINAL rotate-key`), for a new key: the
// terminal's own rotation, the old key proven by the TLS handshake and the
// new one by the CSR. Once only: the registry then holds the new key, and
// the old certificate no longer renews anything. The key changes by a
// compare-and-swap in the registry (EnrolmentRegistry::replace_key), before
// any certificate is returned: of two Renews at once for one terminal (a
// thief of the old key racing the terminal), one wins and the other is
// refused and recorded. A rotation names its cutover (the first envelope
// sequence the new key signs; the terminal signs nothing with the old key
// from there on), kept with the next key in the fleet's store. A rotation
// whose answer was lost is asked again with the old certificate and the
// same new key: it gets the certificate issued then, nothing changed (the
// registry keeps the key the rotation replaced for this only). Until the
// fleet's store took the new key the registry row is marked "rotation
// pending" and such a retry is answered UNAVAILABLE (ask again), never with
// the certificate: the store may still refuse the rotation, and a terminal
// that installed it would have destroyed the only key the fleet accepts
// (review finding REQ-33/1). A mark left by a fleet that stopped between
// the two writes (older than kPendingStale, no change in flight here) is
// finished by the retry: the store is told again, then the certificate.
//
// Why a rotation must be asked for: whoever stole the old key (and its
// public certificate) could otherwise call Renew with a key of its own at
// any time, and the fleet would move the terminal's identity to the thief.
// Gated, the thief can only race the real terminal inside the window the
// operator opened; whoever comes second is refused and recorded, so the
// real terminal's failed rotation (its command result) shows the theft.
// From the cutover on the old key signs nothing the fleet accepts: the
// fleet verifies every envelope from there with the new key only
// (fleet_store.h's key history), so what a thief signs with the stolen key
// at or after the cutover is refused as "retired key", even before the
// terminal's first envelope with the new key arrives; a thief that got
// envelopes stored past the cutover before the Renew makes the rotation
// fail (the store refuses the next key), which shows the theft.
//
// What a thief of the key can still do: before the rotation, sign
// envelopes as the terminal (they fork its chain: the fleet records
// "duplicate conflicting" or "inserted" when the real ones arrive) and renew
// the certificate of that same key. After it, the old certificate renews
// nothing (the registry holds the new key), but it stays valid for TLS
// until it expires: the thief can still connect to the broker or the gRPC
// endpoint as the terminal, read the commands sent to it (signed, not
// secret) and send junk the fleet refuses. There is no revocation list yet;
// short device lifetimes (serve --device-lifetime) bound that window.
//
// rotate(): the fleet's half of a RotateDeviceKey command: the terminal's
// CSR for its new key, returned in the command's signed result, gets a
// certificate (sent back with InstallCertificate), and the registry binds
// the serial to the new key.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <set>

#include "portier/v1/fleet.grpc.pb.h"
#include "tools/fleet/enrolment/enrolment_registry.h"
#include "tools/fleet/enrolment/fleet_ca.h"

namespace portier::fleet {

// A certificate the service issued, for the fleet's other stores (the
// receiver must know a terminal's key before its envelopes arrive).
struct IssuedKey {
  enum class Kind { enrolled, renewed, rotated };
  Kind kind = Kind::enrolled;
  std::string terminal_id;
  std::string serial;
  std::string public_key_pem;    // the certified key
  std::string previous_key_pem;  // rotated: the key it replaces
  std::uint64_t cutover = 0;     // rotated: the first sequence the new key signs
};

class EnrolmentService final : public v1::Enrolment::Service {
 public:
  EnrolmentService(const FleetCa& ca, EnrolmentRegistry& registry)
      : ca_(ca), registry_(registry), now_([] { return std::chrono::system_clock::now(); }) {}

  grpc::Status Enroll(grpc::ServerContext* context, const v1::EnrollRequest* request,
                      v1::EnrollResponse* response) override;
  grpc::Status Renew(grpc::ServerContext* context, const v1::RenewCertificateRequest* request,
                     v1::EnrollResponse* response) override;

  // The enrolment checks without gRPC (Enroll calls this).
  Result<v1::EnrollResponse> enroll(const v1::EnrollRequest& request);
  // Renew with the client certificate (PEM) the TLS layer verified. On a
  // refusal, `*not_recorded` (when given) says whether it is definitive:
  // the registry, read after the refusal, does not hold the CSR's key, so
  // nothing of this rotation is recorded (Renew then sends the mark of
  // agent/identity/rotation_answer.h). Not for a refusal that judges
  // nothing of the rotation (the CA anchor check, a CSR naming no key, an
  // error of the registry or the store).
  Result<v1::EnrollResponse> renew(const std::string& client_cert_pem,
                                   const v1::RenewCertificateRequest& request,
                                   bool* not_recorded = nullptr);
  // A certificate for the enrolled terminal's new key (key rotation), which
  // signs from sequence `cutover` on; 0: none declared (the operator's
  // certificate for a token key's rotate-key CSR), the new key takes over
  // at its first envelope that continues the chain.
  Result<v1::EnrollResponse> rotate(const std::string& serial, crypto::ByteView csr_der,
                                    std::uint64_t cutover);

  void set_clock(std::function<crypto::TimePoint()> now) { now_ = std::move(now); }
  // Told of every key before its certificate is returned (and before the
  // registry moves to a rotated key); an error refuses the request (the
  // terminal tries again later).
  void on_issued(std::function<Result<void>(const IssuedKey&)> fn) { on_issued_ = std::move(fn); }

 private:
  // A rotation marked pending for longer than this, with no change in
  // flight in this process, was left by a fleet that stopped mid-way.
  static constexpr std::chrono::seconds kPendingStale{120};

  Result<v1::EnrollResponse> respond(const crypto::Bytes& cert_der) const;
  // Renew past the CA anchor check of the client certificate `cert`.
  Result<v1::EnrollResponse> renew_verified(const crypto::Certificate& cert, const std::string& tid,
                                            const std::string& serial,
                                            const v1::RenewCertificateRequest& req);
  // The registry, read now, holds another key than `csr_der`'s for
  // `serial` (false when either cannot be read).
  bool nothing_recorded(const std::string& serial, const std::string& csr_der);
  std::int64_t unix_now() const;
  // A retry of the rotation `record` holds (its answer was lost): its
  // certificate once the store has the new key, UNAVAILABLE before.
  Result<v1::EnrollResponse> answer_retry(const EnrolmentRecord& record, const std::string& tid,
                                          const crypto::Bytes& old_cert_der, std::uint64_t cutover);
  // The store did not take the rotation from `old_pem` to `new_pem`: the
  // registry goes back to `old_pem` and `old_cert_der`; the error to return.
  std::unexpected<Error> undo_rotation(const std::string& serial, const std::string& tid,
                                       const std::string& old_pem, const std::string& new_pem,
                                       const crypto::Bytes& old_cert_der, const Error& told);
  // A certificate for `new_pem` (a renewal when it is `old_pem`), the
  // registry's key swapped from `old_pem` (compare-and-swap), then told.
  Result<v1::EnrollResponse> change_key(const EnrolmentRecord& record, const std::string& tid,
                                        const std::string& old_pem, const std::string& new_pem,
                                        const crypto::CertificateRequest& csr,
                                        std::uint64_t cutover);
  std::unexpected<Error> refuse(const std::string& serial, const std::string& terminal_id,
                                Errc code, const std::string& reason);

  const FleetCa& ca_;
  EnrolmentRegistry& registry_;
  std::function<crypto::TimePoint()> now_;
  std::function<Result<void>(const IssuedKey&)> on_issued_;
  std::mutex mu_;
  std::multiset<std::string> rotating_;  // serials whose rotation is being told here
  Result<void> tell(const IssuedKey& k) const {
    return on_issued_ ? on_issued_(k) : Result<void>{};
  }
};

}  // namespace portier::fleet
