#include "agent/commands/command_signing.h"

#include <cstring>

#include "common/crypto/digest.h"
#include "common/crypto/sign.h"

namespace portier::commands {

crypto::Bytes command_signing_input(std::string_view command_bytes) {
  crypto::Bytes input(kCommandLabel.size() + command_bytes.size());
  std::memcpy(input.data(), kCommandLabel.data(), kCommandLabel.size());
  if (!command_bytes.empty()) {
    std::memcpy(input.data() + kCommandLabel.size(), command_bytes.data(), command_bytes.size());
  }
  return input;
}

Result<crypto::Bytes> command_digest(std::string_view command_bytes) {
  return crypto::digest(crypto::DigestAlgo::sha256, command_bytes);
}

Result<v1::SignedCommand> sign_command(const v1::Command& command, const crypto::Signer& signer,
                                       std::span<const crypto::Certificate> chain) {
  const std::string where = "sign command " + command.command_id();
  if (chain.empty()) {
    return fail(Errc::invalid_argument, where, "certificates",
                "none given: the signer's certificate must come first");
  }
  // The terminal checks the signature with certificates[0]'s key: a chain
  // for another key would make every command it signs refused.
  auto cert_key = chain[0].public_key();
  if (!cert_key) return std::unexpected(cert_key.error().with_context(where));
  auto cert_raw = cert_key->raw();
  auto signer_raw = signer.public_key().raw();
  if (!cert_raw) return std::unexpected(cert_raw.error().with_context(where));
  if (!signer_raw) return std::unexpected(signer_raw.error().with_context(where));
  if (cert_key->type() != signer.type() || *cert_raw != *signer_raw) {
    return fail(Errc::invalid_argument, where, "certificate " + chain[0].subject_cn(),
                "is not for the signing key");
  }
  v1::SignedCommand out;
  if (!command.SerializeToString(out.mutable_command())) {
    return fail(Errc::internal, where, "serialize", "the command could not be serialized");
  }
  auto sig = signer.sign(command_signing_input(out.command()));
  if (!sig) return std::unexpected(sig.error().with_context(where));
  out.set_signature(std::string(sig->begin(), sig->end()));
  for (const auto& c : chain) {
    auto der = c.der();
    if (!der) return std::unexpected(der.error().with_context(where));
    out.add_certificates(std::string(der->begin(), der->end()));
  }
  return out;
}

Result<void> verify_command_signature(const v1::SignedCommand& signed_command,
                                      const crypto::PublicKey& key) {
  return crypto::verify(key, command_signing_input(signed_command.command()),
                        crypto::byte_view(signed_command.signature()));
}

}  // namespace portier::commands
