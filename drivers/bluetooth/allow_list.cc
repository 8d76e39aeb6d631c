#include "bluetooth/allow_list.h"

#include <algorithm>
#include <cctype>
#include <string_view>
#include <utility>

namespace portier::drivers {
namespace {

constexpr std::uint32_t kMajorMinorMask = 0x001FFC;  // bits 2..12
constexpr std::uint32_t kServiceMask = 0xFFE000;     // bits 13..23

struct MajorName {
  std::string_view name;
  std::uint32_t major;
};
constexpr MajorName kMajors[] = {
    {"miscellaneous", 0x00}, {"computer", 0x01},   {"phone", 0x02},         {"network", 0x03},
    {"audio_video", 0x04},   {"peripheral", 0x05}, {"imaging", 0x06},       {"wearable", 0x07},
    {"toy", 0x08},           {"health", 0x09},     {"uncategorized", 0x1F},
};

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::optional<std::uint32_t> parse_hex_class(std::string_view s) {
  if (!(s.starts_with("0x") || s.starts_with("0X"))) return std::nullopt;
  s.remove_prefix(2);
  if (s.empty() || s.size() > 6) return std::nullopt;
  std::uint32_t v = 0;
  for (char c : s) {
    const int d = hex_value(c);
    if (d < 0) return std::nullopt;
    v = v * 16 + static_cast<std::uint32_t>(d);
  }
  return v;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (c == '-') c = '_';
  }
  return out;
}

}  // namespace

std::string format_device_class(std::uint32_t cls) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s = "0x";
  for (int shift = 20; shift >= 0; shift -= 4) s.push_back(kHex[(cls >> shift) & 0xf]);
  return s;
}

Result<AllowList> AllowList::parse(const std::vector<std::string>& addresses,
                                   const std::vector<std::string>& classes) {
  AllowList list;
  for (const std::string& entry : addresses) {
    AddressRule rule;
    if (auto a = BtAddress::parse(entry)) {
      rule.octets = a->octets();
      rule.length = 6;
    } else if (entry.size() >= 4 && entry.ends_with(":*") && (entry.size() - 1) % 3 == 0 &&
               (entry.size() - 1) / 3 <= 5) {
      // "11:*", "11:22:*", ... "11:22:33:44:55:*": complete it to a full
      // address to reuse the parser, then keep only the given octets.
      const std::size_t n = (entry.size() - 1) / 3;
      std::string full = entry.substr(0, entry.size() - 1);
      for (std::size_t i = n; i < 6; ++i) full += (i == 5 ? "00" : "00:");
      auto a = BtAddress::parse(full);
      if (!a) {
        return fail(Errc::invalid_argument, "bluetooth allowed_addresses", "\"" + entry + "\"",
                    "not an address or prefix like \"11:22:33:44:55:66\" or \"11:22:33:*\"");
      }
      rule.octets = a->octets();
      rule.length = n;
    } else {
      return fail(Errc::invalid_argument, "bluetooth allowed_addresses", "\"" + entry + "\"",
                  "not an address or prefix like \"11:22:33:44:55:66\" or \"11:22:33:*\"");
    }
    list.addresses_.push_back(rule);
  }
  for (const std::string& entry : classes) {
    ClassRule rule;
    if (auto v = parse_hex_class(entry)) {
      rule.value = *v;
    } else {
      const std::string name = lower(entry);
      auto it = std::find_if(std::begin(kMajors), std::end(kMajors),
                             [&](const MajorName& m) { return m.name == name; });
      if (it == std::end(kMajors)) {
        return fail(Errc::invalid_argument, "bluetooth allowed_classes", "\"" + entry + "\"",
                    "not a class of device like \"0x000540\" nor a major class (miscellaneous, "
                    "computer, phone, network, audio_video, peripheral, imaging, wearable, toy, "
                    "health, uncategorized)");
      }
      rule.by_major = true;
      rule.major = it->major;
    }
    list.classes_.push_back(rule);
  }
  return list;
}

bool AllowList::matches(const ClassRule& r, std::uint32_t cls) {
  if (r.by_major) return ((cls >> 8) & 0x1F) == r.major;
  return (cls & kMajorMinorMask) == (r.value & kMajorMinorMask) &&
         (cls & r.value & kServiceMask) == (r.value & kServiceMask);
}

std::optional<std::string> AllowList::refusal(const BtAddress& address,
                                              std::optional<std::uint32_t> device_class) const {
  if (!addresses_.empty()) {
    const auto& o = address.octets();
    const bool ok = std::any_of(addresses_.begin(), addresses_.end(), [&](const AddressRule& r) {
      return std::equal(r.octets.begin(), r.octets.begin() + static_cast<long>(r.length),
                        o.begin());
    });
    if (!ok) return "address " + address.str() + " is not in allowed_addresses";
  }
  if (!classes_.empty()) {
    if (!device_class) return "device reports no class of device; allowed_classes is set";
    const bool ok = std::any_of(classes_.begin(), classes_.end(),
                                [&](const ClassRule& r) { return matches(r, *device_class); });
    if (!ok) return "class " + format_device_class(*device_class) + " is not in allowed_classes";
  }
  return std::nullopt;
}

std::vector<BtAddress> AllowList::exact_addresses() const {
  std::vector<BtAddress> out;
  for (const AddressRule& r : addresses_) {
    if (r.length == 6) out.push_back(BtAddress::from_octets(r.octets));
  }
  return out;
}

}  // namespace portier::drivers
