#include "agent/attest/digest.h"

#include <openssl/evp.h>

#include "agent/attest/tcg_event_log.h"

namespace portier::attest {
namespace {

const EVP_MD* md_for(std::uint16_t alg) {
  switch (alg) {
    case kAlgSha1:
      return EVP_sha1();
    case kAlgSha256:
      return EVP_sha256();
    case kAlgSha384:
      return EVP_sha384();
    case kAlgSha512:
      return EVP_sha512();
    default:
      return nullptr;
  }
}

}  // namespace

std::string to_hex(std::span<const std::uint8_t> b) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s;
  s.resize(b.size() * 2);
  for (std::size_t i = 0; i < b.size(); ++i) {
    s[2 * i] = kDigits[b[i] >> 4];
    s[2 * i + 1] = kDigits[b[i] & 15];
  }
  return s;
}

bool from_hex(std::string_view hex, Bytes& out) {
  auto val = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  if (hex.size() % 2) return false;
  Bytes b(hex.size() / 2);
  for (std::size_t i = 0; i < b.size(); ++i) {
    const int hi = val(hex[2 * i]), lo = val(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    b[i] = static_cast<std::uint8_t>(hi << 4 | lo);
  }
  out = std::move(b);
  return true;
}

Bytes hash_bytes(std::uint16_t alg, std::span<const std::uint8_t> data) {
  const EVP_MD* md = md_for(alg);
  if (md == nullptr) return {};
  Bytes out(static_cast<std::size_t>(EVP_MD_get_size(md)));
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), out.data(), &len, md, nullptr) != 1) return {};
  out.resize(len);
  return out;
}

Bytes pcr_extend(std::uint16_t alg, std::span<const std::uint8_t> old,
                 std::span<const std::uint8_t> digest) {
  const EVP_MD* md = md_for(alg);
  if (md == nullptr) return {};
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  Bytes out(static_cast<std::size_t>(EVP_MD_get_size(md)));
  unsigned int len = 0;
  const bool ok = ctx != nullptr && EVP_DigestInit_ex(ctx, md, nullptr) == 1 &&
                  EVP_DigestUpdate(ctx, old.data(), old.size()) == 1 &&
                  EVP_DigestUpdate(ctx, digest.data(), digest.size()) == 1 &&
                  EVP_DigestFinal_ex(ctx, out.data(), &len) == 1;
  EVP_MD_CTX_free(ctx);
  if (!ok) return {};
  out.resize(len);
  return out;
}

}  // namespace portier::attest
