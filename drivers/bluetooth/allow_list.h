// Which remote Bluetooth devices Portier offers to apps: address patterns
// and Class of Device rules from BluetoothConfig.
//
// A device is allowed when its address matches an entry of the address list
// (or the list is empty) AND its class matches an entry of the class list
// (or the list is empty). Both are claims the remote device makes about
// itself: the allow-list keeps unexpected devices out of the apps' view; it
// is not authentication (pairing and trust are).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "bluetooth/bt_address.h"
#include "common/result.h"

namespace portier::drivers {

class AllowList {
 public:
  // Errors: invalid_argument naming the bad entry.
  static Result<AllowList> parse(const std::vector<std::string>& addresses,
                                 const std::vector<std::string>& classes);

  // nullopt when allowed; otherwise why not, for a person.
  std::optional<std::string> refusal(const BtAddress& address,
                                     std::optional<std::uint32_t> device_class) const;

  // Entries that name one device exactly (for the self-test).
  std::vector<BtAddress> exact_addresses() const;

 private:
  struct AddressRule {
    std::array<std::uint8_t, 6> octets{};
    std::size_t length = 6;  // leading octets compared; 6 = exact
  };
  struct ClassRule {
    bool by_major = false;
    std::uint32_t major = 0;  // when by_major
    std::uint32_t value = 0;  // otherwise: the full Class of Device
  };
  static bool matches(const ClassRule& r, std::uint32_t cls);

  std::vector<AddressRule> addresses_;
  std::vector<ClassRule> classes_;
};

// "0x5a020c": the form of the class attribute and of alarm details.
std::string format_device_class(std::uint32_t cls);

}  // namespace portier::drivers
