// SM4-CBC/CTR and AEAD (AES-256-GCM, SM4-GCM) through EVP_CIPHER.
#include "common/crypto/cipher.h"

#include <openssl/err.h>

#include <algorithm>
#include <climits>
#include <memory>

#include "common/crypto/bytes.h"
#include "platform/openssl/ossl.h"

namespace portier::crypto {
namespace {

constexpr const char* kWhere = "crypto/cipher";
constexpr std::size_t kChunk = 1 << 30;  // EVP takes int lengths

const char* name(CipherAlgo a) { return a == CipherAlgo::sm4_cbc ? "sm4-cbc" : "sm4-ctr"; }
const char* name(AeadAlgo a) { return a == AeadAlgo::aes_256_gcm ? "aes-256-gcm" : "sm4-gcm"; }

struct CtxFree {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
using Ctx = std::unique_ptr<EVP_CIPHER_CTX, CtxFree>;

// EVP_CipherUpdate over `in` in int-sized pieces, appending to `out` at `at`.
bool update(EVP_CIPHER_CTX* ctx, ByteView in, Bytes& out, std::size_t& at) {
  for (std::size_t done = 0; done < in.size();) {
    const std::size_t n = std::min(in.size() - done, kChunk);
    int len = 0;
    if (EVP_CipherUpdate(ctx, out.data() + at, &len, in.data() + done, static_cast<int>(n)) != 1)
      return false;
    at += static_cast<std::size_t>(len);
    done += n;
  }
  return true;
}

Result<Bytes> run(CipherAlgo algo, ByteView key, ByteView iv, ByteView in, Padding padding,
                  bool enc) {
  ERR_clear_error();
  const std::string what = name(algo);
  if (key.size() != 16 || iv.size() != 16)
    return fail(Errc::invalid_argument, kWhere, what, "key and IV must be 16 bytes each");
  const bool pad = algo == CipherAlgo::sm4_cbc && padding == Padding::pkcs7;
  if (algo == CipherAlgo::sm4_cbc && !pad && in.size() % 16 != 0)
    return fail(Errc::invalid_argument, kWhere, what, "without padding, whole 16-byte blocks");
  if (algo == CipherAlgo::sm4_cbc && pad && !enc && (in.empty() || in.size() % 16 != 0))
    return fail(Errc::invalid_argument, kWhere, what, "ciphertext is not whole 16-byte blocks");
  const EVP_CIPHER* cipher = ossl::cipher(algo);
  if (cipher == nullptr) return ossl::fail(Errc::unavailable, kWhere, what);
  Ctx ctx(EVP_CIPHER_CTX_new());
  if (!ctx ||
      EVP_CipherInit_ex2(ctx.get(), cipher, key.data(), iv.data(), enc ? 1 : 0, nullptr) != 1 ||
      EVP_CIPHER_CTX_set_padding(ctx.get(), pad ? 1 : 0) != 1)
    return ossl::fail(Errc::internal, kWhere, what);
  Bytes out(in.size() + 16);
  std::size_t at = 0;
  int len = 0;
  if (!update(ctx.get(), in, out, at) ||
      EVP_CipherFinal_ex(ctx.get(), out.data() + at, &len) != 1) {
    cleanse(out);
    if (!enc && pad) {
      ERR_clear_error();
      return fail(Errc::invalid_argument, kWhere, what,
                  "bad padding (wrong key or IV, or altered)");
    }
    return ossl::fail(Errc::internal, kWhere, what);
  }
  out.resize(at + static_cast<std::size_t>(len));
  return out;
}

Result<EVP_CIPHER_CTX*> aead_init(AeadAlgo algo, ByteView key, ByteView nonce, ByteView aad,
                                  bool enc, Ctx& ctx) {
  const std::string what = name(algo);
  const std::size_t key_size = algo == AeadAlgo::aes_256_gcm ? 32 : 16;
  if (key.size() != key_size)
    return fail(Errc::invalid_argument, kWhere, what,
                "key must be " + std::to_string(key_size) + " bytes");
  if (nonce.size() != 12)
    return fail(Errc::invalid_argument, kWhere, what, "nonce must be 12 bytes");
  const EVP_CIPHER* cipher = ossl::cipher(algo);
  if (cipher == nullptr) {
    return fail(Errc::unavailable, kWhere, what,
                "not offered by this OpenSSL (SM4-GCM needs OpenSSL 3.2 or later)");
  }
  ctx.reset(EVP_CIPHER_CTX_new());
  if (!ctx ||
      EVP_CipherInit_ex2(ctx.get(), cipher, key.data(), nonce.data(), enc ? 1 : 0, nullptr) != 1)
    return ossl::fail(Errc::internal, kWhere, what);
  for (std::size_t done = 0; done < aad.size();) {
    const std::size_t n = std::min(aad.size() - done, kChunk);
    int len = 0;
    if (EVP_CipherUpdate(ctx.get(), nullptr, &len, aad.data() + done, static_cast<int>(n)) != 1)
      return ossl::fail(Errc::internal, kWhere, what, "AAD");
    done += n;
  }
  return ctx.get();
}

}  // namespace

Result<Bytes> encrypt(CipherAlgo algo, ByteView key, ByteView iv, ByteView plaintext,
                      Padding padding) {
  return run(algo, key, iv, plaintext, padding, true);
}

Result<Bytes> decrypt(CipherAlgo algo, ByteView key, ByteView iv, ByteView ciphertext,
                      Padding padding) {
  return run(algo, key, iv, ciphertext, padding, false);
}

Result<Sealed> aead_seal(AeadAlgo algo, ByteView key, ByteView nonce, ByteView aad,
                         ByteView plaintext) {
  ERR_clear_error();
  const std::string what = name(algo);
  Ctx ctx;
  auto c = aead_init(algo, key, nonce, aad, true, ctx);
  if (!c) return std::unexpected(c.error());
  Sealed out;
  out.ciphertext.resize(plaintext.size() + 16);
  out.tag.resize(16);
  std::size_t at = 0;
  int len = 0;
  if (!update(*c, plaintext, out.ciphertext, at) ||
      EVP_EncryptFinal_ex(*c, out.ciphertext.data() + at, &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(*c, EVP_CTRL_AEAD_GET_TAG, 16, out.tag.data()) != 1)
    return ossl::fail(Errc::internal, kWhere, what);
  out.ciphertext.resize(at + static_cast<std::size_t>(len));
  return out;
}

Result<Bytes> aead_open(AeadAlgo algo, ByteView key, ByteView nonce, ByteView aad,
                        ByteView ciphertext, ByteView tag) {
  ERR_clear_error();
  const std::string what = name(algo);
  if (tag.size() != 16) return fail(Errc::invalid_argument, kWhere, what, "tag must be 16 bytes");
  Ctx ctx;
  auto c = aead_init(algo, key, nonce, aad, false, ctx);
  if (!c) return std::unexpected(c.error());
  Bytes out(ciphertext.size() + 16);
  std::size_t at = 0;
  int len = 0;
  if (!update(*c, ciphertext, out, at) ||
      EVP_CIPHER_CTX_ctrl(*c, EVP_CTRL_AEAD_SET_TAG, 16, const_cast<std::uint8_t*>(tag.data())) !=
          1)
    return ossl::fail(Errc::internal, kWhere, what);
  if (EVP_DecryptFinal_ex(*c, out.data() + at, &len) != 1) {
    cleanse(out);
    ERR_clear_error();
    return fail(Errc::permission_denied, kWhere, what,
                "authentication failed: wrong key, nonce, AAD or tag, or altered ciphertext");
  }
  out.resize(at + static_cast<std::size_t>(len));
  return out;
}

}  // namespace portier::crypto
