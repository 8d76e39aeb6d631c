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
// registry holds; the CSR must be for that same key and subject.
//
// rotate(): the fleet's half of a RotateDeviceKey command: the terminal's
// CSR for its new key, returned in the command's signed result, gets a
// certificate (sent back with InstallCertificate), and the registry binds
// the serial to the new key.
#pragma once

#include <functional>

#include "portier/v1/fleet.grpc.pb.h"
#include "tools/fleet/enrolment/enrolment_registry.h"
#include "tools/fleet/enrolment/fleet_ca.h"

namespace portier::fleet {

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
  // Renew with the client certificate (PEM) the TLS layer verified.
  Result<v1::EnrollResponse> renew(const std::string& client_cert_pem,
                                   const v1::RenewCertificateRequest& request);
  // A certificate for the enrolled terminal's new key (key rotation).
  Result<v1::EnrollResponse> rotate(const std::string& serial, crypto::ByteView csr_der);

  void set_clock(std::function<crypto::TimePoint()> now) { now_ = std::move(now); }

 private:
  Result<v1::EnrollResponse> respond(const crypto::Bytes& cert_der) const;
  std::unexpected<Error> refuse(const std::string& serial, const std::string& terminal_id,
                                Errc code, const std::string& reason);

  const FleetCa& ca_;
  EnrolmentRegistry& registry_;
  std::function<crypto::TimePoint()> now_;
};

}  // namespace portier::fleet
