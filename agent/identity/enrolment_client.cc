#include "agent/identity/enrolment_client.h"

#include <grpcpp/grpcpp.h>

#include "agent/identity/enrolment_proof.h"
#include "agent/identity/private_file.h"
#include "agent/identity/rotation_answer.h"
#include "common/file_read.h"
#include "portier/v1/fleet.grpc.pb.h"

namespace portier::identity {
namespace {

Errc from_grpc(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::INVALID_ARGUMENT:
      return Errc::invalid_argument;
    case grpc::StatusCode::NOT_FOUND:
      return Errc::not_found;
    case grpc::StatusCode::ALREADY_EXISTS:
      return Errc::already_exists;
    case grpc::StatusCode::PERMISSION_DENIED:
    case grpc::StatusCode::UNAUTHENTICATED:
      return Errc::permission_denied;
    case grpc::StatusCode::FAILED_PRECONDITION:
      return Errc::failed_precondition;
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return Errc::resource_exhausted;
    default:
      return Errc::unavailable;
  }
}

Result<std::shared_ptr<grpc::Channel>> channel(const EnrolmentOptions& o,
                                               const std::string& client_chain_pem,
                                               const std::string& client_key_pem) {
  auto ca = read_small_file(o.fleet_ca_file, {1u << 20, true});
  if (!ca) return std::unexpected(ca.error().with_context("fleet CA"));
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = *ca;
  ssl.pem_cert_chain = client_chain_pem;
  ssl.pem_private_key = client_key_pem;
  grpc::ChannelArguments args;
  if (!o.server_name.empty()) args.SetSslTargetNameOverride(o.server_name);
  return grpc::CreateCustomChannel(o.server, grpc::SslCredentials(ssl), args);
}

Result<void> answer(DeviceIdentity& identity, const grpc::Status& status,
                    const v1::EnrollResponse& response, const std::string& rpc,
                    const std::string& server) {
  if (!status.ok()) {
    return fail(from_grpc(status.error_code()), server, rpc + " refused", status.error_message());
  }
  std::vector<crypto::Bytes> chain;
  for (const auto& c : response.chain()) chain.emplace_back(c.begin(), c.end());
  const crypto::Bytes der(response.certificate().begin(), response.certificate().end());
  return with_context(identity.install_certificate(der, chain), rpc + " answer from " + server);
}

}  // namespace

Result<void> EnrolmentClient::enroll(DeviceIdentity& identity) const {
  return enroll_with(identity, "Enroll");
}

Result<void> EnrolmentClient::enroll_pending(DeviceIdentity& identity) const {
  if (!identity.pending_key()) {
    return fail(Errc::failed_precondition, "Enroll (key rotation)", "no pending key",
                "nothing to ask for");
  }
  auto pem = identity.begin_rotation();  // the pending key's, as it is
  if (!pem) return std::unexpected(pem.error());
  auto csr = crypto::CertificateRequest::from_pem(*pem);
  if (!csr) return std::unexpected(csr.error().with_context("key rotation"));
  auto der = csr->der();
  if (!der) return std::unexpected(der.error());
  return enroll_with(identity, "Enroll (key rotation, the old certificate expired)", &*der);
}

Result<void> EnrolmentClient::enroll_with(DeviceIdentity& identity, const std::string& rpc,
                                          const crypto::Bytes* csr_der) const {
  auto secret = read_private_file(options_.secret_file, "enrolment secret");
  if (!secret) return std::unexpected(secret.error());
  Result<crypto::Bytes> der = csr_der ? Result<crypto::Bytes>(*csr_der) : [&] {
    auto csr = identity.current_csr();
    return csr ? csr->der() : Result<crypto::Bytes>(std::unexpected(csr.error()));
  }();
  if (!der) return std::unexpected(der.error());
  const auto& info = identity.info();
  auto proof = enrolment_proof(crypto::byte_view(*secret), info.terminal_id, info.serial, *der);
  crypto::cleanse(*secret);
  if (!proof) return std::unexpected(proof.error());
  auto ch = channel(options_, "", "");
  if (!ch) return std::unexpected(ch.error());

  v1::EnrollRequest request;
  request.set_terminal_id(info.terminal_id);
  request.set_serial(info.serial);
  request.set_csr(der->data(), der->size());
  request.set_proof(proof->data(), proof->size());
  v1::EnrollResponse response;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + options_.timeout);
  auto stub = v1::Enrolment::NewStub(*ch);
  const grpc::Status status = stub->Enroll(&ctx, request, &response);
  return answer(identity, status, response, rpc, options_.server);
}

