#include "agent/attest/digest.h"

#include <optional>

#include "agent/attest/tcg_event_log.h"
#include "common/crypto/digest.h"
#include "common/hex.h"

namespace portier::attest {
namespace {

std::optional<crypto::DigestAlgo> algo_for(std::uint16_t alg) {
  switch (alg) {
    case kAlgSha1:
      return crypto::DigestAlgo::sha1;
    case kAlgSha256:
      return crypto::DigestAlgo::sha256;
    case kAlgSha384:
      return crypto::DigestAlgo::sha384;
    case kAlgSha512:
      return crypto::DigestAlgo::sha512;
    case kAlgSm3_256:
      return crypto::DigestAlgo::sm3;
    default:
      return std::nullopt;
  }
}

}  // namespace

std::string to_hex(std::span<const std::uint8_t> b) { return portier::to_hex(b.data(), b.size()); }

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
  const auto algo = algo_for(alg);
  if (!algo) return {};
  auto d = crypto::digest(*algo, data);
  return d ? std::move(*d) : Bytes{};
}

Bytes pcr_extend(std::uint16_t alg, std::span<const std::uint8_t> old,
                 std::span<const std::uint8_t> digest) {
  const auto algo = algo_for(alg);
  if (!algo) return {};
  auto md = crypto::Digest::create(*algo);
  if (!md) return {};
  md->update(old);
  md->update(digest);
  auto d = md->finish();
  return d ? std::move(*d) : Bytes{};
}

}  // namespace portier::attest
