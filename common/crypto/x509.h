// X.509 certificates and certificate requests on the crypto layer (issue
// 10): the terminal's device certificate and its enrolment CSR, the fleet's
// command-signing chain checked against the trust anchors of the config,
// and the fleet's own CA that issues device certificates. Keys are the
// crypto layer's (ECDSA P-256, Ed25519, SM2 with SM3 and the GM/T 0009
// default id). No OpenSSL type in this header; the implementation is
// platform/openssl/x509.cc.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/crypto/bytes.h"
#include "common/crypto/keys.h"
#include "common/result.h"

namespace portier::crypto {

using TimePoint = std::chrono::system_clock::time_point;

// What a certificate may be used for: its keyUsage and extendedKeyUsage.
enum class CertUsage {
  ca,               // basicConstraints CA:TRUE, keyUsage keyCertSign
  tls_client,       // keyUsage digitalSignature, EKU clientAuth
  tls_server,       // keyUsage digitalSignature, EKU serverAuth
  command_signing,  // keyUsage digitalSignature, EKU codeSigning (the fleet's commands)
  device,           // keyUsage digitalSignature, EKU clientAuth: a terminal's key
                    // (envelopes, checkpoints, results, and its TLS client)
};

// Untrusted input is bounded: at most 64 KiB of DER per certificate or
// request, 1 MiB of PEM text; DER with bytes after the certificate is
// refused. An SM2-with-SM3 signature is checked with the GM/T 0009 default id.
class Certificate {
 public:
  static Result<Certificate> from_der(ByteView der);
  // The first "CERTIFICATE" PEM block (of a chain file: the leaf).
  static Result<Certificate> from_pem(std::string_view pem);
  // Every "CERTIFICATE" block of a PEM file's text, in order; none is an
  // error.
  static Result<std::vector<Certificate>> all_from_pem(std::string_view pem);

  Result<Bytes> der() const;
  Result<std::string> to_pem() const;
  Result<PublicKey> public_key() const;
  std::string subject_cn() const;      // "" when there is none
  std::string subject_serial() const;  // the subject's serialNumber attribute, "" when none
  std::string issuer_cn() const;
  std::string serial_hex() const;  // the certificate's serial number, lowercase hex
  TimePoint not_before() const;
  TimePoint not_after() const;
  std::string sha256_fingerprint() const;  // lowercase hex of SHA-256(DER)

  struct Impl;  // platform/openssl/
  explicit Certificate(std::shared_ptr<const Impl> impl);
  const Impl& impl() const { return *impl_; }

 private:
  std::shared_ptr<const Impl> impl_;
};

// Ok: `leaf` chains through `intermediates` (any order, unused ones
// ignored) to one of `anchors`, every signature checks, every certificate
// is valid at `at`, each issuer is a CA with keyCertSign, and `leaf` has
// `usage`. permission_denied otherwise, with a message that names the
// certificate (by subject CN) and the reason ("expired", "not yet valid",
// "untrusted issuer", "bad signature", "issuer is not a CA", "path length
// exceeded", "not allowed for command signing"). An anchor need not be a
// root (RFC 5280 6.1.1). No revocation check yet (x509_verify.cc has its
// place).
Result<void> verify_chain(const Certificate& leaf, std::span<const Certificate> intermediates,
                          std::span<const Certificate> anchors, TimePoint at, CertUsage usage);

struct Subject {
  std::string common_name;
  std::string serial_number;  // e.g. the terminal's hardware serial (enrolment)
  std::string organization;
};

class CertificateRequest {
 public:
  // A PKCS#10 request for `key`'s public key, self-signed with `key`.
  static Result<CertificateRequest> create(const PrivateKey& key, const Subject& subject);
  static Result<CertificateRequest> from_pem(std::string_view pem);
  static Result<CertificateRequest> from_der(ByteView der);

  Result<std::string> to_pem() const;
  Result<Bytes> der() const;
  Result<PublicKey> public_key() const;
  Subject subject() const;
  // Ok when the request's self-signature checks (its key holder made it).
  Result<void> verify_self_signature() const;

  struct Impl;
  explicit CertificateRequest(std::shared_ptr<const Impl> impl);
  const Impl& impl() const { return *impl_; }

 private:
  std::shared_ptr<const Impl> impl_;
};

struct IssueOptions {
  Subject subject;
  CertUsage usage = CertUsage::device;
  TimePoint not_before;
  TimePoint not_after;
  std::vector<std::string> dns_names;  // subjectAltName (tls_server)
  std::vector<std::string> ip_addresses;
  std::optional<int> path_length;  // CA only
};

// A certificate for `subject_key`, signed by `issuer_key`; `issuer` is the
// issuer's certificate, or nullptr for a self-signed root (then
// `subject_key` must be `issuer_key`'s public key). A random 16-byte serial.
Result<Certificate> issue_certificate(const PublicKey& subject_key, const IssueOptions& options,
                                      const Certificate* issuer, const PrivateKey& issuer_key);

}  // namespace portier::crypto
