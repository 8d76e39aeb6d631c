// Error text, fetched algorithms, constant-time compare, cleanse, random.
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/rand.h>

#include <algorithm>
#include <climits>
#include <mutex>

#include "common/crypto/bytes.h"
#include "common/crypto/random.h"
#include "platform/openssl/ossl.h"

namespace portier::crypto {
namespace ossl {

std::string errors(const char* fallback) {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? fallback : out;
}

namespace {

template <class T, std::size_t N>
struct Fetched {
  std::once_flag once[N];
  T* algo[N] = {};
};

}  // namespace

const EVP_MD* md(DigestAlgo algo) {
  static Fetched<EVP_MD, 5> f;
  static constexpr const char* kNames[] = {"SHA2-256", "SM3", "SHA1", "SHA2-384", "SHA2-512"};
  const auto i = static_cast<std::size_t>(algo);
  if (i >= 5) return nullptr;
  std::call_once(f.once[i], [&] { f.algo[i] = EVP_MD_fetch(nullptr, kNames[i], nullptr); });
  return f.algo[i];
}

const EVP_CIPHER* cipher(CipherAlgo algo) {
  static Fetched<EVP_CIPHER, 2> f;
  static constexpr const char* kNames[] = {"SM4-CBC", "SM4-CTR"};
  const auto i = static_cast<std::size_t>(algo);
  if (i >= 2) return nullptr;
  std::call_once(f.once[i], [&] {
    f.algo[i] = EVP_CIPHER_fetch(nullptr, kNames[i], nullptr);
    ERR_clear_error();
  });
  return f.algo[i];
}

const EVP_CIPHER* cipher(AeadAlgo algo) {
  static Fetched<EVP_CIPHER, 2> f;
  static constexpr const char* kNames[] = {"AES-256-GCM", "SM4-GCM"};
  const auto i = static_cast<std::size_t>(algo);
  if (i >= 2) return nullptr;
  std::call_once(f.once[i], [&] {
    f.algo[i] = EVP_CIPHER_fetch(nullptr, kNames[i], nullptr);
    ERR_clear_error();  // SM4-GCM missing is an answer, not an error to keep
  });
  return f.algo[i];
}

}  // namespace ossl

bool constant_time_equal(ByteView a, ByteView b) {
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

void cleanse(std::span<std::uint8_t> secret) {
  if (!secret.empty()) OPENSSL_cleanse(secret.data(), secret.size());
}

void cleanse(std::string& secret) {
  if (!secret.empty()) OPENSSL_cleanse(secret.data(), secret.size());
}

Result<void> random_bytes(std::span<std::uint8_t> out) {
  // RAND_bytes takes an int count: large requests go in pieces.
  std::size_t done = 0;
  while (done < out.size()) {
    const std::size_t n = std::min<std::size_t>(out.size() - done, INT_MAX);
    if (RAND_bytes(out.data() + done, static_cast<int>(n)) != 1) {
      return ossl::fail(Errc::unavailable, "random", "RAND_bytes", "the CSPRNG is not seeded");
    }
    done += n;
  }
  return {};
}

Result<Bytes> random_bytes(std::size_t n) {
  Bytes out(n);
  auto r = random_bytes(std::span<std::uint8_t>(out));
  if (!r) return std::unexpected(r.error());
  return out;
}

}  // namespace portier::crypto
