// Signatures: ECDSA P-256 with SHA-256, Ed25519 (pure, RFC 8032), SM2 with
// SM3 and a signer id (GB/T 32918.2; GM/T 0009 formats).
#pragma once

#include <string_view>

#include "common/crypto/bytes.h"
#include "common/crypto/keys.h"
#include "common/result.h"

namespace portier::crypto {

// The default signer id of GM/T 0009-2012 (also GB/T 35276): what SM2
// signers use unless both sides agree on another.
inline constexpr std::string_view kSm2DefaultId = "1234567812345678";

struct SignOptions {
  std::string_view sm2_id = kSm2DefaultId;  // SM2 only: enters Z = SM3(ENTL||ID||a||b||G||P)
};

// ECDSA P-256 and SM2: a DER SEQUENCE { r INTEGER, s INTEGER } (X9.62,
// GM/T 0009); randomised. Ed25519: 64 bytes, deterministic.
Result<Bytes> sign(const PrivateKey& key, ByteView message, const SignOptions& options = {});

// Ok: `signature` is `key`'s over `message`. permission_denied: it is not
// (another message or key, a tampered or malformed signature).
// invalid_argument and internal: the check could not be made.
Result<void> verify(const PublicKey& key, ByteView message, ByteView signature,
                    const SignOptions& options = {});

// The DER signature of ECDSA and SM2 from its two big-endian integers (as a
// TPM or a published test vector gives them).
Result<Bytes> ec_signature_der(ByteView r, ByteView s);

}  // namespace portier::crypto
