// Bluetooth device addresses ("AA:BB:CC:DD:EE:FF") and the BlueZ object
// paths that embed them ("/org/bluez/hci0/dev_AA_BB_CC_DD_EE_FF").
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace portier::drivers {

class BtAddress {
 public:
  // Accepts exactly six two-digit hex octets separated by ':' (either case).
  static std::optional<BtAddress> parse(std::string_view text);
  // From a BlueZ device path: the last element must be "dev_XX_XX_XX_XX_XX_XX".
  static std::optional<BtAddress> from_device_path(std::string_view path);
  static BtAddress from_octets(const std::array<std::uint8_t, 6>& octets) {
    BtAddress a;
    a.octets_ = octets;
    return a;
  }

  // "AA:BB:CC:DD:EE:FF" (upper case, as BlueZ spells it).
  std::string str() const;
  // "aabbccddeeff": the form used in Portier device ids.
  std::string compact() const;
  // "<adapter_path>/dev_AA_BB_CC_DD_EE_FF".
  std::string device_path(std::string_view adapter_path) const;

  const std::array<std::uint8_t, 6>& octets() const { return octets_; }
  friend bool operator==(const BtAddress&, const BtAddress&) = default;

 private:
  std::array<std::uint8_t, 6> octets_{};
};

// The last element of a D-Bus object path ("/org/bluez/hci0" -> "hci0").
std::string_view path_basename(std::string_view path);

}  // namespace portier::drivers
