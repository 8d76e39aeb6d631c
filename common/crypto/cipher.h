// Symmetric encryption: SM4 (GB/T 32907) in CBC and CTR, and authenticated
// encryption with AES-256-GCM (and SM4-GCM where the platform has it).
#pragma once

#include "common/crypto/bytes.h"
#include "common/result.h"

namespace portier::crypto {

// Unauthenticated: pair it with a MAC (hmac.h) or use an AeadAlgo.
// 16-byte key, 16-byte IV (CBC: random per message; CTR: the initial
// counter block, never reused with one key).
enum class CipherAlgo { sm4_cbc, sm4_ctr };
// CBC only: pkcs7 pads to whole blocks; none takes and gives whole 16-byte
// blocks. CTR never pads.
enum class Padding { pkcs7, none };

Result<Bytes> encrypt(CipherAlgo algo, ByteView key, ByteView iv, ByteView plaintext,
                      Padding padding = Padding::pkcs7);
// invalid_argument when the data or its padding is malformed.
Result<Bytes> decrypt(CipherAlgo algo, ByteView key, ByteView iv, ByteView ciphertext,
                      Padding padding = Padding::pkcs7);

// AES-256-GCM: 32-byte key. SM4-GCM (RFC 8998): 16-byte key; unavailable
// with OpenSSL 3.0 (Debian 12), whose default provider lacks it. Both take a
// 12-byte nonce, never reused with one key, and give a 16-byte tag.
enum class AeadAlgo { aes_256_gcm, sm4_gcm };

struct Sealed {
  Bytes ciphertext;  // as long as the plaintext
  Bytes tag;
};

Result<Sealed> aead_seal(AeadAlgo algo, ByteView key, ByteView nonce, ByteView aad,
                         ByteView plaintext);
// The plaintext, or permission_denied when the tag does not match the key,
// nonce, AAD and ciphertext (nothing of the plaintext is given out then).
Result<Bytes> aead_open(AeadAlgo algo, ByteView key, ByteView nonce, ByteView aad,
                        ByteView ciphertext, ByteView tag);

}  // namespace portier::crypto
