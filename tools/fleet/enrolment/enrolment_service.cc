#include "tools/fleet/enrolment/enrolment_service.h"

#include "agent/identity/enrolment_proof.h"
#include "agent/identity/issued_certificate.h"
#include "agent/identity/rotation_answer.h"
#include "common/log.h"

namespace portier::fleet {
namespace {

constexpr std::size_t kMaxCsr = 64 * 1024;
constexpr std::size_t kMaxName = 64;

grpc::Status to_status(const Error& e) {
  return grpc::Status(static_cast<grpc::StatusCode>(grpc_status_code(e.code)), e.message());
}

// A caller's string as it may enter a log line or the registry: printable
// ASCII, anything else '?', at most 64 bytes.
std::string shown(const std::string& s) {
  std::string out = s.substr(0, kMaxName);
  for (char& c : out) {
    if (c < 0x20 || c > 0x7e) c = '?';
  }
  return out;
}

bool printable(const std::string& s) { return shown(s) == s; }

// A CSR from untrusted bytes: parsed, self-signed, for `terminal_id` and
// `serial`. The error's why is the reason the caller gets.
Result<crypto::CertificateRequest> checked_csr(const std::string& der,
                                               const std::string& terminal_id,
                                               const std::string& serial) {
  if (der.empty() || der.size() > kMaxCsr) {
    return fail(Errc::invalid_argument, "", "", "the CSR is empty or over 64 KiB");
  }
  auto csr = crypto::CertificateRequest::from_der(crypto::byte_view(der));
  if (!csr) {
    return fail(Errc::invalid_argument, "", "", "the CSR does not parse: " + csr.error().message());
  }
  if (!csr->verify_self_signature()) {
    return fail(Errc::permission_denied, "", "",
                "the CSR is not signed by the key it carries: refused");
  }
  const auto subject = csr->subject();
  if (subject.common_name != terminal_id || subject.serial_number != serial) {
    return fail(Errc::permission_denied, "", "",
                "the CSR's subject (CN \"" + subject.common_name + "\", serialNumber \"" +
                    subject.serial_number + "\") is not the terminal \"" + terminal_id +
                    "\" with serial \"" + serial + "\": refused");
  }
  return csr;
}

}  // namespace

std::unexpected<Error> EnrolmentService::refuse(const std::string& serial,
                                                const std::string& terminal_id, Errc code,
                                                const std::string& reason) {
  const auto at = std::chrono::duration_cast<std::chrono::seconds>(now_().time_since_epoch());
  if (auto ok = registry_.record_refusal({at.count(), serial, terminal_id, reason}); !ok) {
    log_warning("enrolment: cannot record a refusal: " + ok.error().message());
  }
  log_warning("enrolment: serial \"" + serial + "\", terminal \"" + terminal_id + "\": " + reason);
  return fail_msg(code, reason);
}

Result<v1::EnrollResponse> EnrolmentService::respond(const crypto::Bytes& cert_der) const {
  v1::EnrollResponse r;
  r.set_certificate(cert_der.data(), cert_der.size());
  for (const auto& c : ca_.chain_der()) r.add_chain(c.data(), c.size());
  return r;
}

Result<v1::EnrollResponse> EnrolmentService::enroll(const v1::EnrollRequest& req) {
  const std::string& serial = req.serial();
  const std::string& tid = req.terminal_id();
  if (serial.empty() || serial.size() > kMaxName || tid.empty() || tid.size() > kMaxName ||
      !printable(serial) || !printable(tid)) {
    return refuse(shown(serial), shown(tid), Errc::invalid_argument,
                  "terminal id and serial must be 1 to 64 printable ASCII characters");
  }
  auto csr = checked_csr(req.csr(), tid, serial);
  if (!csr) return refuse(serial, tid, csr.error().code, csr.error().why);
  auto record = registry_.find(serial);
  if (!record) return std::unexpected(record.error());
  if (!*record) {
    return refuse(serial, tid, Errc::permission_denied,
                  "serial \"" + serial + "\" is not expected by this fleet: refused");
  }
  auto proof =
      identity::enrolment_proof((*record)->secret, tid, serial, crypto::byte_view(req.csr()));
  if (!proof) return std::unexpected(proof.error());
  if (!crypto::constant_time_equal(*proof, crypto::byte_view(req.proof()))) {
    return refuse(serial, tid, Errc::permission_denied,
                  "the proof does not match serial \"" + serial + "\"'s enrolment secret: refused");
  }
  auto pub = csr->public_key();
  if (!pub) return std::unexpected(pub.error());
  auto pub_pem = pub->to_pem();
  if (!pub_pem) return std::unexpected(pub_pem.error());

  for (int attempt = 0; attempt < 2; ++attempt) {
    if (!(*record)->public_key_pem.empty()) {
      if ((*record)->public_key_pem == *pub_pem && (*record)->terminal_id == tid) {
        // The same device asking again (its answer was lost): the same
        // certificate, or a new one for the same key once that one is past
        // a tenth of its lifetime (a key in a PKCS#11 token renews this
        // way: gRPC cannot take it as a TLS client key) or has expired (a
        // terminal off for longer than a lifetime can renew nothing over
        // TLS any more; the proof and the key are the same). Not while a
        // rotation to this key is not yet taken by the fleet's store.
        if ((*record)->rotation_pending_since != 0) {
          return fail_msg(Errc::unavailable, "the rotation of terminal \"" + tid +
                                                 "\" is still being recorded: ask again");
        }
        PORTIER_TRY(tell({IssuedKey::Kind::enrolled, tid, serial, *pub_pem, {}}));
        auto held = crypto::Certificate::from_der((*record)->certificate);
        if (held && now_() < held->not_before() + (held->not_after() - held->not_before()) / 10) {
          return respond((*record)->certificate);
        }
        auto fresh = ca_.issue_device(*csr, tid, serial, now_());
        if (!fresh) return std::unexpected(fresh.error());
        auto fresh_der = fresh->der();
        if (!fresh_der) return std::unexpected(fresh_der.error());
        // Only while the key is still this one (a rotation may have moved
        // it since find(): the old key must not come back).
        if (auto swapped = registry_.replace_key(serial, *pub_pem, *pub_pem, *fresh_der,
                                                 EnrolmentRegistry::KeyChange::renewal, unix_now());
            !swapped) {
          const Errc code = swapped.error().code;
          if (code == Errc::aborted || code == Errc::permission_denied || code == Errc::not_found) {
            return refuse(serial, tid, Errc::permission_denied,
                          "the key of terminal \"" + tid + "\" changed meanwhile (" +
                              swapped.error().why + "): refused and recorded");
          }
          return std::unexpected(swapped.error());
        }
        log_info("enrolment: terminal \"" + tid +
                 "\" enrolled again, a fresh certificate for its key");
        return respond(*fresh_der);
      }
      return refuse(
          serial, tid, Errc::permission_denied,
          "serial \"" + serial + "\" is already enrolled with another key" +
              ((*record)->terminal_id == tid ? std::string()
                                             : " (terminal \"" + (*record)->terminal_id + "\")") +
              ": one device, one key; refused and recorded");
    }
    auto cert = ca_.issue_device(*csr, tid, serial, now_());
    if (!cert) return std::unexpected(cert.error());
    auto der = cert->der();
    if (!der) return std::unexpected(der.error());
    PORTIER_TRY(tell({IssuedKey::Kind::enrolled, tid, serial, *pub_pem, {}}));
    auto bound = registry_.bind(serial, tid, *pub_pem, *der);
    if (bound) {
      log_info("enrolment: terminal \"" + tid + "\" (serial \"" + serial + "\") enrolled");
      return respond(*der);
    }
    if (bound.error().code != Errc::aborted) return std::unexpected(bound.error());
    // Another request bound the serial meanwhile: judge against it.
    record = registry_.find(serial);
    if (!record) return std::unexpected(record.error());
    if (!*record) break;
  }
  return fail_msg(Errc::aborted, "serial \"" + serial + "\" changed during enrolment: try again");
}

Result<v1::EnrollResponse> EnrolmentService::renew(const std::string& client_cert_pem,
                                                   const v1::RenewCertificateRequest& req,
                                                   bool* not_recorded) {
  if (not_recorded != nullptr) *not_recorded = false;
  if (client_cert_pem.empty()) {
    return fail_msg(Errc::permission_denied,
                    "Renew needs the terminal's device certificate as its TLS client "
                    "certificate: refused");
  }
  auto cert = crypto::Certificate::from_pem(client_cert_pem);
  if (!cert) return fail_msg(Errc::permission_denied, "the client certificate does not parse");
  const std::string tid = shown(cert->subject_cn());
  const std::string serial = shown(cert->subject_serial());
  const auto anchors = ca_.anchors();
  if (auto ok = crypto::verify_chain(*cert, {}, anchors, now_(), crypto::CertUsage::device); !ok) {
    return refuse(serial, tid, Errc::permission_denied,
                  "the client certificate is not a device certificate of this fleet: " +
                      ok.error().message());
  }
  auto r = renew_verified(*cert, tid, serial, req);
  if (!r && not_recorded != nullptr) {
    switch (r.error().code) {
      case Errc::permission_denied:
      case Errc::invalid_argument:
      case Errc::failed_precondition:
      case Errc::not_found:
      case Errc::already_exists:
        *not_recorded = nothing_recorded(serial, req.csr());
        break;
      default:
        break;
    }
  }
  return r;
}

bool EnrolmentService::nothing_recorded(const std::string& serial, const std::string& csr_der) {
  auto csr = crypto::CertificateRequest::from_der(crypto::byte_view(csr_der));
  if (!csr) return false;
  auto pub = csr->public_key();
  if (!pub) return false;
  auto pem = pub->to_pem();
  if (!pem) return false;
  auto record = registry_.find(serial);
  if (!record || !*record) return false;
  return !(*record)->public_key_pem.empty() && (*record)->public_key_pem != *pem;
}

Result<v1::EnrollResponse> EnrolmentService::renew_verified(
    const crypto::Certificate& cert, const std::string& tid, const std::string& serial,
    const v1::RenewCertificateRequest& req) {
  auto record = registry_.find(serial);
  if (!record) return std::unexpected(record.error());
  auto pub = cert.public_key();
  if (!pub) return std::unexpected(pub.error());
  auto pub_pem = pub->to_pem();
  if (!pub_pem) return std::unexpected(pub_pem.error());
  if (*record && (*record)->terminal_id == tid && (*record)->public_key_pem != *pub_pem &&
      !(*record)->previous_key_pem.empty() && (*record)->previous_key_pem == *pub_pem) {
    // The key the last rotation replaced: only a retry of that rotation
    // (its answer was lost) is answered, with the certificate issued then,
    // nothing changed. Whoever else holds the old key gets a certificate
    // for a key it does not have, or nothing.
    auto csr = checked_csr(req.csr(), tid, serial);
    if (!csr) return refuse(serial, tid, csr.error().code, csr.error().why);
    if (auto csr_pub = csr->public_key()) {
      if (auto csr_pem = csr_pub->to_pem(); csr_pem && *csr_pem == (*record)->public_key_pem) {
        auto old_der = cert.der();
        if (!old_der) return std::unexpected(old_der.error());
        return answer_retry(**record, tid, *old_der, req.cutover_sequence());
      }
    }
  }
  if (!*record || (*record)->terminal_id != tid || (*record)->public_key_pem != *pub_pem) {
    return refuse(serial, tid, Errc::permission_denied,
                  "the client certificate is not the enrolled key of terminal \"" + tid +
                      "\" (serial \"" + serial + "\"): refused");
  }
  auto csr = checked_csr(req.csr(), tid, serial);
  if (!csr) return refuse(serial, tid, csr.error().code, csr.error().why);
  auto csr_pub = csr->public_key();
  if (!csr_pub) return refuse(serial, tid, Errc::invalid_argument, "the CSR's key does not parse");
  const bool rotation = !identity::same_key(*csr_pub, *pub);
  if (rotation && !(*record)->rotation_allowed) {
    return refuse(serial, tid, Errc::permission_denied,
                  "Renew with a new key needs the operator's rotation of terminal \"" + tid +
                      "\" (portier-fleet send " + tid +
                      " rotate-key --enrol-registry DB): refused and recorded");
  }
  if (rotation && req.cutover_sequence() == 0) {
    return refuse(serial, tid, Errc::invalid_argument,
                  "Renew with a new key must name its cutover_sequence (the first envelope "
                  "the new key signs): refused");
  }
  auto new_pem = csr_pub->to_pem();
  if (!new_pem) return std::unexpected(new_pem.error());
  return change_key(**record, tid, *pub_pem, *new_pem, *csr, rotation ? req.cutover_sequence() : 0);
}

Result<v1::EnrollResponse> EnrolmentService::change_key(
    const EnrolmentRecord& record, const std::string& tid, const std::string& old_pem,
    const std::string& new_pem, const crypto::CertificateRequest& csr, std::uint64_t cutover) {
  const std::string& serial = record.serial;
  const bool rotation = new_pem != old_pem;
  auto issued = ca_.issue_device(csr, tid, serial, now_());
  if (!issued) return std::unexpected(issued.error());
  auto der = issued->der();
  if (!der) return std::unexpected(der.error());
  // The registry first, as a compare-and-swap: of two Renews racing for the
  // same terminal (a thief of the old key and the terminal itself) only one
  // moves the key; the other is refused here, before anyone is told or gets
  // a certificate. A rotation stays marked pending until the store took it:
  // a retry meanwhile gets no certificate the store may yet refuse.
  using Change = EnrolmentRegistry::KeyChange;
  // In flight here until this returns (a retry then waits for its end).
  std::shared_ptr<void> in_flight;
  if (rotation) {
    std::lock_guard lock(mu_);
    auto it = rotating_.insert(serial);
    in_flight.reset(this, [it](EnrolmentService* self) {
      std::lock_guard lock(self->mu_);
      self->rotating_.erase(it);
    });
  }
  if (auto swapped =
          registry_.replace_key(serial, old_pem, new_pem, *der,
                                rotation ? Change::rotation : Change::renewal, unix_now());
      !swapped) {
    const Errc code = swapped.error().code;
    if (code == Errc::aborted || code == Errc::permission_denied || code == Errc::not_found) {
      return refuse(serial, tid, Errc::permission_denied,
                    "another Renew of terminal \"" + tid + "\" changed or used its key first (" +
                        swapped.error().why + "): refused and recorded");
    }
    return std::unexpected(swapped.error());
  }
  if (auto told = tell({rotation ? IssuedKey::Kind::rotated : IssuedKey::Kind::renewed, tid, serial,
                        new_pem, rotation ? old_pem : std::string(), cutover});
      !told) {
    if (rotation) {
      return undo_rotation(serial, tid, old_pem, new_pem, record.certificate, told.error());
    }
    return std::unexpected(told.error());
  }
  if (rotation) {
    if (auto settled = registry_.settle_rotation(serial, new_pem); !settled) {
      // The store has the new key: the certificate is safe to hand out. The
      // mark stays; a retry finishes it once it is stale.
      log_warning("enrolment: terminal \"" + tid +
                  "\": the rotation was recorded, its pending mark not cleared: " +
                  settled.error().message());
    }
  }
  log_info("enrolment: terminal \"" + tid + "\" " +
           (rotation ? "rotated its key (the new one signs from sequence " +
                           std::to_string(cutover) + ")"
                     : std::string("renewed its certificate")));
  return respond(*der);
}

std::int64_t EnrolmentService::unix_now() const {
  return std::chrono::duration_cast<std::chrono::seconds>(now_().time_since_epoch()).count();
}

std::unexpected<Error> EnrolmentService::undo_rotation(
    const std::string& serial, const std::string& tid, const std::string& old_pem,
    const std::string& new_pem, const crypto::Bytes& old_cert_der, const Error& told) {
  using Change = EnrolmentRegistry::KeyChange;
  // The fleet's store does not know the new key: the registry goes back to
  // the old one. The operator's allowance stays open, unless the chain
  // already passed the cutover under the old key: someone else may sign
  // with it, and would Renew next with a key of its own.
  const bool overtaken = told.code == Errc::failed_precondition;
  if (auto undone =
          registry_.replace_key(serial, new_pem, old_pem, old_cert_der,
                                overtaken ? Change::undo_closed : Change::undo, unix_now());
      !undone) {
    log_error(
        "enrolment: terminal \"" + tid +
        "\": a rotation that failed cannot be undone in the registry: " + undone.error().message());
    // The registry still holds the new key: no refusal (the terminal
    // would take it as "nothing recorded", drop its pending key and go
    // on with the old one). Unavailable: it keeps its uplink held at
    // the cutover and asks again (review finding M4).
    return fail_msg(Errc::unavailable,
                    "the rotation of terminal \"" + tid +
                        "\" could not be recorded in full nor undone: ask again");
  }
  // The store's own refusals (it rolled back: the chain passed the cutover,
  // the terminal is unknown) keep their code; any other failure of it may
  // have come after it wrote: unavailable, the terminal asks again.
  const Errc code = overtaken || told.code == Errc::not_found ? told.code : Errc::unavailable;
  return refuse(serial, tid, code,
                "the rotation of terminal \"" + tid + "\" was not taken: " + told.message() +
                    (overtaken ? "; the rotation allowance is closed (the old key may be in "
                                 "other hands): look, then allow it again"
                               : ""));
}

Result<v1::EnrollResponse> EnrolmentService::answer_retry(const EnrolmentRecord& record,
                                                          const std::string& tid,
                                                          const crypto::Bytes& old_cert_der,
                                                          std::uint64_t cutover) {
  if (record.rotation_pending_since == 0) {
    log_info("enrolment: terminal \"" + tid +
             "\" asked again for its rotation's certificate (the answer was lost)");
    return respond(record.certificate);
  }
  bool in_flight = false;
  {
    std::lock_guard lock(mu_);
    in_flight = rotating_.contains(record.serial);
  }
  if (in_flight || unix_now() - record.rotation_pending_since < kPendingStale.count()) {
    // The first request is still telling the fleet's store, which may yet
    // refuse the key: no certificate before it took it.
    return fail_msg(Errc::unavailable, "the rotation of terminal \"" + tid +
                                           "\" is still being recorded by the fleet: ask again");
  }
  // Left pending by a fleet that stopped between its two writes: the store
  // is told again (the same next key is taken again), then answered.
  log_warning("enrolment: terminal \"" + tid + "\": finishing a rotation left pending since " +
              std::to_string(record.rotation_pending_since));
  if (cutover == 0) {
    return fail_msg(Errc::unavailable, "the rotation of terminal \"" + tid +
                                           "\" is pending and the retry names no cutover");
  }
  if (auto told = tell({IssuedKey::Kind::rotated, tid, record.serial, record.public_key_pem,
                        record.previous_key_pem, cutover});
      !told) {
    return undo_rotation(record.serial, tid, record.previous_key_pem, record.public_key_pem,
                         old_cert_der, told.error());
  }
  if (auto settled = registry_.settle_rotation(record.serial, record.public_key_pem); !settled) {
    log_warning("enrolment: terminal \"" + tid +
                "\": the rotation was recorded, its pending mark not cleared: " +
                settled.error().message());
  }
  return respond(record.certificate);
}

Result<v1::EnrollResponse> EnrolmentService::rotate(const std::string& serial,
                                                    crypto::ByteView csr_der,
                                                    std::uint64_t cutover) {
  auto record = registry_.find(serial);
  if (!record) return std::unexpected(record.error());
  if (!*record || (*record)->public_key_pem.empty()) {
    return fail_msg(Errc::not_found, "serial \"" + serial + "\" is not enrolled");
  }
  const std::string tid = (*record)->terminal_id;
  auto csr = checked_csr(std::string(csr_der.begin(), csr_der.end()), tid, serial);
  if (!csr) return refuse(serial, tid, csr.error().code, csr.error().why);
  auto pub = csr->public_key();
  if (!pub) return std::unexpected(pub.error());
  auto pub_pem = pub->to_pem();
  if (!pub_pem) return std::unexpected(pub_pem.error());
  if (*pub_pem == (*record)->public_key_pem) {
    return refuse(serial, tid, Errc::invalid_argument,
                  "a rotation's CSR must be for a new key: refused");
  }
  // The operator's command is the allowance (rotate-key also opens it). A
  // cutover of 0 (none): the operator certifies a rotate-key CSR of a key
  // in a PKCS#11 token (no thief can hold the old key, which never leaves
  // its token), and the new key takes over at its first envelope.
  PORTIER_TRY(registry_.allow_rotation(tid));
  return change_key(**record, tid, (*record)->public_key_pem, *pub_pem, *csr, cutover);
}

grpc::Status EnrolmentService::Enroll(grpc::ServerContext*, const v1::EnrollRequest* request,
                                      v1::EnrollResponse* response) {
  auto r = enroll(*request);
  if (!r) return to_status(r.error());
  *response = std::move(*r);
  return grpc::Status::OK;
}

grpc::Status EnrolmentService::Renew(grpc::ServerContext* context,
                                     const v1::RenewCertificateRequest* request,
                                     v1::EnrollResponse* response) {
  std::string pem;
  if (auto auth = context->auth_context()) {
    auto certs = auth->FindPropertyValues("x509_pem_cert");
    if (!certs.empty()) pem.assign(certs.front().data(), certs.front().size());
  }
  bool not_recorded = false;
  auto r = renew(pem, *request, &not_recorded);
  if (!r) {
    if (not_recorded) {
      context->AddTrailingMetadata(identity::kRotationAnswerKey, identity::kNotRecorded);
    }
    return to_status(r.error());
  }
  *response = std::move(*r);
  return grpc::Status::OK;
}

}  // namespace portier::fleet