Result<void> EnrolmentClient::renew_with(DeviceIdentity& identity, const crypto::Bytes& csr_der,
                                         const std::string& rpc, std::uint64_t cutover,
                                         bool* refused) const {
  auto installed = identity.certificate();
  if (!installed) {
    return fail(Errc::failed_precondition, rpc, "no certificate", "enrol first");
  }
  auto signer = identity.signer();
  auto* file_key = dynamic_cast<const crypto::KeySigner*>(signer.get());
  if (file_key == nullptr) {
    return fail(Errc::failed_precondition, rpc, "the device key is in a PKCS#11 token",
                "Renew over mutual TLS needs the key in a file (gRPC takes it as PEM); a token's "
                "key rotates by the RotateDeviceKey command's CSR and InstallCertificate");
  }
  std::string chain_pem;
  auto leaf = installed->cert.to_pem();
  if (!leaf) return std::unexpected(leaf.error());
  chain_pem = *leaf;
  for (const auto& c : installed->chain) {
    auto p = c.to_pem();
    if (!p) return std::unexpected(p.error());
    chain_pem += *p;
  }
  auto key_pem = file_key->key().to_pem();
  if (!key_pem) return std::unexpected(key_pem.error());
  auto ch = channel(options_, chain_pem, *key_pem);
  crypto::cleanse(*key_pem);
  if (!ch) return std::unexpected(ch.error());

  v1::RenewCertificateRequest request;
  request.set_csr(csr_der.data(), csr_der.size());
  request.set_cutover_sequence(cutover);
  v1::EnrollResponse response;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + options_.timeout);
  auto stub = v1::Enrolment::NewStub(*ch);
  const grpc::Status status = stub->Renew(&ctx, request, &response);
  if (refused != nullptr) {
    // Only the fleet's explicit mark says it recorded nothing (it sends it
    // where it read its registry and the new key is not there). A refusal
    // code alone may be a failure of the fleet's side after it recorded the
    // rotation (a CA rollover, a registry error): unknown.
    *refused = false;
    if (!status.ok()) {
      const auto& trailing = ctx.GetServerTrailingMetadata();
      auto [from, to] = trailing.equal_range(kRotationAnswerKey);
      for (auto it = from; it != to; ++it) {
        if (std::string_view(it->second.data(), it->second.size()) == kNotRecorded) {
          *refused = true;
        }
      }
    }
  }
  return answer(identity, status, response, rpc, options_.server);
}

Result<void> EnrolmentClient::renew(DeviceIdentity& identity) const {
  if (dynamic_cast<const crypto::KeySigner*>(identity.signer().get()) == nullptr) {
    // A key in a PKCS#11 token cannot be gRPC's TLS client key: the same
    // key enrols again, proven by its CSR and the enrolment secret; the
    // fleet issues a new certificate for it once the one it holds is past
    // a tenth of its lifetime.
    auto before = identity.certificate();
    if (!before) return fail(Errc::failed_precondition, "Renew", "no certificate", "enrol first");
    auto before_der = before->cert.der();
    if (!before_der) return std::unexpected(before_der.error());
    PORTIER_TRY(enroll_with(identity, "Renew (Enroll, the key in a PKCS#11 token)"));
    auto after = identity.certificate();
    auto after_der = after ? after->cert.der() : Result<crypto::Bytes>(crypto::Bytes{});
    if (after_der && *after_der == *before_der) {
      return fail(Errc::unavailable, options_.server, "Renew (Enroll)",
                  "the fleet answered with the certificate in use: not renewed yet");
    }
    return {};
  }
  auto csr = identity.current_csr();
  if (!csr) return std::unexpected(csr.error());
  auto der = csr->der();
  if (!der) return std::unexpected(der.error());
  return renew_with(identity, *der, "Renew");
}

Result<void> EnrolmentClient::rotate(DeviceIdentity& identity, std::uint64_t cutover) const {
  auto a = rotate_once(identity, cutover);
  if (a.error) return std::unexpected(std::move(*a.error));
  return {};
}

RotationAttempt EnrolmentClient::rotate_once(DeviceIdentity& identity,
                                             std::uint64_t cutover) const {
  auto unknown = [](Error e) { return RotationAttempt{RotationOutcome::unknown, std::move(e)}; };
  auto before = identity.signer();
  bool refused = false;
  auto r = rotate_call(identity, cutover, &refused);
  if (identity.signer() != before) {
    // The pending key is current: whatever failed after that is reported.
    return {RotationOutcome::rotated, r ? std::nullopt : std::optional<Error>(r.error())};
  }
  if (!r && refused) return {RotationOutcome::not_recorded, r.error()};
  if (!r) return unknown(r.error());
  return unknown(Error{Errc::internal, "key rotation", "answer",
                       "the certificate was installed, the pending key not made current"});
}

Result<void> EnrolmentClient::rotate_call(DeviceIdentity& identity, std::uint64_t cutover,
                                          bool* refused) const {
  if (!identity.certificate()) {
    return fail(Errc::failed_precondition, "key rotation", "no certificate", "enrol first");
  }
  if (cutover == 0) {
    return fail(Errc::invalid_argument, "key rotation", "cutover",
                "the first sequence the new key signs must be named (1 or more)");
  }
  auto pem = identity.begin_rotation();
  if (!pem) return std::unexpected(pem.error());
  auto csr = crypto::CertificateRequest::from_pem(*pem);
  if (!csr) return std::unexpected(csr.error().with_context("key rotation"));
  auto der = csr->der();
  if (!der) return std::unexpected(der.error());
  return renew_with(identity, *der, "Renew (key rotation)", cutover, refused);
}

std::optional<crypto::TimePoint> EnrolmentClient::renewal_due(
    const DeviceIdentity& identity) const {
  auto installed = identity.certificate();
  if (!installed) return std::nullopt;
  return options_.renew_at_percent == 0
             ? renewal_due_at(installed->cert)
             : renewal_due_at(installed->cert, options_.renew_at_percent);
}

Result<bool> EnrolmentClient::renew_if_due(DeviceIdentity& identity, crypto::TimePoint now) const {
  auto installed = identity.certificate();
  if (!installed) {
    return fail(Errc::failed_precondition, "Renew", "no certificate", "enrol first");
  }
  const auto due = options_.renew_at_percent == 0
                       ? renewal_due_at(installed->cert)
                       : renewal_due_at(installed->cert, options_.renew_at_percent);
  if (now < due) return false;
  PORTIER_TRY(renew(identity));
  return true;
}

}  // namespace portier::identity
