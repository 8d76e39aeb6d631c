#include "bluetooth/bt_address.h"

namespace portier::drivers {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Six octets separated by `sep`.
std::optional<std::array<std::uint8_t, 6>> parse_octets(std::string_view text, char sep) {
  if (text.size() != 17) return std::nullopt;
  std::array<std::uint8_t, 6> out{};
  for (std::size_t i = 0; i < 6; ++i) {
    const std::size_t at = i * 3;
    const int hi = hex_value(text[at]);
    const int lo = hex_value(text[at + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    if (i < 5 && text[at + 2] != sep) return std::nullopt;
    out[i] = static_cast<std::uint8_t>(hi * 16 + lo);
  }
  return out;
}

constexpr char kUpper[] = "0123456789ABCDEF";
constexpr char kLower[] = "0123456789abcdef";

}  // namespace

std::optional<BtAddress> BtAddress::parse(std::string_view text) {
  auto o = parse_octets(text, ':');
  if (!o) return std::nullopt;
  BtAddress a;
  a.octets_ = *o;
  return a;
}

std::optional<BtAddress> BtAddress::from_device_path(std::string_view path) {
  std::string_view base = path_basename(path);
  if (!base.starts_with("dev_")) return std::nullopt;
  auto o = parse_octets(base.substr(4), '_');
  if (!o) return std::nullopt;
  BtAddress a;
  a.octets_ = *o;
  return a;
}

std::string BtAddress::str() const {
  std::string s;
  s.reserve(17);
  for (std::size_t i = 0; i < 6; ++i) {
    if (i) s.push_back(':');
    s.push_back(kUpper[octets_[i] >> 4]);
    s.push_back(kUpper[octets_[i] & 0xf]);
  }
  return s;
}

std::string BtAddress::compact() const {
  std::string s;
  s.reserve(12);
  for (std::uint8_t b : octets_) {
    s.push_back(kLower[b >> 4]);
    s.push_back(kLower[b & 0xf]);
  }
  return s;
}

std::string BtAddress::device_path(std::string_view adapter_path) const {
  std::string s(adapter_path);
  s += "/dev_";
  for (std::size_t i = 0; i < 6; ++i) {
    if (i) s.push_back('_');
    s.push_back(kUpper[octets_[i] >> 4]);
    s.push_back(kUpper[octets_[i] & 0xf]);
  }
  return s;
}

std::string_view path_basename(std::string_view path) {
  const auto slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

}  // namespace portier::drivers
