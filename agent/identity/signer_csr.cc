#include "agent/identity/signer_csr.h"

#include <string_view>

namespace portier::identity {
namespace {

using crypto::Bytes;

void put_len(Bytes& out, std::size_t n) {
  if (n < 0x80) {
    out.push_back(static_cast<std::uint8_t>(n));
  } else if (n < 0x100) {
    out.push_back(0x81);
    out.push_back(static_cast<std::uint8_t>(n));
  } else {
    out.push_back(0x82);
    out.push_back(static_cast<std::uint8_t>(n >> 8));
    out.push_back(static_cast<std::uint8_t>(n));
  }
}

Bytes tlv(std::uint8_t tag, crypto::ByteView content) {
  Bytes out{tag};
  put_len(out, content.size());
  out.insert(out.end(), content.begin(), content.end());
  return out;
}

Bytes cat(std::initializer_list<crypto::ByteView> parts) {
  Bytes out;
  for (auto p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

// RelativeDistinguishedName SET { SEQUENCE { type, value } }.
Bytes rdn(const Bytes& oid, std::uint8_t string_tag, std::string_view value) {
  return tlv(0x31, tlv(0x30, cat({oid, tlv(string_tag, crypto::byte_view(value))})));
}

bool printable(std::string_view s) {
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    std::string_view(" '()+,-./:=?").find(c) != std::string_view::npos;
    if (!ok) return false;
  }
  return true;
}

const Bytes kOidCn = {0x06, 0x03, 0x55, 0x04, 0x03};
const Bytes kOidSerial = {0x06, 0x03, 0x55, 0x04, 0x05};
const Bytes kOidOrg = {0x06, 0x03, 0x55, 0x04, 0x0a};
const Bytes kSpkiP256 = {0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01,
                         0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
const Bytes kAlgEd25519 = {0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70};
const Bytes kAlgEcdsaSha256 = {0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86,
                               0x48, 0xce, 0x3d, 0x04, 0x03, 0x02};

Result<crypto::CertificateRequest> encode_and_sign(const crypto::Signer& signer,
                                                   const crypto::Subject& subject) {
  const bool ed = signer.type() == crypto::KeyType::ed25519;
  if (signer.type() == crypto::KeyType::sm2) {
    return fail(Errc::invalid_argument, "CSR", "SM2",
                "an SM2 key outside memory is not supported (SM2 keys stay in the file backend)");
  }
  auto raw = signer.public_key().raw();
  if (!raw) return std::unexpected(raw.error());
  Bytes bits{0x00};
  bits.insert(bits.end(), raw->begin(), raw->end());
  const Bytes spki = tlv(0x30, cat({ed ? kAlgEd25519 : kSpkiP256, tlv(0x03, bits)}));
  Bytes name;
  if (!subject.organization.empty()) {
    auto r = rdn(kOidOrg, 0x0c, subject.organization);
    name.insert(name.end(), r.begin(), r.end());
  }
  {
    auto r = rdn(kOidCn, 0x0c, subject.common_name);
    name.insert(name.end(), r.begin(), r.end());
  }
  if (!subject.serial_number.empty()) {
    auto r = rdn(kOidSerial, 0x13, subject.serial_number);
    name.insert(name.end(), r.begin(), r.end());
  }
  const Bytes version = {0x02, 0x01, 0x00};
  const Bytes no_attributes = {0xa0, 0x00};
  const Bytes info = tlv(0x30, cat({version, tlv(0x30, name), spki, no_attributes}));
  auto sig = signer.sign(info);
  if (!sig) return std::unexpected(sig.error().with_context("CSR"));
  Bytes sig_bits{0x00};
  sig_bits.insert(sig_bits.end(), sig->begin(), sig->end());
  const Bytes der = tlv(0x30, cat({info, ed ? kAlgEd25519 : kAlgEcdsaSha256, tlv(0x03, sig_bits)}));
  return crypto::CertificateRequest::from_der(der);
}

}  // namespace

Result<crypto::CertificateRequest> make_csr(const crypto::Signer& signer,
                                            const crypto::Subject& subject) {
  if (subject.common_name.empty() || subject.common_name.size() > 64) {
    return fail(Errc::invalid_argument, "CSR", "common name", "must be 1 to 64 characters");
  }
  if (subject.serial_number.size() > 64 || !printable(subject.serial_number)) {
    return fail(Errc::invalid_argument, "CSR", "serial number \"" + subject.serial_number + "\"",
                "must be at most 64 letters, digits, spaces or '()+,-./:=?");
  }
  Result<crypto::CertificateRequest> csr = std::unexpected(Error{});
  if (auto* ks = dynamic_cast<const crypto::KeySigner*>(&signer)) {
    csr = crypto::CertificateRequest::create(ks->key(), subject);
  } else {
    csr = encode_and_sign(signer, subject);
  }
  if (!csr) return csr;
  if (auto ok = csr->verify_self_signature(); !ok) {
    return std::unexpected(ok.error().with_context("CSR made for the device key"));
  }
  return csr;
}

}  // namespace portier::identity
