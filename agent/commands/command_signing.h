// Signing and checking a fleet command (proto/portier/v1/command.proto),
// used by both sides: the fleet signs with sign_command(), the terminal
// checks with verify_command_signature() (agent/commands/command_verifier.h
// does that and everything else a command must pass).
//
// The signature is over kCommandLabel || SignedCommand.command: the label
// (with its NUL) keeps a command signature from ever being taken for an
// envelope's or a checkpoint's by the same key, or the other way round.
#pragma once

#include <span>
#include <string_view>

#include "common/crypto/bytes.h"
#include "common/crypto/keys.h"
#include "common/crypto/signer.h"
#include "common/crypto/x509.h"
#include "common/result.h"
#include "portier/v1/command.pb.h"

namespace portier::commands {

inline constexpr std::string_view kCommandLabel{"portier/v1 command\0", 19};

// The bytes a command's signature is over.
crypto::Bytes command_signing_input(std::string_view command_bytes);

// CommandResult.command_digest: SHA-256 of SignedCommand.command.
Result<crypto::Bytes> command_digest(std::string_view command_bytes);

// `command` serialized, signed by `signer`, with `chain` (the signer's
// certificate first, then intermediates up to, not including, the trust
// anchor). invalid_argument when the chain is empty or its first
// certificate is not for the signer's key.
Result<v1::SignedCommand> sign_command(const v1::Command& command, const crypto::Signer& signer,
                                       std::span<const crypto::Certificate> chain);

// Ok: `signed_command.signature` is `key`'s over its command bytes.
// permission_denied otherwise.
Result<void> verify_command_signature(const v1::SignedCommand& signed_command,
                                      const crypto::PublicKey& key);

}  // namespace portier::commands
